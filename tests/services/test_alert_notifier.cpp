// Budget alerts reach a webhook on loopback as JSON, retried with backoff while it fails.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <nlohmann/json.hpp>

#include "alert_notifier.h"
#include "http_client.h"
#include "services/server.h"

namespace mm::services {
namespace {

namespace http = boost::beast::http;
using json = nlohmann::json;

// A webhook that fails its first `failures` calls with 500, then records what it gets.
struct webhook {
    std::mutex mu;
    std::vector<std::string> received;  // guarded by mu
    std::atomic<int> calls{0};
    int failures = 0;
    std::unique_ptr<server> srv;

    explicit webhook(int fail_first) : failures(fail_first) {
        std::vector<route> table{{http::verb::post, "/hook", [this](const http_request& req) -> result<route_reply> {
            if (calls++ < failures) return status(errc::internal, "not yet");
            std::lock_guard lock(mu);
            received.push_back(req.body());
            return route_reply{.body = "{}"};
        }}};
        server_params p;
        p.host = "127.0.0.1";
        p.port = 0;
        srv = std::make_unique<server>(p, std::move(table));
        EXPECT_TRUE(srv->start());
    }
    size_t wait_for(size_t n) {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
        while (std::chrono::steady_clock::now() < deadline) {
            {
                std::lock_guard lock(mu);
                if (received.size() >= n) return received.size();
            }
            std::this_thread::yield();
        }
        std::lock_guard lock(mu);
        return received.size();
    }
};

alert sample(int pct) {
    alert a;
    a.kind = alert::subject_kind::key;
    a.subject = "key_0123456789abcdef";
    a.user = "alice";
    a.threshold_pct = pct;
    a.spent = 80'000;
    a.budget = 100'000;
    a.range = {.start_ms = 1'767'225'600'000, .end_ms = 1'769'904'000'000};
    return a;
}

TEST(alert_notifier, retries_a_failing_webhook_until_it_accepts) {
    webhook hook(2);
    alert_notifier n({.webhook_url = "http://127.0.0.1:" + std::to_string(hook.srv->port()) + "/hook",
                      .first_backoff = std::chrono::milliseconds(10)});
    n.notify(sample(80));
    ASSERT_EQ(hook.wait_for(1), 1u);
    EXPECT_EQ(hook.calls.load(), 3) << "two failures, then the delivery";
    const json got = json::parse(hook.received[0]);
    EXPECT_EQ(got["type"], "budget_alert");
    EXPECT_EQ(got["threshold_pct"], 80);
    EXPECT_EQ(got["subject"], "key_0123456789abcdef");
    EXPECT_EQ(got["user"], "alice");
    EXPECT_EQ(got["spent"], 80'000);
    EXPECT_EQ(got["budget"], 100'000);
    EXPECT_EQ(got["period_start"], 1'767'225'600);
}

TEST(alert_notifier, delivers_in_order) {
    webhook hook(0);
    alert_notifier n({.webhook_url = "http://127.0.0.1:" + std::to_string(hook.srv->port()) + "/hook"});
    for (int pct : {50, 80, 100}) n.notify(sample(pct));
    ASSERT_EQ(hook.wait_for(3), 3u);
    const int want[] = {50, 80, 100};
    for (size_t i = 0; i < 3; ++i) EXPECT_EQ(json::parse(hook.received[i])["threshold_pct"], want[i]) << i;
}

}  // namespace
}  // namespace mm::services

namespace mm::services {
namespace {

TEST(http_url, parses_http_urls_and_refuses_the_rest) {
    struct row { const char* url; bool ok; const char* host; const char* port; const char* target; };
    const row rows[] = {
        {"http://127.0.0.1:9000/hook?x=1", true, "127.0.0.1", "9000", "/hook?x=1"},
        {"http://example.test", true, "example.test", "80", "/"},
        {"http://h:81", true, "h", "81", "/"},
        {"https://h/x", false, "", "", ""},
        {"http://:80/x", false, "", "", ""},
        {"ftp://h", false, "", "", ""},
    };
    for (const auto& r : rows) {
        auto u = http_url_parse(r.url);
        ASSERT_EQ(u.has_value(), r.ok) << r.url;
        if (!r.ok) continue;
        EXPECT_EQ(u->host, r.host) << r.url;
        EXPECT_EQ(u->port, r.port) << r.url;
        EXPECT_EQ(u->target, r.target) << r.url;
    }
}

}  // namespace
}  // namespace mm::services

namespace mm::services {
namespace {

// A peer that accepts and then never answers must cost the caller its timeout, not hang the alert
// worker (and with it shutdown) forever.
TEST(http_call, gives_up_on_a_peer_that_accepts_and_never_answers) {
    boost::asio::io_context ioc;
    boost::asio::ip::tcp::acceptor silent(ioc, {boost::asio::ip::make_address("127.0.0.1"), 0});
    const auto port = std::to_string(silent.local_endpoint().port());
    // The kernel completes the handshake from the backlog; nobody ever reads or writes.
    auto r = http_call({.host = "127.0.0.1", .port = port, .target = "/hook"}, http::verb::post, "/hook", "{}", {},
                       std::chrono::milliseconds(200));
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().code(), errc::io_error);
    EXPECT_NE(r.error().message().find("127.0.0.1:" + port), std::string::npos) << r.error().message();
}

}  // namespace
}  // namespace mm::services
