// One HTTP/1.1 connection: read a request, answer it, repeat while kept alive.
// Thread safety: every member is touched only on the session's strand; shutdown() may be called from any thread.
// Lifetime: the session lives while one of its async operations holds shared_from_this().
#pragma once

#include <array>
#include <cstddef>
#include <memory>
#include <optional>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/parser.hpp>

#include "services/http_message.h"
#include "services/server.h"

namespace mm::services {

class connection_registry;
class router;

// What every session shares; the server owns it and it outlives every session.
struct session_shared {
    const server_params& params;
    const router& routes;
    connection_registry& registry;
};

class http_session : public std::enable_shared_from_this<http_session> {
public:
    http_session(boost::asio::ip::tcp::socket socket, const session_shared& shared);
    ~http_session();
    http_session(const http_session&) = delete;
    http_session& operator=(const http_session&) = delete;

    void start();           // serve requests until the client or a timeout ends it
    void start_rejected();  // over the connection cap: answer 503 at once, then close
    void shutdown();        // any thread: close now if idle or reading, after the write if writing

private:
    using error_code = boost::beast::error_code;
    enum class phase { reading, handling, writing, lingering, closed };

    void read_next();
    void on_idle_read(error_code ec, size_t n);
    void read_header();
    void on_header(error_code ec, size_t n);
    void on_body(error_code ec, size_t n);
    // Answers a read that failed; false when there is nobody to answer (gone, timed out, stopped).
    bool answer_read_error(error_code ec);
    void write(http_response res);
    void on_write(error_code ec, size_t n);
    void close_lingering();
    void on_linger_read(error_code ec, size_t n);
    void close_now();
    void on_shutdown();

    boost::beast::tcp_stream stream_;
    boost::beast::flat_buffer buffer_;
    std::optional<boost::beast::http::request_parser<boost::beast::http::string_body>> parser_;
    http_response res_;  // the one response in flight
    const session_shared& shared_;
    phase phase_ = phase::reading;
    bool stopping_ = false;
    size_t n_requests_ = 0;
    std::array<char, 4096> drain_;  // bytes read and thrown away while lingering
};

}  // namespace mm::services
