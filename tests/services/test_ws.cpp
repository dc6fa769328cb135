// WebSocket endpoints through a real server on 127.0.0.1 and a real Beast client: the upgrade and its
// refusals (as HTTP error JSON), messages both ways, the message limit, the idle timeout, a client that
// vanishes (its cancel token fires) and a server stop (close 1001). Every client operation runs under a
// deadline; nothing sleeps to wait for state.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <nlohmann/json.hpp>

#include "services/metrics.h"
#include "services/server.h"
#include "test_client.h"

namespace mm::services {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
namespace http = beast::http;
using tcp = net::ip::tcp;
using json = nlohmann::json;
using mm::test::k_deadline;
using mm::test::test_client;
using namespace std::chrono_literals;

// What the echo route saw: the channel of its latest connection, and whether its handler was closed.
struct probe {
    std::mutex mu;
    std::shared_ptr<ws_channel> channel;  // guarded by mu
    std::atomic<int> closed{0};

    std::shared_ptr<ws_channel> latest() {
        std::lock_guard lock(mu);
        return channel;
    }
};

// Echoes each message with its kind; "close" asks the server to close normally.
class echo_handler : public ws_handler {
public:
    echo_handler(std::weak_ptr<ws_channel> ch, probe& p) : ch_(std::move(ch)), probe_(p) {}
    void on_message(ws_message m) override {
        auto ch = ch_.lock();
        if (!ch) return;
        if (!m.binary && m.data == "close") return ch->close(ws_close_code::normal, "bye");
        ch->send(std::move(m));
    }
    void on_close() override { ++probe_.closed; }

private:
    std::weak_ptr<ws_channel> ch_;
    probe& probe_;
};

std::vector<route> ws_routes(probe& p) {
    auto table = server_routes();
    route echo{http::verb::get, "/test/ws", nullptr};
    echo.ws_handler = [&p](const http_request&, std::shared_ptr<ws_channel> ch) -> result<std::shared_ptr<ws_handler>> {
        {
            std::lock_guard lock(p.mu);
            p.channel = ch;
        }
        return std::shared_ptr<ws_handler>(std::make_shared<echo_handler>(ch, p));
    };
    table.push_back(std::move(echo));
    route refuse{http::verb::get, "/test/ws_refused", nullptr};
    refuse.ws_handler = [](const http_request&, std::shared_ptr<ws_channel>) -> result<std::shared_ptr<ws_handler>> {
        return status(errc::unauthenticated, "no key");
    };
    table.push_back(std::move(refuse));
    return table;
}

struct fixture {
    probe seen;
    metrics stats;
    std::unique_ptr<server> srv;
    explicit fixture(server_params p = {}) {
        p.host = "127.0.0.1";
        p.port = 0;
        srv = std::make_unique<server>(p, ws_routes(seen), &stats);
        EXPECT_TRUE(srv->start());
    }
};

// One WebSocket client on its own io_context; each call runs one operation under the deadline.
class ws_client {
public:
    explicit ws_client(uint16_t port) {
        const tcp::endpoint ep(net::ip::make_address("127.0.0.1"), port);
        ec_ = run([&](auto done) { beast::get_lowest_layer(ws_).async_connect(ep, done); });
    }
    beast::error_code handshake(const std::string& target) {
        if (ec_) return ec_;
        return run([&](auto done) { ws_.async_handshake("127.0.0.1", target, done); });
    }
    beast::error_code send(const std::string& data, bool binary = false) {
        ws_.binary(binary);
        return run([&](auto done) { ws_.async_write(net::buffer(data), done); });
    }
    // The next message; on failure, the error (websocket::error::closed after a close frame).
    beast::error_code read(std::string& data, bool* binary = nullptr) {
        beast::flat_buffer buf;
        beast::error_code ec = run([&](auto done) { ws_.async_read(buf, done); });
        data = beast::buffers_to_string(buf.data());
        if (binary) *binary = ws_.got_binary();
        return ec;
    }
    websocket::close_reason reason() const { return ws_.reason(); }
    void vanish() { beast::get_lowest_layer(ws_).close(); }  // no close frame: the TCP connection just ends

private:
    template <class Start>
    beast::error_code run(Start start) {
        beast::error_code out = net::error::timed_out;
        beast::get_lowest_layer(ws_).expires_after(k_deadline);
        start([&out](beast::error_code ec, auto&&...) { out = ec; });
        ioc_.restart();
        ioc_.run();
        return out;
    }

