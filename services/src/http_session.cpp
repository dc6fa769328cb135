#include "http_session.h"

#include <atomic>
#include <string>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core/bind_handler.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/websocket/rfc6455.hpp>

#include "common/log.h"
#include "connection_registry.h"
#include "services/router.h"
#include "services/metrics.h"
#include "ws_session.h"

namespace mm::services {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

// The session's side of a responder: each call hops onto the session's strand. Until the route has answered
// it holds the session alive and keeps the io_context running (so a graceful stop waits for it, up to
// stop_timeout); a route that lets go without answering gets a 500 written for it. A route must answer
// before the server is destroyed.
class session_responder : public responder {
public:
    session_responder(std::shared_ptr<http_session> s, unsigned version, bool keep_alive)
        : session_(std::move(s)), version_(version), keep_alive_(keep_alive) {
        work_.emplace(session_->exec_);
    }
    ~session_responder() override {
        if (!answered_.exchange(true)) {
            log_error("route_dropped_request", {{"target", std::string(session_->req_ ? session_->req_->target() : "")}});
            post([res = make_error_response(status(errc::internal, "the route gave no answer"), version_, keep_alive_)](
                     http_session& s) mutable { s.answer(std::move(res)); });
        }
    }

    void reply(result<route_reply> r) override {
        if (answered_.exchange(true)) return;  // a second answer is a bug in the route; the first one stands
        post_last([res = to_response(std::move(r))](http_session& s) mutable { s.answer(std::move(res)); });
    }
    void stream_begin(route_reply head) override {
        if (answered_.load() || began_.exchange(true)) return;
        post([res = to_response(std::move(head))](http_session& s) mutable { s.begin_stream(std::move(res)); });
    }
    void stream_write(std::string chunk) override {
        if (chunk.empty() || answered_.load()) return;  // an empty chunk would end the stream on the wire
        post([chunk = std::move(chunk)](http_session& s) mutable { s.queue_chunk(std::move(chunk), false); });
    }
    void stream_end(std::string last_chunk) override {
        if (answered_.exchange(true)) return;
        post_last([last = std::move(last_chunk)](http_session& s) mutable {
            if (!last.empty()) s.queue_chunk(std::move(last), false);
            s.queue_chunk({}, true);
        });
    }
    void stream_fail(status) override { stream_end({}); }  // on the wire a failed stream ends like any other
    const cancel_token& cancel() const override { return cancel_; }
    void cancel_now() { cancel_.cancel(); }

private:
    template <class F>
    void post(F f) {
        net::dispatch(session_->exec_, [s = session_, f = std::move(f)]() mutable { f(*s); });
    }
    // The answer: the session and the work guard travel with it and are let go on the io thread. Released
    // here after posting, they could be touched after the client already has its answer and the server is
    // gone (AddressSanitizer caught that race on the ledger's thread). The route may keep this object as
    // long as it likes; it holds nothing of the server any more.
    template <class F>
    void post_last(F f) {
        http_session& target = *session_;  // kept alive by the handler, which owns the session now
        net::dispatch(target.exec_, [s = std::move(session_), work = std::move(work_), f = std::move(f)]() mutable { f(*s); });
    }
    http_response to_response(result<route_reply> r) const {
        if (!r) return make_error_response(r.error(), version_, keep_alive_);
        http_response res = make_response(r->status, r->content_type, std::move(r->body), version_, keep_alive_);
        for (auto& [name, value] : r->headers) res.set(beast_view(name), beast_view(value));
        return res;
    }

