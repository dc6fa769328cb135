#include "listener.h"

#include <chrono>
#include <string>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core/bind_handler.hpp>

#include "common/log.h"
#include "connection_registry.h"

namespace mm::services {

namespace net = boost::asio;
namespace beast = boost::beast;
using tcp = net::ip::tcp;

listener::listener(net::io_context& ioc, const session_shared& shared)
    : ioc_(ioc), acceptor_(net::make_strand(ioc)), backoff_(acceptor_.get_executor()), shared_(shared) {}

status listener::open(const tcp::endpoint& ep) {
    beast::error_code ec;
    const std::string where = ep.address().to_string() + ":" + std::to_string(ep.port());
    if (acceptor_.open(ep.protocol(), ec); ec)
        return status(errc::io_error, "open socket for " + where + ": " + ec.message());
    // Lets a restarted server bind while the old one's connections sit in TIME_WAIT.
    if (acceptor_.set_option(net::socket_base::reuse_address(true), ec); ec)
        return status(errc::io_error, "set SO_REUSEADDR on " + where + ": " + ec.message());
    if (acceptor_.bind(ep, ec); ec) return status(errc::io_error, "bind " + where + ": " + ec.message());
    if (acceptor_.listen(net::socket_base::max_listen_connections, ec); ec)
        return status(errc::io_error, "listen on " + where + ": " + ec.message());
    return ok_status();
}

tcp::endpoint listener::local_endpoint() const {
    beast::error_code ec;
    return acceptor_.local_endpoint(ec);
}

void listener::start() {
    net::dispatch(acceptor_.get_executor(), beast::bind_front_handler(&listener::accept, shared_from_this()));
}

void listener::stop() {
    net::post(acceptor_.get_executor(), [self = shared_from_this()] {
        beast::error_code ignored;
        self->acceptor_.close(ignored);
        self->backoff_.cancel();
    });
}

void listener::accept() {
    if (!acceptor_.is_open()) return;
    acceptor_.async_accept(net::make_strand(ioc_), beast::bind_front_handler(&listener::on_accept, shared_from_this()));
}

void listener::on_accept(beast::error_code ec, tcp::socket socket) {
    if (!acceptor_.is_open()) return;  // stopped
    if (ec) {
        log_warn("accept_failed", {{"error", ec.message()}});
        backoff_.expires_after(std::chrono::milliseconds(50));
        backoff_.async_wait([self = shared_from_this()](beast::error_code) { self->accept(); });
        return;
    }
    auto session = std::make_shared<http_session>(std::move(socket), shared_);
    switch (shared_.registry.admit(session)) {
        case admission::serve: session->start(); break;
        case admission::reject: session->start_rejected(); break;
        case admission::drop: break;  // the socket closes with the session, here
    }
    accept();
}

}  // namespace mm::services
