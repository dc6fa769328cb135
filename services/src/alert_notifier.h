// alert_notifier: delivers budget alerts to alerts.webhook_url as JSON POSTs, off the ledger's writer
// thread, retrying with exponential backoff. Every alert is also logged when it is queued, so an
// unreachable webhook loses nothing that the log does not have.
// Thread safety: thread-safe. notify() never blocks on the network.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>
#include <thread>

#include "http_client.h"
#include "ledger.h"

namespace mm::services {

struct alert_notifier_params {
    std::string webhook_url;  // http://host[:port]/path; empty: log only (https needs a TLS proxy)
    int max_attempts = 6;
    std::chrono::milliseconds first_backoff{500};  // doubled after each failed attempt
    std::chrono::milliseconds timeout{5000};       // per attempt
    size_t max_queued = 10'000;                     // beyond it the oldest undelivered alert is dropped (and logged)
};

class alert_notifier {
public:
    explicit alert_notifier(alert_notifier_params p);
    ~alert_notifier();  // stops retrying; undelivered alerts stay in the ledger and the log

    void notify(const alert& a);
    alert_sink as_sink() { return [this](const alert& a) { notify(a); }; }

    static std::string alert_json(const alert& a);

private:
    void run();
    bool deliver(const std::string& body);  // one attempt

    alert_notifier_params p_;
    http_url url_;  // empty host: log only
    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<std::string> queue_;  // guarded by mu_
    bool stop_ = false;              // guarded by mu_
    std::thread worker_;
};

}  // namespace mm::services
