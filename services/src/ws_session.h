// One WebSocket connection, after its HTTP session has read the upgrade request and the route accepted it:
// answers the handshake, then delivers the client's messages to the route's handler and writes the route's
// messages back, one write at a time, in order.
// Limits: a message over ws_message_limit closes with 1009; a client that neither sends nor answers pings for
// idle_timeout is closed; a client that lets more than stream_queue_chunks messages queue is dropped.
// Thread safety: send, close and channel() may be called from any thread; the rest runs on the session's strand.
// Lifetime: the session lives while an async operation or the route holds it; it keeps its HTTP session (and
// so its connection slot) until the connection ends.
#pragma once

#include <chrono>
#include <deque>
#include <memory>
#include <optional>
#include <string>

#include <boost/asio/any_io_executor.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/websocket/stream.hpp>

#include "services/ws_channel.h"

namespace mm::services {

class http_session;
struct session_shared;

class ws_session : public std::enable_shared_from_this<ws_session> {
public:
    ws_session(boost::asio::any_io_executor strand, const session_shared& shared, std::shared_ptr<http_session> owner);

    // On the strand: take over the connection and answer the upgrade.
    void start(boost::beast::tcp_stream stream, std::shared_ptr<const http_request> req,
               std::shared_ptr<ws_handler> handler);
    // On the strand: the route refused the upgrade; let go of the HTTP session.
    void abandon();
    // On the strand: the server is stopping: close with 1001.
    void shutdown();

    // What the route gets: it holds the session only weakly, so a route that keeps it past the connection
    // (or the server) keeps nothing of the socket alive. Calls after the end are ignored.
    std::shared_ptr<ws_channel> channel();

    // Any thread.
    void send(ws_message m);
    void close(ws_close_code code, std::string reason);

private:
    using error_code = boost::beast::error_code;
    void on_accept(error_code ec);
    void read_next();
    void on_read(error_code ec, size_t n);
    void queue(ws_message m);
    void request_close(ws_close_code code, std::string reason);
    void write_next();
    void on_written(error_code ec, size_t n);
    void on_closed(error_code ec);
    void drop();    // close the socket without a handshake: a broken or too slow client
    void finish();  // once: the connection has ended

    boost::asio::any_io_executor strand_;
    const session_shared& shared_;
    std::shared_ptr<http_session> owner_;
    std::shared_ptr<const http_request> req_;
    std::shared_ptr<ws_handler> handler_;
    std::optional<boost::beast::websocket::stream<boost::beast::tcp_stream>> ws_;
    boost::beast::flat_buffer in_;
    std::deque<ws_message> out_;
    ws_message writing_;
    bool accepted_ = false;
    bool write_in_flight_ = false;
    std::optional<boost::beast::websocket::close_reason> close_;  // asked for; sent once the queue drains
    bool close_sent_ = false;
    bool finished_ = false;
    std::chrono::steady_clock::time_point started_;
    cancel_token cancel_;
};

}  // namespace mm::services
