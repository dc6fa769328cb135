// Routes that answer later, from another thread (metered and compute routes), streams (SSE), and a client
// that leaves while its request runs: all through a real server on 127.0.0.1. Waits are bounded by
// deadlines; nothing sleeps to wait for state.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "services/metrics.h"
#include "services/server.h"
#include "test_client.h"

namespace mm::services {
namespace {

using mm::test::test_client;
namespace http = boost::beast::http;
using namespace std::chrono_literals;

// Async requests parked until the test releases them, from a thread of its own.
struct parked {
    std::mutex mu;
    std::vector<std::shared_ptr<responder>> waiting;  // guarded by mu
    std::promise<void> arrived;
    std::atomic<int> n{0};

    std::shared_ptr<responder> take(size_t i) {
        std::lock_guard lock(mu);
        return waiting.at(i);
    }
    bool wait_arrival() { return arrived.get_future().wait_for(10s) == std::future_status::ready; }
};

// Polls a cancel token up to a deadline: the event comes from the server's io thread.
bool wait_cancelled(const cancel_token& t) {
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (!t.stopped() && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
    return t.stopped();
}

std::vector<route> test_routes(parked& p) {
    auto table = server_routes();
    table.push_back({http::verb::post, "/test/park", nullptr,
                     [&p](std::shared_ptr<const http_request>, std::shared_ptr<responder> out) {
                         std::lock_guard lock(p.mu);
                         p.waiting.push_back(std::move(out));
                         if (++p.n == 1) p.arrived.set_value();
                     }});
    table.push_back({http::verb::get, "/test/limited", [](const http_request&) -> result<route_reply> {
                         return error_reply(status(errc::rate_limited, "slow down"), {{"Retry-After", "7"}});
                     }});
    table.push_back({http::verb::get, "/test/dropped", nullptr,
                     [](std::shared_ptr<const http_request>, std::shared_ptr<responder>) {}});
    return table;
}

struct fixture {
    parked park;
    metrics stats;
    std::unique_ptr<server> srv;
    explicit fixture(server_params p = {}) {
        p.host = "127.0.0.1";
        p.port = 0;
        srv = std::make_unique<server>(p, test_routes(park), &stats);
        EXPECT_TRUE(srv->start());
    }
};

constexpr const char* k_park = "POST /test/park HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}";

TEST(async_routes, answer_from_another_thread_while_the_server_serves_others) {
    fixture f;
    test_client slow(f.srv->port());
    ASSERT_FALSE(slow.write(k_park));
    ASSERT_TRUE(f.park.wait_arrival());

    test_client other(f.srv->port());  // the parked request holds no io thread
    auto health = other.request("GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    ASSERT_TRUE(health);
    EXPECT_EQ(health->result_int(), 200u);

    auto out = f.park.take(0);
    std::thread([out] { out->reply(route_reply{.status = 201, .body = R"({"done":true})", .headers = {{"X-Mm", "1"}}}); })
        .join();
    auto res = slow.read();
    ASSERT_TRUE(res);
    EXPECT_EQ(res->result_int(), 201u);
    EXPECT_EQ(res->body(), R"({"done":true})");
    EXPECT_EQ(res->at("X-Mm"), "1");
    out->reply(route_reply{.status = 500});  // a second answer is ignored

    auto again = slow.request("GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    ASSERT_TRUE(again) << "kept alive after an async answer";
    EXPECT_EQ(again->result_int(), 200u);
}

TEST(async_routes, errors_are_openai_shaped_and_carry_headers) {
    fixture f;
    test_client c(f.srv->port());
    ASSERT_FALSE(c.write(k_park));
    ASSERT_TRUE(f.park.wait_arrival());
    f.park.take(0)->reply(status(errc::budget_exhausted, "key budget spent"));
    auto res = c.read();
    ASSERT_TRUE(res);
    EXPECT_EQ(res->result_int(), 429u);
    EXPECT_EQ(nlohmann::json::parse(res->body())["error"]["code"], "insufficient_quota");

    auto limited = c.request("GET /test/limited HTTP/1.1\r\nHost: x\r\n\r\n");
    ASSERT_TRUE(limited);
    EXPECT_EQ(limited->result_int(), 429u);
    EXPECT_EQ(limited->at(http::field::retry_after), "7");
    EXPECT_EQ(nlohmann::json::parse(limited->body())["error"]["code"], "rate_limit_exceeded");
}

TEST(async_routes, a_route_that_drops_its_request_answers_500) {
    fixture f;
    test_client c(f.srv->port());
    auto res = c.request("GET /test/dropped HTTP/1.1\r\nHost: x\r\n\r\n");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->result_int(), 500u);
}

TEST(async_routes, a_stream_arrives_in_chunks_in_order_and_the_connection_stays_usable) {
    fixture f;
    test_client c(f.srv->port());
    ASSERT_FALSE(c.write(k_park));
    ASSERT_TRUE(f.park.wait_arrival());
    auto out = f.park.take(0);
    std::thread([out] {
        out->stream_begin({.content_type = "text/event-stream", .headers = {{"Cache-Control", "no-cache"}}});
        for (int i = 0; i < 50; ++i) out->stream_write("data: " + std::to_string(i) + "\n\n");
        out->stream_end("data: [DONE]\n\n");
    }).join();
    auto res = c.read();
    ASSERT_TRUE(res);
    EXPECT_EQ(res->result_int(), 200u);
    EXPECT_EQ(res->at(http::field::content_type), "text/event-stream");
    EXPECT_EQ(res->at(http::field::transfer_encoding), "chunked");
    std::string want;
    for (int i = 0; i < 50; ++i) want += "data: " + std::to_string(i) + "\n\n";
    want += "data: [DONE]\n\n";
    EXPECT_EQ(res->body(), want);
    auto again = c.request("GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    ASSERT_TRUE(again);
    EXPECT_EQ(again->result_int(), 200u);
}

TEST(async_routes, a_quiet_stream_gets_keep_alive_comments) {
    server_params p;
    p.stream_heartbeat = 30ms;
    fixture f(p);
    test_client c(f.srv->port());
    ASSERT_FALSE(c.write(k_park));
    ASSERT_TRUE(f.park.wait_arrival());
    auto out = f.park.take(0);
    out->stream_begin({.content_type = "text/event-stream"});
    std::string seen;
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (seen.find(": keep-alive\n\n") == std::string::npos && std::chrono::steady_clock::now() < deadline) {
        auto bytes = c.read_raw();
        ASSERT_TRUE(bytes);
        seen += *bytes;
    }
    EXPECT_NE(seen.find(": keep-alive\n\n"), std::string::npos) << seen;
    out->stream_end({});
}

TEST(async_routes, a_client_that_leaves_cancels_its_request) {
    struct row { const char* name; bool streaming; };
    for (const auto& r : {row{"waiting for a whole answer", false}, row{"mid-stream", true}}) {
        fixture f;
        {
            test_client c(f.srv->port());
            ASSERT_FALSE(c.write(k_park));
            ASSERT_TRUE(f.park.wait_arrival()) << r.name;
            if (r.streaming) {
                auto out = f.park.take(0);
                out->stream_begin({.content_type = "text/event-stream"});
                out->stream_write("data: 1\n\n");
                ASSERT_TRUE(c.read_raw()) << r.name;
            }
            c.close();
        }
        auto out = f.park.take(0);
        EXPECT_TRUE(wait_cancelled(out->cancel())) << r.name;
        out->reply(route_reply{});  // too late: dropped, and nothing breaks
        const auto deadline = std::chrono::steady_clock::now() + 10s;
        while (f.stats.render().find("status=\"499\"") == std::string::npos && std::chrono::steady_clock::now() < deadline)
            std::this_thread::yield();
        EXPECT_NE(f.stats.render().find("route=\"/test/park\",method=\"POST\",status=\"499\"} 1"), std::string::npos)
            << r.name;
    }
}

// A client that stops reading mid-stream, while the route has little left to say (so the queue bound never
// trips), is dropped at the write timeout and its request cancelled, rather than holding its connection.
TEST(async_routes, a_stream_to_a_client_that_stops_reading_is_dropped_at_the_write_timeout) {
    fixture f({.write_timeout = std::chrono::milliseconds(200)});
    test_client c(f.srv->port());
    ASSERT_FALSE(c.write(k_park));
    ASSERT_TRUE(f.park.wait_arrival());
    auto out = f.park.take(0);
    out->stream_begin({.content_type = "text/event-stream"});
    // More than loopback's socket buffers hold, in a few chunks; the client reads none of it.
    for (int i = 0; i < 16; ++i) out->stream_write("data: " + std::string(2 << 20, 'x') + "\n\n");
    EXPECT_TRUE(wait_cancelled(out->cancel()));
    out->stream_end({});
}

TEST(async_routes, a_request_that_outlives_the_stop_deadline_is_cancelled_and_still_answered) {
    fixture f({.stop_timeout = std::chrono::milliseconds(300)});
    test_client c(f.srv->port());
    ASSERT_FALSE(c.write(k_park));
    ASSERT_TRUE(f.park.wait_arrival());
    auto out = f.park.take(0);
    std::thread answer([out] {
        if (wait_cancelled(out->cancel())) out->reply(status(errc::cancelled, "server shutting down"));
    });
    f.srv->stop();
    answer.join();
    EXPECT_TRUE(out->cancel().stopped());
    auto res = c.read();
    ASSERT_TRUE(res) << "the cancelled answer did not reach the client";
    EXPECT_EQ(res->result_int(), 503u) << res->body();
    EXPECT_TRUE(c.closed_by_server());
}

}  // namespace
}  // namespace mm::services

namespace mm::services {
namespace {

TEST(route_body_limits, an_upload_route_takes_more_and_a_small_route_less_than_the_default) {
    auto table = server_routes();
    auto size_of = [](const http_request& req) -> result<route_reply> {
        return route_reply{.body = std::to_string(req.body().size())};
    };
    table.push_back({http::verb::post, "/upload", size_of, nullptr, /*body_limit=*/3 << 20});
    table.push_back({http::verb::post, "/small", size_of, nullptr, /*body_limit=*/4096});
    table.push_back({http::verb::post, "/default", size_of});
    server_params p;
    p.host = "127.0.0.1";
    p.port = 0;
    p.body_limit = 1 << 20;
    server srv(p, std::move(table));
    ASSERT_TRUE(srv.start());
    struct row { const char* name; const char* path; size_t bytes; unsigned status; };
    const row rows[] = {
        {"upload above the default", "/upload", (1 << 20) + 1000, 200},
        {"upload past its own limit", "/upload", (3 << 20) + 1, 413},
        {"default route keeps the default", "/default", (1 << 20) + 1, 413},
        {"default route at the default", "/default", 1 << 20, 200},
        {"small route under its limit", "/small", 4096, 200},
        {"small route past its limit", "/small", 4097, 413},
    };
    for (const auto& r : rows) {
        test_client c(srv.port());
        const std::string body(r.bytes, 'x');
        auto res = c.request(std::string("POST ") + r.path + " HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                             std::to_string(r.bytes) + "\r\n\r\n" + body);
        ASSERT_TRUE(res) << r.name;
        EXPECT_EQ(res->result_int(), r.status) << r.name;
        if (r.status == 200) {
            EXPECT_EQ(res->body(), std::to_string(r.bytes)) << r.name;
        }
        if (r.status == 413) {
            EXPECT_EQ(nlohmann::json::parse(res->body())["error"]["code"], "request_too_large") << r.name;
        }
    }
    // A chunked body has no length up front: the route's limit is enforced as the chunks arrive.
    for (auto [size, want] : {std::pair<size_t, unsigned>{4000, 200}, {5000, 413}}) {
        test_client c(srv.port());
        char head[32];
        std::snprintf(head, sizeof head, "%zx\r\n", size);
        auto res = c.request("POST /small HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + std::string(head) +
                             std::string(size, 'y') + "\r\n0\r\n\r\n");
        ASSERT_TRUE(res) << size;
        EXPECT_EQ(res->result_int(), want) << "chunked " << size;
    }
}

}  // namespace
}  // namespace mm::services
