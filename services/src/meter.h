// meter: DESIGN.md's steps around every billable request. authenticate -> rate-limit -> (idempotency) ->
// reserve -> run -> commit before the last byte, or void. Rejected, failed and cancelled requests cost
// nothing and still appear in usage with their outcome.
// Thread safety: thread-safe. Ledger calls block (a durable commit waits for its group's fsync), so the
// meter runs them on its own small pool, never on an io thread.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include <boost/asio/thread_pool.hpp>

#include "clock.h"
#include "ledger.h"
#include "services/metrics.h"
#include "services/rate_limiter.h"
#include "services/router.h"
#include "services/server_config.h"

namespace mm::services {

struct caller {
    bool admin = false;
    key_info key;  // empty for the admin key
};

struct meter_params {
    const server_config& config;
    ledger& book;
    const clock& time;
    std::string server_secret;   // the ledger's: bearer keys are hashed once, for the admin check and the lookup
    std::string admin_key_hash{};  // key_hash(server_secret, admin key); empty: no admin key
    metrics* stats = nullptr;
    int n_workers = 4;           // threads for blocking ledger calls
};

class meter {
public:
    explicit meter(meter_params p);
    ~meter();  // waits for its workers

    // Step 1: the bearer key. unauthenticated (401 invalid_api_key) when missing, malformed or unknown.
    result<caller> authenticate(const http_request& req) const;

    // Runs fn on the meter's workers (for routes that call the ledger).
    void run_blocking(std::function<void()> fn);

    // Says whether a request is deterministic (DESIGN meter rule 8: temperature 0 or a fixed seed): the
    // text that identifies its answer (model and canonical body), or nullopt to run it every time.
    using cache_key_fn = std::function<std::optional<std::string>(const http_request&)>;

    // Wraps a billable route: the wrapped route runs only once the request is admitted, and its answer is
    // committed (success) or voided (error, cancel) before it reaches the client. With cacheable, a
    // deterministic request's successful answer is kept, and an identical one later is answered from it
    // at the configured cache_price (outcome cache_hit, header x-mmserve-cache: hit) without running.
    // work says where the handler runs. heavy: on the meter's workers, for a handler that parses, tokenizes
    // or otherwise takes time. quick: on the network thread that read the request, when admission needs no
    // wait (no Idempotency-Key, the budget decided in memory), which saves a hand-off to a worker; for a
    // handler that answers at once or only hands the request to a stage's own threads.
    enum class route_work { heavy, quick };
    // Makes a kept answer into the answer to a new request (its own id and time), for a cache hit.
    using cache_refresh_fn = std::function<std::string(std::string body)>;
    async_route_handler metered(std::string endpoint, async_route_handler run, cache_key_fn cacheable = {},
                                route_work work = route_work::heavy, cache_refresh_fn refresh = {});

    const ledger& book() const { return p_.book; }
    ledger& book() { return p_.book; }

private:
    struct admission;  // a request past authentication, the rate limit and idempotency, on its way to reserve
    // on_io: called on a network thread; whatever would wait moves to the workers.
    struct route_rules {  // what metered() was given besides the route itself
        std::string endpoint;
        cache_key_fn cacheable;
        cache_refresh_fn refresh;
    };
    void admit(const std::shared_ptr<const route_rules>& rules, async_route_handler run,
               std::shared_ptr<const http_request> req, std::shared_ptr<responder> out, bool on_io);
    void reserve_and_run(std::shared_ptr<admission> a, bool on_io);
    // Runs fn now, or on the workers when called on a network thread (fn calls the ledger and may wait).
    void where_it_may_wait(bool on_io, std::function<void()> fn);

    meter_params p_;
    rate_limiter limiter_;
    boost::asio::thread_pool workers_;
};

// "req_" + 12 hex chars of the wall clock in ms + 16 from the CSPRNG: the id of one request and its charge.
std::string request_id_generate();

}  // namespace mm::services
