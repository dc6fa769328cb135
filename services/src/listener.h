// Accepts connections and hands each to a new session on its own strand.
// Thread safety: open() before the io threads run; stop() from any thread; the rest runs on its strand.
#pragma once

#include <memory>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include "common/status.h"
#include "http_session.h"

namespace mm::services {

class listener : public std::enable_shared_from_this<listener> {
public:
    listener(boost::asio::io_context& ioc, const session_shared& shared);

    status open(const boost::asio::ip::tcp::endpoint& ep);  // bind and listen
    boost::asio::ip::tcp::endpoint local_endpoint() const;
    void start();
    void stop();

private:
    void accept();
    void on_accept(boost::beast::error_code ec, boost::asio::ip::tcp::socket socket);

    boost::asio::io_context& ioc_;
    boost::asio::ip::tcp::acceptor acceptor_;
    boost::asio::steady_timer backoff_;  // after a failed accept (out of descriptors), instead of spinning
    const session_shared& shared_;
};

}  // namespace mm::services
