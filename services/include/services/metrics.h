// metrics: what /metrics exposes in Prometheus's text format: requests by route and status, latency
// histograms by route, requests in flight, queue depth per stage, and the meter's charges and voids.
// Routes are labelled by their table path (or "unmatched"), never by the raw target, so a client cannot
// grow the label set.
// Thread safety: thread-safe.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>

namespace mm::services {

class metrics {
public:
    static constexpr std::array<double, 13> k_buckets{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};

    void request_started() { in_flight_.fetch_add(1, std::memory_order_relaxed); }
    void request_finished(std::string_view route, std::string_view method, unsigned status, double seconds);
    // A request refused while it was still being read (400, 408, 413, 431): counted, never in flight, no latency.
    void request_refused(std::string_view route, std::string_view method, unsigned status);
    void meter_event(std::string_view endpoint, std::string_view outcome);  // committed, voided, unbilled...
    // Queue depth of a stage, read when /metrics is rendered.
    void queue_depth_source(std::string stage, std::function<int64_t()> depth);

    std::string render() const;  // text exposition format 0.0.4

private:
    struct histogram {
        std::array<uint64_t, k_buckets.size()> counts{};  // per bucket, not cumulative
        uint64_t n = 0;
        double sum = 0;
    };
    mutable std::mutex mu_;
    std::map<std::tuple<std::string, std::string, unsigned>, uint64_t> requests_;  // guarded by mu_
    std::map<std::string, histogram> latency_;                                   // guarded by mu_
    std::map<std::pair<std::string, std::string>, uint64_t> meter_;              // guarded by mu_
    std::map<std::string, std::function<int64_t()>> queues_;                     // guarded by mu_
    std::atomic<int64_t> in_flight_{0};
};

}  // namespace mm::services
