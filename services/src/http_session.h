// One HTTP/1.1 connection: read a request, answer it (whole or as a chunked stream), repeat while kept alive.
// While a request is being handled the session keeps a read open on the socket, so a client that leaves is
// noticed at once and the request's cancel token fires.
// Thread safety: every member is touched only on the session's strand; shutdown() may be called from any thread.
// Lifetime: the session lives while one of its async operations holds shared_from_this().
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <deque>
#include <memory>
#include <optional>
#include <string>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/serializer.hpp>

#include "services/http_message.h"
#include "services/server.h"

namespace mm::services {

class connection_registry;
class metrics;
class router;
class session_responder;
class ws_session;
struct route;

// What every session shares; the server owns it and it outlives every session.
struct session_shared {
    const server_params& params;
    const router& routes;
    connection_registry& registry;
    metrics* stats;  // may be null
};

class http_session : public std::enable_shared_from_this<http_session> {
public:
    http_session(boost::asio::ip::tcp::socket socket, const session_shared& shared);
    ~http_session();
    http_session(const http_session&) = delete;
    http_session& operator=(const http_session&) = delete;

    void start();           // serve requests until the client or a timeout ends it
    void start_rejected();  // over the connection cap: answer 503 at once, then close
    void shutdown();        // any thread: close now if idle or reading, after the answer if handling or writing
    void cancel();          // any thread: cancel the request being handled (stop() after its deadline)

private:
    friend class session_responder;
    using error_code = boost::beast::error_code;
    enum class phase { reading, handling, writing, streaming, lingering, websocket, closed };

    void read_next();
    void on_idle_read(error_code ec, size_t n);
    void read_header();
    void on_header(error_code ec, size_t n);
    void arm_read_timer(std::chrono::milliseconds limit);
    void on_read_timeout(error_code ec);
    void answer_read_timeout(const char* what, std::chrono::milliseconds limit);
    void on_body(error_code ec, size_t n);
    // Answers a read that failed; false when there is nobody to answer (gone, timed out, stopped).
    bool answer_read_error(error_code ec);
    void write(http_response res);
    void on_write(error_code ec, size_t n);
    void close_lingering();
    void on_linger_read(error_code ec, size_t n);
    void close_now();
    void on_shutdown();

    // Handling: answers from the responder (already on the strand), and the watch on the socket.
    void watch_client();
    void on_watch(error_code ec, size_t n);
    void client_gone();
    void answer(http_response res);
    void begin_stream(http_response head);
    void queue_chunk(std::string chunk, bool last);
    void write_next_chunk();
    void on_chunk_written(error_code ec, size_t n);
    void arm_heartbeat();
    void after_response();  // the response is out: keep alive, or close
    void record(unsigned status);           // once per request that reached a route; later calls do nothing
    void record_refused(unsigned status);   // a request refused while it was read
    void finish_response();  // the last byte is written: stand the watch down, then after_response()
    void responder_cancel();
    void upgrade(const route& r);  // hand the connection to a ws_session, or answer the route's refusal

    // The strand every handler runs on; kept apart from stream_, which a WebSocket upgrade moves away.
    boost::asio::any_io_executor exec_;
    boost::beast::tcp_stream stream_;
    boost::beast::flat_buffer buffer_;
    std::optional<boost::beast::http::request_parser<boost::beast::http::string_body>> parser_;
    http_response res_;  // the one response in flight
    const session_shared& shared_;
    phase phase_ = phase::reading;
    bool stopping_ = false;
    size_t n_requests_ = 0;
    uint64_t body_limit_ = 0;  // the limit for the request being read (the route's, or the server's)
    std::array<char, 4096> drain_;  // bytes read and thrown away while lingering

    // The request being handled.
    std::shared_ptr<const http_request> req_;
    std::weak_ptr<session_responder> responder_;  // the responder owns the session while it lives, not back
    bool keep_alive_ = false;
    std::chrono::steady_clock::time_point started_;
    bool in_flight_ = false;  // counted in the metrics' in-flight gauge, until record()
    bool watching_ = false;                  // a read is open on the socket while handling
    std::optional<http_response> held_;      // a whole answer waiting for the watch read to stand down
    bool finishing_ = false;                 // waiting for the watch read to stand down after the last byte
    bool last_sent_ = false;                 // the stream's terminating chunk is written or in flight
    // Streaming: one write in flight, the rest queued (bounded: a client that stops reading is dropped).
    std::optional<boost::beast::http::response<boost::beast::http::empty_body>> stream_head_;
    std::optional<boost::beast::http::response_serializer<boost::beast::http::empty_body>> stream_sr_;
    std::deque<std::string> chunks_;
    bool chunk_in_flight_ = false;
    bool last_queued_ = false;
    std::string chunk_wire_;                 // the chunk being written, with its size line
    boost::asio::steady_timer heartbeat_;    // SSE keep-alive comments while a stream is quiet
    // The header and body timeouts are our own timer, not the stream's: a client that started a request and
    // is too slow gets a 408 before the close (the stream's timeout would close the socket first).
    boost::asio::steady_timer read_timer_;
    bool read_timed_out_ = false;
    uint64_t read_gen_ = 0;  // which arming of read_timer_ is current
    std::weak_ptr<ws_session> ws_;           // after an upgrade: the WebSocket that now owns the connection
};

}  // namespace mm::services
