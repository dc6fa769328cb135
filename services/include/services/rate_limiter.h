// rate_limiter: the meter's step 2, per key: requests per minute over a sliding 60 s window, and requests in
// flight. In memory: a rejected request costs nothing, and limits restart with the process (budgets, the
// part that must survive, live in the ledger).
// Thread safety: thread-safe.
#pragma once

#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <unordered_map>

namespace mm::services {

struct rate_limits {
    int64_t rpm = 0;             // requests per rolling minute; 0: unlimited
    int64_t max_concurrent = 0;  // requests in flight; 0: unlimited
};

struct rate_decision {
    bool allowed = true;
    bool by_concurrency = false;  // rejected for requests in flight rather than per minute
    int64_t limit = 0;            // x-ratelimit-limit-requests (rpm; 0 when unlimited)
    int64_t remaining = 0;        // x-ratelimit-remaining-requests, after this request
    int64_t reset_ms = 0;         // x-ratelimit-reset-requests: until a minute slot frees
    int64_t retry_after_s = 0;    // Retry-After on a rejection, whole seconds, at least 1
    int64_t concurrent_limit = 0;      // x-ratelimit-limit-concurrent (max_concurrent; 0 when unlimited)
    int64_t concurrent_remaining = 0;  // x-ratelimit-remaining-concurrent, after this request
};

// "1s", "6m0s", "250ms": the duration format of OpenAI's x-ratelimit-reset-* headers.
std::string rate_reset_text(int64_t ms);

class rate_limiter {
public:
    static constexpr int64_t k_window_ms = 60'000;

    // Admits (and counts) one request for key at now_ms, or says why not; an admitted request must be
    // release()d when it ends, whatever its outcome.
    rate_decision acquire(const std::string& key, const rate_limits& limits, int64_t now_ms);
    void release(const std::string& key);

private:
    struct key_state {
        std::deque<int64_t> starts;  // admission times inside the window, oldest first
        int64_t in_flight = 0;
    };
    std::mutex mu_;
    std::unordered_map<std::string, key_state> keys_;  // guarded by mu_
};

}  // namespace mm::services
