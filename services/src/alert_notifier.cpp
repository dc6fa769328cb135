#include "alert_notifier.h"

#include <nlohmann/json.hpp>

#include "common/log.h"
#include "http_client.h"

namespace mm::services {

std::string alert_notifier::alert_json(const alert& a) {
    return nlohmann::json{{"type", "budget_alert"},
                          {"subject_kind", alert_subject_name(a.kind)},
                          {"subject", a.subject},
                          {"user", a.user},
                          {"threshold_pct", a.threshold_pct},
                          {"spent", a.spent},
                          {"budget", a.budget},
                          {"period", period_name(a.budget_period)},
                          {"period_start", a.range.start_ms / 1000},
                          {"created", a.created_ms / 1000}}
        .dump();
}

alert_notifier::alert_notifier(alert_notifier_params p) : p_(std::move(p)) {
    if (p_.webhook_url.empty()) return;
    auto url = http_url_parse(p_.webhook_url);
    if (!url) {
        log_warn("alert_webhook_unsupported", {{"url", p_.webhook_url}, {"reason", url.error().message()}});
        return;
    }
    url_ = *url;
    worker_ = std::thread([this] { run(); });
}

alert_notifier::~alert_notifier() {
    {
        std::lock_guard lock(mu_);
        stop_ = true;
    }
    cv_.notify_all();
    if (worker_.joinable()) worker_.join();
}

void alert_notifier::notify(const alert& a) {
    log_info("budget_alert_queued", {{"subject_kind", alert_subject_name(a.kind)}, {"subject", a.subject},
                                     {"threshold_pct", a.threshold_pct}});
    if (url_.host.empty()) return;
    {
        std::lock_guard lock(mu_);
        if (queue_.size() >= p_.max_queued) {
            log_warn("alert_dropped", {{"reason", "webhook queue full"}});
            queue_.pop_front();
        }
        queue_.push_back(alert_json(a));
    }
    cv_.notify_one();
}

bool alert_notifier::deliver(const std::string& body) {
    auto reply = http_call(url_, boost::beast::http::verb::post, url_.target, body, {}, p_.timeout);
    if (!reply) log_warn("alert_delivery_failed", {{"url", p_.webhook_url}, {"error", reply.error().message()}});
    return reply && reply->status >= 200 && reply->status < 300;
}

void alert_notifier::run() {
    std::unique_lock lock(mu_);
    while (true) {
        cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
        if (stop_) return;
        const std::string body = queue_.front();
        lock.unlock();
        bool ok = false;
        auto backoff = p_.first_backoff;
        for (int attempt = 1; attempt <= p_.max_attempts && !ok; ++attempt) {
            ok = deliver(body);
            if (ok || attempt == p_.max_attempts) break;
            std::unique_lock wait_lock(mu_);
            if (cv_.wait_for(wait_lock, backoff, [&] { return stop_; })) return;
            backoff *= 2;
        }
        if (!ok) log_error("alert_undelivered", {{"url", p_.webhook_url}, {"attempts", p_.max_attempts}});
        lock.lock();
        queue_.pop_front();
    }
}

}  // namespace mm::services
