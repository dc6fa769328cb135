#include "ws_session.h"

#include <boost/asio/dispatch.hpp>
#include <boost/beast/core/bind_handler.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/websocket/error.hpp>
#include <boost/beast/websocket/stream_base.hpp>

#include "common/log.h"
#include "http_session.h"
#include "services/metrics.h"
#include "services/router.h"

namespace mm::services {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;

namespace {

class ws_link : public ws_channel {
public:
    ws_link(std::weak_ptr<ws_session> s, cancel_token c) : session_(std::move(s)), cancel_(std::move(c)) {}
    void send(ws_message m) override {
        if (auto s = session_.lock()) s->send(std::move(m));
    }
    void close(ws_close_code code, std::string reason) override {
        if (auto s = session_.lock()) s->close(code, std::move(reason));
    }
    const cancel_token& cancel() const override { return cancel_; }

private:
    std::weak_ptr<ws_session> session_;
    cancel_token cancel_;  // shares the session's flag, and outlives it
};

}  // namespace

std::shared_ptr<ws_channel> ws_session::channel() { return std::make_shared<ws_link>(weak_from_this(), cancel_); }

ws_session::ws_session(net::any_io_executor strand, const session_shared& shared, std::shared_ptr<http_session> owner)
    : strand_(std::move(strand)), shared_(shared), owner_(std::move(owner)) {}

void ws_session::start(beast::tcp_stream stream, std::shared_ptr<const http_request> req,
                       std::shared_ptr<ws_handler> handler) {
    req_ = std::move(req);
    handler_ = std::move(handler);
    started_ = std::chrono::steady_clock::now();
    const auto& p = shared_.params;
    stream.expires_never();  // the websocket stream keeps its own clocks, set below
    ws_.emplace(std::move(stream));
    websocket::stream_base::timeout t{};
    t.handshake_timeout = p.header_timeout;  // the opening and the closing handshake
    t.idle_timeout = p.idle_timeout;         // with pings at half of it: a client that stops answering is dropped
    t.keep_alive_pings = true;
    ws_->set_option(t);
    ws_->read_message_max(p.ws_message_limit);
    ws_->auto_fragment(false);
    ws_->async_accept(*req_, beast::bind_front_handler(&ws_session::on_accept, shared_from_this()));
}

void ws_session::abandon() {
    finished_ = true;
    cancel_.cancel();
    owner_.reset();
}

void ws_session::shutdown() {
    cancel_.cancel();
    request_close(ws_close_code::going_away, "server is stopping");
}

void ws_session::send(ws_message m) {
    net::dispatch(strand_, [self = shared_from_this(), m = std::move(m)]() mutable { self->queue(std::move(m)); });
}

void ws_session::close(ws_close_code code, std::string reason) {
    net::dispatch(strand_, [self = shared_from_this(), code, reason = std::move(reason)]() mutable {
        self->request_close(code, std::move(reason));
    });
}

void ws_session::on_accept(error_code ec) {
    if (ec) {
        log_debug("ws_handshake_failed", {{"error", ec.message()}});
        return finish();
    }
    accepted_ = true;
    read_next();
    write_next();  // what the route sent (or a close it asked for) before the handshake was done
}

void ws_session::read_next() {
    ws_->async_read(in_, beast::bind_front_handler(&ws_session::on_read, shared_from_this()));
}

void ws_session::on_read(error_code ec, size_t) {
    if (ec) {
        // Beast has already answered what it could: the client's close, 1009 for a message over the limit,
        // 1002/1007 for a broken frame; a timeout or a vanished client just ends.
        if (ec != websocket::error::closed && ec != net::error::operation_aborted)
            log_debug("ws_read_ended", {{"error", ec.message()}});
        return finish();
    }
    ws_message m{beast::buffers_to_string(in_.data()), ws_->got_binary()};
    in_.consume(in_.size());
    if (!close_ && handler_) handler_->on_message(std::move(m));  // after we asked to close, input is ignored
    if (!finished_) read_next();
}

void ws_session::queue(ws_message m) {
    if (finished_ || close_) return;
    if (out_.size() >= shared_.params.stream_queue_chunks) {
        log_warn("ws_client_too_slow", {{"queued", static_cast<int64_t>(out_.size())}});
        return drop();
    }
    out_.push_back(std::move(m));
    write_next();
}

void ws_session::request_close(ws_close_code code, std::string reason) {
    if (finished_ || close_) return;
    if (reason.size() > 123) reason.resize(123);  // a close frame's payload is at most 125 bytes with the code
    close_.emplace(static_cast<websocket::close_code>(code), beast::string_view(reason));
    cancel_.cancel();
    write_next();
}

void ws_session::write_next() {
    if (!accepted_ || finished_ || write_in_flight_ || close_sent_) return;
    if (!out_.empty()) {
        writing_ = std::move(out_.front());
        out_.pop_front();
        write_in_flight_ = true;
        ws_->binary(writing_.binary);
        ws_->async_write(net::buffer(writing_.data), beast::bind_front_handler(&ws_session::on_written, shared_from_this()));
        return;
    }
    if (close_) {
        close_sent_ = true;
        ws_->async_close(*close_, beast::bind_front_handler(&ws_session::on_closed, shared_from_this()));
    }
}

void ws_session::on_written(error_code ec, size_t) {
    write_in_flight_ = false;
    if (ec) return finish();
    write_next();
}

void ws_session::on_closed(error_code ec) {
    if (ec && ec != net::error::operation_aborted) log_debug("ws_close_failed", {{"error", ec.message()}});
    finish();
}

void ws_session::drop() {
    cancel_.cancel();
    beast::error_code ignored;
    beast::get_lowest_layer(*ws_).socket().close(ignored);  // the pending read fails, and finish() follows
    finish();
}

void ws_session::finish() {
    if (finished_) return;
    finished_ = true;
    cancel_.cancel();
    out_.clear();
    if (handler_) handler_->on_close();
    handler_.reset();
    if (shared_.stats && req_) {
        const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
        shared_.stats->request_finished(shared_.routes.route_label(*req_), "GET", 101, secs);
    }
    owner_.reset();  // frees the connection slot once the HTTP session's last reference goes
}

}  // namespace mm::services