    net::io_context ioc_;
    websocket::stream<beast::tcp_stream> ws_{ioc_};
    beast::error_code ec_;
};

std::string upgrade_request(const std::string& target) {
    return "GET " + target +
           " HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
}

bool wait_until(const std::function<bool()>& done) {
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (!done() && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
    return done();
}

TEST(websocket, echoes_text_and_binary_messages_in_order_then_closes_on_request) {
    fixture f;
    ws_client c(f.srv->port());
    ASSERT_FALSE(c.handshake("/test/ws"));
    const std::string binary_bytes("\x00\x01\xff\x7f", 4);
    ASSERT_FALSE(c.send("hello"));
    ASSERT_FALSE(c.send(binary_bytes, true));
    ASSERT_FALSE(c.send(std::string(100'000, 'z')));  // over one frame's worth: reassembled into one message
    std::string got;
    bool binary = true;
    ASSERT_FALSE(c.read(got, &binary));
    EXPECT_EQ(got, "hello");
    EXPECT_FALSE(binary);
    ASSERT_FALSE(c.read(got, &binary));
    EXPECT_EQ(got, binary_bytes);
    EXPECT_TRUE(binary);
    ASSERT_FALSE(c.read(got));
    EXPECT_EQ(got, std::string(100'000, 'z'));
    ASSERT_FALSE(c.send("close"));
    EXPECT_EQ(c.read(got), websocket::error::closed);
    EXPECT_EQ(c.reason().code, 1000);
    EXPECT_EQ(std::string(c.reason().reason.c_str()), "bye");
    EXPECT_TRUE(wait_until([&] { return f.seen.closed.load() == 1; }));
    EXPECT_TRUE(f.seen.latest()->cancel().stopped());
    EXPECT_TRUE(wait_until([&] {
        return f.stats.render().find("route=\"/test/ws\",method=\"GET\",status=\"101\"} 1") != std::string::npos;
    })) << f.stats.render();
}

TEST(websocket, a_message_over_the_limit_closes_with_1009_and_the_server_keeps_serving) {
    fixture f({.ws_message_limit = 1024});
    ws_client c(f.srv->port());
    ASSERT_FALSE(c.handshake("/test/ws"));
    ASSERT_FALSE(c.send(std::string(1024, 'a')));  // at the limit: fine
    std::string got;
    ASSERT_FALSE(c.read(got));
    EXPECT_EQ(got.size(), 1024u);
    ASSERT_FALSE(c.send(std::string(1025, 'a')));
    EXPECT_EQ(c.read(got), websocket::error::closed);
    EXPECT_EQ(c.reason().code, 1009);
    EXPECT_TRUE(wait_until([&] { return f.seen.closed.load() == 1; }));
    auto health = mm::test::api_call(f.srv->port(), "GET", "/health", "");
    EXPECT_EQ(health.status, 200u);
}

TEST(websocket, refused_and_misdirected_upgrades_get_http_error_json) {
    fixture f;
    struct row { const char* name; std::string request; unsigned status; const char* message_part; };
    const row rows[] = {
        {"unknown path", upgrade_request("/test/nowhere"), 404, "no route for GET /test/nowhere"},
        {"route refuses", upgrade_request("/test/ws_refused"), 401, "no key"},
        {"plain GET to a WebSocket route", "GET /test/ws HTTP/1.1\r\nHost: x\r\n\r\n", 400, "is a WebSocket endpoint"},
        {"upgrade with the wrong method", "POST /test/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                                          "Connection: Upgrade\r\nContent-Length: 0\r\n\r\n", 405, "POST"},
    };
    for (const auto& r : rows) {
        test_client c(f.srv->port());
        auto res = c.request(r.request);
        ASSERT_TRUE(res) << r.name;
        EXPECT_EQ(res->result_int(), r.status) << r.name;
        const json body = json::parse(res->body(), nullptr, false);
        ASSERT_TRUE(body.contains("error")) << r.name << ": " << res->body();
        EXPECT_NE(body["error"]["message"].get<std::string>().find(r.message_part), std::string::npos)
            << r.name << ": " << res->body();
        // Plain HTTP still: the same connection serves the next request.
        auto next = c.request("GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
        ASSERT_TRUE(next) << r.name;
        EXPECT_EQ(next->result_int(), 200u) << r.name;
    }
    EXPECT_EQ(f.seen.closed.load(), 0);
}

TEST(websocket, a_client_that_vanishes_fires_the_cancel_token_and_closes_the_handler) {
    fixture f;
    ws_client c(f.srv->port());
    ASSERT_FALSE(c.handshake("/test/ws"));
    ASSERT_FALSE(c.send("ping"));
    std::string got;
    ASSERT_FALSE(c.read(got));
    auto ch = f.seen.latest();
    ASSERT_TRUE(ch);
    EXPECT_FALSE(ch->cancel().stopped());
    c.vanish();
    EXPECT_TRUE(wait_until([&] { return ch->cancel().stopped(); }));
    EXPECT_TRUE(wait_until([&] { return f.seen.closed.load() == 1; }));
    ch->send({"too late"});  // after the end: ignored, nothing breaks
    ch->close(ws_close_code::normal, "late");
}

TEST(websocket, stopping_the_server_closes_with_1001) {
    fixture f({.stop_timeout = 60s});  // stop() must finish on its own, long before this
    ws_client c(f.srv->port());
    ASSERT_FALSE(c.handshake("/test/ws"));
    std::thread reader([&] {
        std::string got;
        EXPECT_EQ(c.read(got), websocket::error::closed);
        EXPECT_EQ(c.reason().code, 1001);
    });
    ASSERT_TRUE(wait_until([&] { return f.seen.latest() != nullptr; }));
    f.srv->stop();
    reader.join();
    EXPECT_EQ(f.seen.closed.load(), 1);
}

TEST(websocket, a_silent_client_is_closed_by_the_idle_timeout) {
    fixture f({.header_timeout = 300ms, .idle_timeout = 300ms});
    // Handshake by hand, then never read or answer a ping: the server's pings go unanswered.
    test_client c(f.srv->port());
    ASSERT_FALSE(c.write(upgrade_request("/test/ws")));
    auto first = c.read_raw();
    ASSERT_TRUE(first);
    EXPECT_EQ(first->rfind("HTTP/1.1 101", 0), 0u) << *first;
    int reads = 0;
    while (c.read_raw() && ++reads < 100) {}  // pings, then the end of the connection
    EXPECT_LT(reads, 100) << "the connection never ended";
    EXPECT_TRUE(wait_until([&] { return f.seen.closed.load() == 1; }));
}

}  // namespace
}  // namespace mm::services