    std::shared_ptr<http_session> session_;
    // Keeps io threads running while the route works; an optional so letting go drops its executor copy too.
    std::optional<net::executor_work_guard<net::any_io_executor>> work_;
    const unsigned version_;
    const bool keep_alive_;
    std::atomic<bool> answered_{false};
    std::atomic<bool> began_{false};
    cancel_token cancel_;
};

http_session::http_session(net::ip::tcp::socket socket, const session_shared& shared)
    : exec_(socket.get_executor()), stream_(std::move(socket)), shared_(shared), heartbeat_(exec_), read_timer_(exec_) {}

http_session::~http_session() { shared_.registry.release(this); }

void http_session::start() {
    net::dispatch(exec_, beast::bind_front_handler(&http_session::read_next, shared_from_this()));
}

void http_session::start_rejected() {
    net::dispatch(exec_, [self = shared_from_this()] {
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
    net::post(exec_, beast::bind_front_handler(&http_session::on_shutdown, shared_from_this()));
}

void http_session::on_shutdown() {
    stopping_ = true;
    // A request being handled (or streamed) goes on to its answer, then the connection closes; stop()
    // cancels it if it outlives the deadline. Anything else has no reply owed. A WebSocket gets 1001 now:
    // it has no answer to finish.
    if (phase_ == phase::reading || phase_ == phase::lingering) close_now();
    if (phase_ == phase::websocket)
        if (auto ws = ws_.lock()) ws->shutdown();
}

void http_session::cancel() {
    net::post(exec_, [self = shared_from_this()] {
        if (self->phase_ == phase::handling || self->phase_ == phase::streaming) self->responder_cancel();
    });
}

void http_session::read_next() {
    if (stopping_) return close_now();
    phase_ = phase::reading;
    parser_.emplace();
    parser_->header_limit(shared_.params.header_limit);
    body_limit_ = shared_.routes.body_limit_max(shared_.params.body_limit);
    parser_->body_limit(body_limit_);
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
    stream_.expires_never();
    arm_read_timer(shared_.params.header_timeout);
    http::async_read_header(stream_, buffer_, *parser_,
                            beast::bind_front_handler(&http_session::on_header, shared_from_this()));
}

// The generation tells a wait that fired just before a cancel (its handler already queued) from the one armed
// now, so the header's timer can never cut off the body.
void http_session::arm_read_timer(std::chrono::milliseconds limit) {
    read_timed_out_ = false;
    read_timer_.expires_after(limit);
    read_timer_.async_wait([self = shared_from_this(), gen = ++read_gen_](error_code ec) {
        if (gen == self->read_gen_) self->on_read_timeout(ec);
    });
}

void http_session::on_read_timeout(error_code ec) {
    if (ec || phase_ != phase::reading || parser_->is_done()) return;
    read_timed_out_ = true;
    stream_.socket().cancel();  // on_header or on_body sees operation_aborted and answers
}

// The 408 for a request cut off by its header or body timeout; a connection silent since it opened (or a
// server stopping) is just closed.
void http_session::answer_read_timeout(const char* what, std::chrono::milliseconds limit) {
    if (stopping_ || (buffer_.size() == 0 && !parser_->got_some())) return close_now();
    record_refused(408);
    write(make_error_response(status(errc::request_timeout, std::string(what) + " not received within " +
                                                                std::to_string(limit.count()) + " ms"),
                              parser_->is_header_done() ? parser_->get().version() : 11, /*keep_alive=*/false));
}

void http_session::on_header(error_code ec, size_t) {
    read_timer_.cancel();
    if (ec && read_timed_out_) return answer_read_timeout("request header", shared_.params.header_timeout);
    if (ec) {
        if (!answer_read_error(ec)) close_now();
        return;
    }
    // The route's own limit (an upload's is larger than a JSON body's), known now from the header alone.
    const auto& head = parser_->get();
    const uint64_t limit = shared_.routes.body_limit(head.method(), std_view(head.target()), shared_.params.body_limit);
    parser_->body_limit(limit);  // chunked bodies are checked against it as they arrive
    body_limit_ = limit;
    if (auto len = parser_->content_length(); len && *len > limit) {  // Beast checked only the header-time limit
        if (!answer_read_error(http::error::body_limit)) close_now();
        return;
    }
    arm_read_timer(shared_.params.body_timeout);
    http::async_read(stream_, buffer_, *parser_, beast::bind_front_handler(&http_session::on_body, shared_from_this()));
}

void http_session::on_body(error_code ec, size_t) {
    read_timer_.cancel();
    if (ec && read_timed_out_) return answer_read_timeout("request body", shared_.params.body_timeout);
    if (ec) {
        if (!answer_read_error(ec)) close_now();
        return;
    }
    ++n_requests_;
    stream_.expires_never();  // the handler runs without a clock; the write sets its own
    phase_ = phase::handling;
    req_ = std::make_shared<const http_request>(parser_->release());
    keep_alive_ = req_->keep_alive() && !stopping_;
    started_ = std::chrono::steady_clock::now();
    finishing_ = false;
    last_sent_ = false;
    last_queued_ = false;
    chunks_.clear();
    if (shared_.stats) shared_.stats->request_started();
    in_flight_ = true;
    if (beast::websocket::is_upgrade(*req_))
        if (const route* r = shared_.routes.ws_route(*req_)) return upgrade(*r);
    auto out = std::make_shared<session_responder>(shared_from_this(), req_->version(), keep_alive_);
    responder_ = out;
    watch_client();
    shared_.routes.dispatch(req_, std::move(out));
}

// The route decides, before the handshake, whether this upgrade goes ahead; a refusal is answered as HTTP.
void http_session::upgrade(const route& r) {
    if (stopping_)  // a stop already passed this session by; a new WebSocket would outlive it
        return write(make_error_response(status(errc::overloaded, "server is stopping"), req_->version(), false));
    auto ws = std::make_shared<ws_session>(exec_, shared_, shared_from_this());
    result<std::shared_ptr<ws_handler>> handler = status(errc::internal, "route threw");
    try {
        handler = r.ws_handler(*req_, ws->channel());
    } catch (const std::exception& e) {
        log_error("route_threw", {{"target", std::string(req_->target())}, {"what", e.what()}});
    }
    if (handler && !*handler) handler = status(errc::internal, "the route gave no handler");
    if (!handler) {
        ws->abandon();
        return write(make_error_response(handler.error(), req_->version(), keep_alive_));
    }
    phase_ = phase::websocket;
    in_flight_ = false;  // the WebSocket session records it when it ends
    ws_ = ws;
    ws->start(std::move(stream_), req_, std::move(*handler));
    req_.reset();
}

bool http_session::answer_read_error(error_code ec) {
    if (stopping_ || phase_ == phase::closed) return false;
    // A timeout has already closed the socket; a client that left (or left mid-message) reads nothing.
    if (ec == beast::error::timeout || ec.category() != http::make_error_code(http::error::body_limit).category() ||
        ec == http::error::end_of_stream || ec == http::error::partial_message)
        return false;
    // The parser cannot resynchronize after a bad message, so the connection closes after this reply.
    const unsigned version = parser_ && parser_->is_header_done() ? parser_->get().version() : 11;
    if (ec == http::error::header_limit) {  // its own status (RFC 6585), which no errc maps to
        record_refused(431);
        write(make_error_response(
            "request header exceeds " + std::to_string(shared_.params.header_limit) + " bytes",
            {431, "invalid_request_error", "request_header_too_large"}, version, /*keep_alive=*/false));
        return true;
    }
    const status s = ec == http::error::body_limit
                         ? status(errc::resource_exhausted, "request body exceeds " + std::to_string(body_limit_) + " bytes")
                         : status(errc::invalid_argument, "malformed HTTP request: " + ec.message());
    record_refused(http_error_for(s.code()).status);
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
    after_response();
}

void http_session::after_response() {
    if (phase_ == phase::writing && req_) record(res_.result_int());
    const bool eof = phase_ == phase::streaming ? !keep_alive_ : res_.need_eof();
    req_.reset();
    responder_.reset();
    heartbeat_.cancel();
    if (eof || stopping_) return close_lingering();
    read_next();
}

void http_session::record_refused(unsigned status) {
    if (!shared_.stats) return;
    const bool has_head = parser_ && parser_->is_header_done();
    shared_.stats->request_refused(has_head ? shared_.routes.route_label(parser_->get()) : "unparsed",
                                   has_head ? std_view(parser_->get().method_string()) : "unknown", status);
}

void http_session::record(unsigned status) {
    if (!in_flight_) return;
    in_flight_ = false;
    if (!shared_.stats) return;
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
    shared_.stats->request_finished(shared_.routes.route_label(*req_), std_view(req_->method_string()), status, secs);
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
    if (in_flight_ && req_) record(499);  // nginx's "client closed": the answer did not get out
    phase_ = phase::closed;
    read_timer_.cancel();
    stream_.close();  // cancels what is pending; those handlers see phase::closed or an error and stop
}

void http_session::responder_cancel() {
    if (auto r = responder_.lock()) r->cancel_now();
}

// While the route works, a read stays open: EOF or a reset means the client left. Bytes that arrive are the
// next pipelined request; they are kept, and the watch ends there.
void http_session::watch_client() {
    if (buffer_.size() > 0) return;
    watching_ = true;
    stream_.async_read_some(buffer_.prepare(4096), beast::bind_front_handler(&http_session::on_watch, shared_from_this()));
}

void http_session::on_watch(error_code ec, size_t n) {
    watching_ = false;
    if (phase_ == phase::closed) return;
    if (!ec) {
        buffer_.commit(n);
    } else if (ec != net::error::operation_aborted) {
        return client_gone();
    }
    if (held_) {
        http_response res = std::move(*held_);
        held_.reset();
        return write(std::move(res));
    }
    if (finishing_) after_response();
}

void http_session::client_gone() {
    log_debug("client_gone", {{"target", req_ ? std::string(req_->target()) : std::string()}});
    responder_cancel();
    heartbeat_.cancel();
    close_now();
}

void http_session::answer(http_response res) {
    if (phase_ != phase::handling) return;  // the client left, or this request already has its answer
    if (watching_) {
        held_ = std::move(res);
        stream_.socket().cancel();  // stand the watch down first: its timer would also time the write
        return;
    }
    write(std::move(res));
}

void http_session::begin_stream(http_response head) {
    if (phase_ != phase::handling) return;
    phase_ = phase::streaming;
    stream_head_.emplace(head.result(), head.version());
    for (const auto& field : head) stream_head_->set(field.name_string(), field.value());
    stream_head_->erase(http::field::content_length);
    stream_head_->chunked(true);
    stream_head_->keep_alive(keep_alive_);
    stream_sr_.emplace(*stream_head_);
    // A stream may run long, so each write has its own deadline: a client that stops reading is caught by
    // that, or by the queue bound when the route outpaces it. (The client watch's read is pending, so this
    // times the write alone.)
    stream_.expires_after(shared_.params.write_timeout);
    chunk_in_flight_ = true;
    http::async_write_header(stream_, *stream_sr_,
                             beast::bind_front_handler(&http_session::on_chunk_written, shared_from_this()));
}

void http_session::queue_chunk(std::string chunk, bool last) {
    if (phase_ != phase::streaming) {
        // stream_end without stream_begin: a route bug; answer so the client is not left waiting.
        if (last && phase_ == phase::handling)
            answer(make_error_response(status(errc::internal, "the route ended a stream it never began"), 11, false));
        return;
    }
    if (last) {
        last_queued_ = true;
    } else {
        if (chunks_.size() >= shared_.params.stream_queue_chunks) {
            log_warn("stream_client_too_slow", {{"queued", static_cast<int64_t>(chunks_.size())}});
            return client_gone();
        }
        chunks_.push_back(std::move(chunk));
    }
    if (!chunk_in_flight_) write_next_chunk();
}

void http_session::write_next_chunk() {
    if (chunks_.empty() && !last_queued_) return arm_heartbeat();
    heartbeat_.cancel();
    if (chunks_.empty()) {
        last_sent_ = true;
        chunk_wire_ = "0\r\n\r\n";
    } else {
        const std::string& c = chunks_.front();
        char size[20];
        std::snprintf(size, sizeof size, "%zx\r\n", c.size());
        chunk_wire_ = size;
        chunk_wire_ += c;
        chunk_wire_ += "\r\n";
        chunks_.pop_front();
    }
    chunk_in_flight_ = true;
    stream_.expires_after(shared_.params.write_timeout);
    net::async_write(stream_, net::buffer(chunk_wire_),
                     beast::bind_front_handler(&http_session::on_chunk_written, shared_from_this()));
}

void http_session::on_chunk_written(error_code ec, size_t) {
    chunk_in_flight_ = false;
    if (phase_ == phase::closed) return;
    if (ec) return client_gone();
    if (last_sent_) {
        record(stream_head_->result_int());
        return finish_response();
    }
    write_next_chunk();
}

void http_session::arm_heartbeat() {
    heartbeat_.expires_after(shared_.params.stream_heartbeat);
    heartbeat_.async_wait([self = shared_from_this()](error_code ec) {
        if (ec || self->phase_ != phase::streaming || self->chunk_in_flight_ || self->last_queued_) return;
        self->queue_chunk(": keep-alive\n\n", false);  // an SSE comment: clients ignore it, proxies see traffic
    });
}

void http_session::finish_response() {
    if (watching_) {
        finishing_ = true;
        stream_.socket().cancel();
        return;
    }
    after_response();
}

}  // namespace mm::services
