#include "alert_notifier.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "common/log.h"

namespace mm::services {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

}  // namespace

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
    // http://host[:port]/path; the config already refused anything that does not start with http(s)://.
    std::string_view u = p_.webhook_url;
    if (u.rfind("http://", 0) == 0) {
        u.remove_prefix(7);
        const size_t slash = u.find('/');
        const std::string_view hostport = u.substr(0, slash);
        target_ = slash == std::string_view::npos ? "/" : std::string(u.substr(slash));
        const size_t colon = hostport.rfind(':');
        host_ = std::string(hostport.substr(0, colon));
        port_ = colon == std::string_view::npos ? "80" : std::string(hostport.substr(colon + 1));
    } else if (!u.empty()) {
        log_warn("alert_webhook_unsupported", {{"url", p_.webhook_url}, {"reason", "only http:// is delivered; https needs a TLS proxy"}});
    }
    if (!host_.empty()) worker_ = std::thread([this] { run(); });
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
    if (host_.empty()) return;
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
    try {
        net::io_context ioc;
        beast::tcp_stream stream(ioc);
        net::ip::tcp::resolver resolver(ioc);
        stream.expires_after(p_.timeout);
        stream.connect(resolver.resolve(host_, port_));
        http::request<http::string_body> req{http::verb::post, target_, 11};
        req.set(http::field::host, host_);
        req.set(http::field::user_agent, "mmserve");
        req.set(http::field::content_type, "application/json");
        req.body() = body;
        req.prepare_payload();
        http::write(stream, req);
        beast::flat_buffer buf;
        http::response<http::string_body> res;
        http::read(stream, buf, res);
        beast::error_code ignored;
        stream.socket().shutdown(net::ip::tcp::socket::shutdown_both, ignored);
        return res.result_int() >= 200 && res.result_int() < 300;
    } catch (const std::exception& e) {
        log_warn("alert_delivery_failed", {{"url", p_.webhook_url}, {"error", e.what()}});
        return false;
    }
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
