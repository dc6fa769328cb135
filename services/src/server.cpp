#include "services/server.h"

#include <algorithm>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "common/log.h"
#include "connection_registry.h"
#include "listener.h"
#include "services/router.h"
#include "services/routes.h"

namespace mm::services {

namespace net = boost::asio;
using tcp = net::ip::tcp;

// After stop_timeout, how long cancelled requests get for their answers: a stage sees a cancel within a
// step, so this is the last step plus the write.
constexpr std::chrono::milliseconds k_cancel_grace{2'000};

status validate(const server_params& p) {
    using std::chrono::milliseconds;
    if (p.host.empty()) return status(errc::invalid_argument, "host: must not be empty");
    if (p.n_io_threads < 1 || p.n_io_threads > 64) return status(errc::out_of_range, "n_io_threads: must be 1..64");
    if (p.max_connections < 1) return status(errc::out_of_range, "max_connections: must be at least 1");
    if (p.body_limit < 1) return status(errc::out_of_range, "body_limit: must be at least 1 byte");
    if (p.ws_message_limit < 1) return status(errc::out_of_range, "ws_message_limit: must be at least 1 byte");
    if (p.header_limit < 1024) return status(errc::out_of_range, "header_limit: must be at least 1024 bytes");
    using named_timeout = std::pair<const char*, milliseconds>;
    for (auto [name, t] : {named_timeout{"header_timeout", p.header_timeout}, {"body_timeout", p.body_timeout},
                           {"idle_timeout", p.idle_timeout}, {"write_timeout", p.write_timeout},
                           {"linger_timeout", p.linger_timeout}, {"stop_timeout", p.stop_timeout}})
        if (t <= milliseconds(0)) return status(errc::out_of_range, std::string(name) + ": must be positive");
    return ok_status();
}

// Declaration order is destruction order in reverse: the io_context goes before what its pending handlers
// (sessions) reference.
struct server::impl {
    impl(server_params p, std::vector<route> table, metrics* stats)
        : params(std::move(p)),
          routes(std::move(table)),
          registry(params.max_connections),
          shared{params, routes, registry, stats},
          ioc(params.n_io_threads) {}

    const server_params params;
    const router routes;
    connection_registry registry;
    const session_shared shared;
    net::io_context ioc;
    std::shared_ptr<listener> acceptor;
    tcp::endpoint bound;

    std::mutex stop_mu;  // one stop() at a time
    std::vector<std::thread> threads;
    std::mutex run_mu;
    std::condition_variable run_cv;
    int n_running = 0;  // guarded by run_mu: io threads still inside run()

    void run_io_thread() {
        for (;;) {
            try {
                ioc.run();
                break;
            } catch (const std::exception& e) {
                // A handler threw: a bug, but one connection's, so log it and keep serving the rest.
                log_error("io_handler_threw", {{"what", e.what()}});
            }
        }
        std::lock_guard lock(run_mu);
        --n_running;
        run_cv.notify_all();
    }
};

server::server(server_params p, std::vector<route> routes, metrics* stats)
    : impl_(std::make_unique<impl>(std::move(p), std::move(routes), stats)) {}

server::~server() { stop(); }

status server::start() {
    auto& m = *impl_;
    MM_TRY(validate(m.params));
    if (m.acceptor) return status(errc::invalid_argument, "server already started");

    tcp::resolver resolver(m.ioc);
    boost::system::error_code ec;
    auto endpoints = resolver.resolve(m.params.host, std::to_string(m.params.port),
                                      tcp::resolver::passive | tcp::resolver::numeric_service, ec);
    if (ec || endpoints.empty())
        return status(errc::invalid_argument, "host '" + m.params.host + "': " + (ec ? ec.message() : "no address"));

    m.acceptor = std::make_shared<listener>(m.ioc, m.shared);
    MM_TRY(m.acceptor->open(endpoints.begin()->endpoint()));
    m.bound = m.acceptor->local_endpoint();
    m.acceptor->start();

    m.n_running = m.params.n_io_threads;
    for (int i = 0; i < m.params.n_io_threads; ++i) m.threads.emplace_back([&m] { m.run_io_thread(); });
    return ok_status();
}

uint16_t server::port() const { return impl_->bound.port(); }

std::string server::address() const { return impl_->bound.address().to_string(); }

size_t server::n_connections() const { return impl_->registry.n_serving(); }

void server::stop() {
    auto& m = *impl_;
    std::lock_guard stop_lock(m.stop_mu);
    if (m.threads.empty()) return;  // never started, or already stopped
    const auto self = std::this_thread::get_id();
    MM_ASSERT(std::none_of(m.threads.begin(), m.threads.end(), [&](auto& t) { return t.get_id() == self; }));

    // With the acceptor closed and sessions closing, run() returns once the last one is gone. Requests in
    // flight get stop_timeout to finish; then they are cancelled (the meter voids them) and get a short
    // while more for their cancelled answers to go out.
    m.acceptor->stop();
    m.registry.close_all();
    const auto all_closed = [&](std::chrono::milliseconds within) {
        std::unique_lock lock(m.run_mu);
        return m.run_cv.wait_for(lock, within, [&] { return m.n_running == 0; });
    };
    if (!all_closed(m.params.stop_timeout)) {
        log_warn("server_stop_cancelling", {{"open_connections", m.registry.n_serving()}});
        m.registry.cancel_all();
        if (!all_closed(k_cancel_grace)) {
            log_warn("server_stop_timeout", {{"open_connections", m.registry.n_serving()}});
            m.ioc.stop();
        }
    }
    for (auto& t : m.threads) t.join();
    m.threads.clear();
}

}  // namespace mm::services
