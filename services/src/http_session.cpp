#include "http_session.h"

#include <string>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core/bind_handler.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>

#include "common/log.h"
#include "connection_registry.h"
#include "services/router.h"

namespace mm::services {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

http_session::http_session(net::ip::tcp::socket socket, const session_shared& shared)
    : stream_(std::move(socket)), shared_(shared) {}

http_session::~http_session() { shared_.registry.release(this); }

void http_session::start() {
    net::dispatch(stream_.get_executor(), beast::bind_front_handler(&http_session::read_next, shared_from_this()));
}

void http_session::start_rejected() {
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] {
        const auto& p = self->shared_.params;
        http_response res = make_error_response(
            status(errc::overloaded, "server is at its limit of " + std::to_string(p.max_connections) +
                                         " connections; retry later"),
            11, /*keep_alive=*/false);
        res.set(http::field::retry_after, "1");
        self->write(std::move(res));
    });
}

void http_session::shutdown() {
    net::post(stream_.get_executor(), beast::bind_front_handler(&http_session::on_shutdown, shared_from_this()));
}

void http_session::on_shutdown() {
    stopping_ = true;
    // A write in flight finishes first (on_write then closes); anything else has no reply owed.
    if (phase_ == phase::reading || phase_ == phase::lingering) close_now();
}

void http_session::read_next() {
    if (stopping_) return close_now();
    phase_ = phase::reading;
    parser_.emplace();
    parser_->header_limit(shared_.params.header_limit);
    parser_->body_limit(shared_.params.body_limit);
    if (n_requests_ == 0 || buffer_.size() > 0) return read_header();
    // Kept alive and nothing pipelined: wait for the next request's first bytes under the idle timeout, so the
    // header timeout starts when the request does.
    stream_.expires_after(shared_.params.idle_timeout);
    stream_.async_read_some(buffer_.prepare(4096),
                            beast::bind_front_handler(&http_session::on_idle_read, shared_from_this()));
}

void http_session::on_idle_read(error_code ec, size_t n) {
    if (ec) return close_now();  // the client left, or idled past the timeout
    buffer_.commit(n);
    read_header();
}

void http_session::read_header() {
    stream_.expires_after(shared_.params.header_timeout);
    http::async_read_header(stream_, buffer_, *parser_,
                            beast::bind_front_handler(&http_session::on_header, shared_from_this()));
}

void http_session::on_header(error_code ec, size_t) {
    if (ec) {
        if (!answer_read_error(ec)) close_now();
        return;
    }
    // Per-route body limits and 100-continue go here once a route needs more than the default.
    stream_.expires_after(shared_.params.body_timeout);
    http::async_read(stream_, buffer_, *parser_, beast::bind_front_handler(&http_session::on_body, shared_from_this()));
}

void http_session::on_body(error_code ec, size_t) {
    if (ec) {
        if (!answer_read_error(ec)) close_now();
        return;
    }
    ++n_requests_;
    stream_.expires_never();  // the handler runs without a clock; the write sets its own
    phase_ = phase::handling;
    auto req = std::make_shared<const http_request>(parser_->release());
    const bool keep_alive = req->keep_alive() && !stopping_;
    // The answer may come from another thread (an async route): it hops back onto this session's strand.
    shared_.routes.dispatch(req, keep_alive, [self = shared_from_this(), req](http_response res) {
        net::dispatch(self->stream_.get_executor(), [self, req, res = std::move(res)]() mutable {
            log_debug("http_request", {{"method", std::string(req->method_string())},
                                       {"target", std::string(req->target())},
                                       {"status", static_cast<int>(res.result_int())}});
            if (self->phase_ == phase::closed) return;
            self->write(std::move(res));
        });
    });
}

bool http_session::answer_read_error(error_code ec) {
    if (stopping_ || phase_ == phase::closed) return false;
    // A timeout has already closed the socket; a client that left (or left mid-message) reads nothing.
    if (ec == beast::error::timeout || ec.category() != http::make_error_code(http::error::body_limit).category() ||
        ec == http::error::end_of_stream || ec == http::error::partial_message)
        return false;
    status s;
    const auto& p = shared_.params;
    if (ec == http::error::body_limit)
        s = status(errc::resource_exhausted, "request body exceeds " + std::to_string(p.body_limit) + " bytes");
    else if (ec == http::error::header_limit)
        s = status(errc::invalid_argument, "request header exceeds " + std::to_string(p.header_limit) + " bytes");
    else
        s = status(errc::invalid_argument, "malformed HTTP request: " + ec.message());
    // The parser cannot resynchronize after a bad message, so the connection closes after this reply.
    const unsigned version = parser_ && parser_->is_header_done() ? parser_->get().version() : 11;
    write(make_error_response(s, version, /*keep_alive=*/false));
    return true;
}

void http_session::write(http_response res) {
    phase_ = phase::writing;
    res_ = std::move(res);
    stream_.expires_after(shared_.params.write_timeout);
    http::async_write(stream_, res_, beast::bind_front_handler(&http_session::on_write, shared_from_this()));
}

void http_session::on_write(error_code ec, size_t) {
    if (ec) return close_now();
    if (res_.need_eof() || stopping_) return close_lingering();
    read_next();
}

// Closing a socket with unread input sends a reset, which can destroy our reply before the client reads it
// (a 413 while the client is still sending its body). So: send FIN, read and discard for a short while, close.
void http_session::close_lingering() {
    phase_ = phase::lingering;
    error_code ignored;
    stream_.socket().shutdown(net::ip::tcp::socket::shutdown_send, ignored);
    stream_.expires_after(shared_.params.linger_timeout);
    stream_.async_read_some(net::buffer(drain_),
                            beast::bind_front_handler(&http_session::on_linger_read, shared_from_this()));
}

void http_session::on_linger_read(error_code ec, size_t) {
    if (ec) return close_now();  // the client's FIN, a reset or the linger timeout
    stream_.async_read_some(net::buffer(drain_),
                            beast::bind_front_handler(&http_session::on_linger_read, shared_from_this()));
}

void http_session::close_now() {
    phase_ = phase::closed;
    stream_.close();  // cancels what is pending; those handlers see phase::closed or an error and stop
}

}  // namespace mm::services
