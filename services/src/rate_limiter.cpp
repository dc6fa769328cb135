#include "services/rate_limiter.h"

#include <algorithm>

namespace mm::services {

std::string rate_reset_text(int64_t ms) {
    if (ms < 1000) return std::to_string(std::max<int64_t>(ms, 0)) + "ms";
    const int64_t s = (ms + 999) / 1000;  // round up: never tell a client to retry too early
    if (s < 60) return std::to_string(s) + "s";
    return std::to_string(s / 60) + "m" + std::to_string(s % 60) + "s";
}

rate_decision rate_limiter::acquire(const std::string& key, const rate_limits& limits, int64_t now_ms) {
    std::lock_guard lock(mu_);
    key_state& st = keys_[key];
    while (!st.starts.empty() && st.starts.front() <= now_ms - k_window_ms) st.starts.pop_front();

    rate_decision d;
    d.limit = limits.rpm;
    d.concurrent_limit = limits.max_concurrent;
    const auto used = static_cast<int64_t>(st.starts.size());
    const int64_t until_slot = st.starts.empty() ? 0 : st.starts.front() + k_window_ms - now_ms;
    if (limits.rpm > 0 && used >= limits.rpm) {
        d.allowed = false;
        d.remaining = 0;
        d.reset_ms = until_slot;
        d.retry_after_s = std::max<int64_t>(1, (until_slot + 999) / 1000);
        return d;
    }
    if (limits.max_concurrent > 0 && st.in_flight >= limits.max_concurrent) {
        d.allowed = false;
        d.by_concurrency = true;
        d.remaining = limits.rpm > 0 ? limits.rpm - used : 0;
        d.reset_ms = until_slot;
        d.retry_after_s = 1;  // a slot frees when any request in flight ends
        return d;
    }
    st.starts.push_back(now_ms);
    ++st.in_flight;
    d.concurrent_remaining = limits.max_concurrent > 0 ? limits.max_concurrent - st.in_flight : 0;
    d.remaining = limits.rpm > 0 ? limits.rpm - used - 1 : 0;
    d.reset_ms = st.starts.front() + k_window_ms - now_ms;
    return d;
}

void rate_limiter::release(const std::string& key) {
    std::lock_guard lock(mu_);
    auto it = keys_.find(key);
    if (it == keys_.end() || it->second.in_flight == 0) return;
    --it->second.in_flight;
}

}  // namespace mm::services
