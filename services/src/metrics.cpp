#include "services/metrics.h"

#include <cstdio>
#include <tuple>

namespace mm::services {
namespace {

// Label values are our own route paths and names, but escape anyway: the format breaks on " \ and newline.
std::string label(std::string_view v) {
    std::string out;
    for (char c : v) {
        if (c == '"' || c == '\\') out += '\\';
        if (c == '\n') {
            out += "\\n";
            continue;
        }
        out += c;
    }
    return out;
}

std::string num(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.9g", v);
    return buf;
}

}  // namespace

void metrics::request_refused(std::string_view route, std::string_view method, unsigned status) {
    std::lock_guard lock(mu_);
    ++requests_[{std::string(route), std::string(method), status}];
}

void metrics::request_finished(std::string_view route, std::string_view method, unsigned status, double seconds) {
    in_flight_.fetch_sub(1, std::memory_order_relaxed);
    std::lock_guard lock(mu_);
    ++requests_[{std::string(route), std::string(method), status}];
    histogram& h = latency_[std::string(route)];
    size_t b = 0;
    while (b < k_buckets.size() && seconds > k_buckets[b]) ++b;
    if (b < k_buckets.size()) ++h.counts[b];
    ++h.n;
    h.sum += seconds;
}

void metrics::meter_event(std::string_view endpoint, std::string_view outcome) {
    std::lock_guard lock(mu_);
    ++meter_[{std::string(endpoint), std::string(outcome)}];
}

void metrics::queue_depth_source(std::string stage, std::function<int64_t()> depth) {
    std::lock_guard lock(mu_);
    queues_[std::move(stage)] = std::move(depth);
}

std::string metrics::render() const {
    std::lock_guard lock(mu_);
    std::string out;
    out += "# HELP mmserve_http_requests_total HTTP requests answered, by route, method and status.\n";
    out += "# TYPE mmserve_http_requests_total counter\n";
    for (const auto& [k, n] : requests_) {
        const auto& [route, method, status] = k;
        out += "mmserve_http_requests_total{route=\"" + label(route) + "\",method=\"" + label(method) + "\",status=\"" +
               std::to_string(status) + "\"} " + std::to_string(n) + "\n";
    }
    out += "# HELP mmserve_http_request_duration_seconds Time from the request's last byte read to its answer.\n";
    out += "# TYPE mmserve_http_request_duration_seconds histogram\n";
    for (const auto& [route, h] : latency_) {
        uint64_t cumulative = 0;
        const std::string r = label(route);
        for (size_t b = 0; b < k_buckets.size(); ++b) {
            cumulative += h.counts[b];
            out += "mmserve_http_request_duration_seconds_bucket{route=\"" + r + "\",le=\"" + num(k_buckets[b]) + "\"} " +
                   std::to_string(cumulative) + "\n";
        }
        out += "mmserve_http_request_duration_seconds_bucket{route=\"" + r + "\",le=\"+Inf\"} " + std::to_string(h.n) + "\n";
        out += "mmserve_http_request_duration_seconds_sum{route=\"" + r + "\"} " + num(h.sum) + "\n";
        out += "mmserve_http_request_duration_seconds_count{route=\"" + r + "\"} " + std::to_string(h.n) + "\n";
    }
    out += "# HELP mmserve_http_requests_in_flight Requests read and not yet answered.\n";
    out += "# TYPE mmserve_http_requests_in_flight gauge\n";
    out += "mmserve_http_requests_in_flight " + std::to_string(in_flight_.load()) + "\n";
    out += "# HELP mmserve_stage_queue_depth Requests waiting in a stage's queue.\n";
    out += "# TYPE mmserve_stage_queue_depth gauge\n";
    for (const auto& [stage, depth] : queues_)
        out += "mmserve_stage_queue_depth{stage=\"" + label(stage) + "\"} " + std::to_string(depth()) + "\n";
    out += "# HELP mmserve_meter_requests_total Metered requests by endpoint and outcome (committed, voided, unbilled).\n";
    out += "# TYPE mmserve_meter_requests_total counter\n";
    for (const auto& [k, n] : meter_)
        out += "mmserve_meter_requests_total{endpoint=\"" + label(k.first) + "\",outcome=\"" + label(k.second) + "\"} " +
               std::to_string(n) + "\n";
    return out;
}

}  // namespace mm::services
