// A blocking HTTP client for tests: one connection on its own io_context, every operation bounded by a
// deadline, so a server bug fails a test instead of hanging it.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

namespace mm::test {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using namespace std::chrono_literals;

// Bounds every client operation. Far above anything a working server needs, so it only ends hung tests.
constexpr auto k_deadline = 10s;

using http_reply = http::response<http::string_body>;

// One client connection on its own io_context; each call runs one async operation under the deadline.
class test_client {
public:
    explicit test_client(uint16_t port) {
        const tcp::endpoint ep(net::ip::make_address("127.0.0.1"), port);
        connect_ec_ = run([&](auto done) { stream_.async_connect(ep, done); });
    }
    const beast::error_code& connect_error() const { return connect_ec_; }

    beast::error_code write(std::string_view bytes) {
        return run([&](auto done) { net::async_write(stream_, net::buffer(bytes.data(), bytes.size()), done); });
    }

    // The next response; nullopt when the connection ended or failed instead.
    std::optional<http_reply> read() {
        http::response_parser<http::string_body> parser;
        parser.body_limit(64 << 20);
        beast::error_code ec = run([&](auto done) { http::async_read(stream_, buf_, parser, done); });
        if (ec) return std::nullopt;
        return parser.release();
    }

    std::optional<http_reply> request(std::string_view raw) {
        if (write(raw)) return std::nullopt;
        return read();
    }

    // True when the server closes the connection (EOF or reset) before sending anything more.
    bool closed_by_server() {
        char byte;
        if (buf_.size() > 0) return false;
        beast::error_code ec = run([&](auto done) { stream_.async_read_some(net::buffer(&byte, 1), done); });
        return ec == net::error::eof || ec == net::error::connection_reset;
    }

    // Whatever bytes arrive next (buffered ones first), raw; nullopt when the connection ended or failed.
    std::optional<std::string> read_raw() {
        if (buf_.size() > 0) {
            std::string out = beast::buffers_to_string(buf_.data());
            buf_.consume(buf_.size());
            return out;
        }
        char bytes[4096];
        size_t n = 0;
        beast::error_code ec = run([&](auto done) {
            stream_.async_read_some(net::buffer(bytes), [&n, done](beast::error_code e, size_t got) mutable {
                n = got;
                done(e);
            });
        });
        if (ec) return std::nullopt;
        return std::string(bytes, n);
    }

    void close() { stream_.close(); }

private:
    template <class Start>
    beast::error_code run(Start start) {
        beast::error_code out = net::error::timed_out;
        stream_.expires_after(k_deadline);
        start([&out](beast::error_code ec, auto&&...) { out = ec; });
        ioc_.restart();
        ioc_.run();
        return out;
    }

    net::io_context ioc_;
    beast::tcp_stream stream_{ioc_};
    beast::flat_buffer buf_;
    beast::error_code connect_ec_;
};

// One JSON API request on a fresh connection: the status, the body parsed (discarded when not JSON) and the
// raw response for headers. A failed exchange gives status 0.
struct api_answer {
    unsigned status = 0;
    nlohmann::json body;
    http_reply raw;
};
inline api_answer api_call(uint16_t port, const std::string& method, const std::string& target, const std::string& bearer,
                           const std::string& body = "", const std::string& extra_headers = "") {
    test_client c(port);
    std::string req = method + " " + target + " HTTP/1.1\r\nHost: x\r\n";
    if (!bearer.empty()) req += "Authorization: Bearer " + bearer + "\r\n";
    req += extra_headers;
    req += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    auto res = c.request(req);
    if (!res) return {};
    return {res->result_int(), nlohmann::json::parse(res->body(), nullptr, false), *res};
}

}  // namespace mm::test
