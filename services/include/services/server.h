// The HTTP server: an acceptor, one session per connection on its own strand, a route table.
// Boost.Beast types appear here through the route table; callers are services/ and its tests only.
// Thread safety: thread-safe. start() once; port(), n_connections() and stop() from any thread that is not one
// of the server's own io threads (stop() joins them).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "common/status.h"
#include "services/router.h"
#include "services/routes.h"

namespace mm::services {

struct server_params {
    std::string host = "127.0.0.1";  // an address or a name to resolve; "0.0.0.0" serves every interface
    uint16_t port = 8080;            // 0: the OS picks a free port; read it back with port()
    int n_io_threads = 2;            // network only: compute never runs on these
    size_t max_connections = 256;    // beyond it a new connection gets 503 overloaded and is closed
    uint64_t body_limit = 1 << 20;   // bytes; a larger request body gets 413
    uint32_t header_limit = 16 << 10;                   // bytes of request line + headers
    std::chrono::milliseconds header_timeout{30'000};   // the whole header, from its first byte (slow clients)
    std::chrono::milliseconds body_timeout{60'000};     // the whole body, after the header
    std::chrono::milliseconds idle_timeout{30'000};     // a kept-alive connection waiting for its next request
    std::chrono::milliseconds write_timeout{30'000};    // one response, or one chunk of a stream, to a client that does not read
    std::chrono::milliseconds linger_timeout{1'000};    // draining a closed connection so the client reads our reply
    std::chrono::milliseconds stop_timeout{5'000};      // stop(): how long requests in flight get before a cancel
    std::chrono::milliseconds stream_heartbeat{15'000}; // a quiet stream gets an SSE comment this often
    size_t stream_queue_chunks = 4096;                  // chunks (or WebSocket messages) queued to a client that reads
                                                        // too slowly: then it is dropped
    uint64_t ws_message_limit = 1 << 20;                // bytes of one WebSocket message from a client; larger: close 1009
};
status validate(const server_params& p);

class server {
public:
    // routes: the table to serve; the product's by default. Tests add their own (a test-only stage) here, so
    // nothing in the product binary can reach them.
    // stats: counts every answered request (may be null; must outlive the server).
    explicit server(server_params p, std::vector<route> routes = server_routes(), metrics* stats = nullptr);
    ~server();  // stops if still running
    server(const server&) = delete;
    server& operator=(const server&) = delete;

    // Resolves and binds, then serves on the io threads. Returns once the port is bound (or why it is not).
    status start();
    // The bound port (the OS's pick when params.port was 0) and address; valid after a successful start().
    uint16_t port() const;
    std::string address() const;
    size_t n_connections() const;
    // Stops accepting, closes idle connections, lets requests in flight finish (up to stop_timeout; then they
    // are cancelled and get a little longer for their cancelled answers), then joins the io threads. Idempotent.
    void stop();

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace mm::services
