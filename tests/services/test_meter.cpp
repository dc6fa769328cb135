// The meter end to end: a real server on 127.0.0.1, the SQLite ledger in a temp dir, keys made through the
// admin API, and a test-only stage behind a metered route. Checks DESIGN.md's rules: who pays, when, and
// never twice or over budget.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>

#include <atomic>
#include <filesystem>
#include <future>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "account_routes.h"
#include "clock.h"
#include "common/json_nesting.h"
#include "key_hash.h"
#include "meter.h"
#include "services/server.h"
#include "sqlite_ledger.h"
#include "test_client.h"
#include "test_stage.h"

namespace mm::services {
namespace {

using json = nlohmann::json;
using mm::test::test_client;
namespace http = boost::beast::http;
namespace fs = std::filesystem;

constexpr const char* k_admin = "admin-key-for-tests-0123456789";
constexpr micros k_price = 1000;
constexpr micros k_cache_price = 7;

struct fixture {
    fs::path dir;
    system_clock clk;
    std::unique_ptr<sqlite_ledger> book;
    server_config config;
    std::unique_ptr<meter> m;
    mm::test::test_stage stage;
    std::unique_ptr<server> srv;

    explicit fixture(std::chrono::milliseconds stop_timeout = std::chrono::milliseconds(5'000)) {
        dir = fs::temp_directory_path() / ("mm_meter_" + std::to_string(::getpid()) + "_" + request_id_generate());
        fs::create_directories(dir);
        auto secret = server_secret_load_or_create(dir);
        EXPECT_TRUE(secret);
        auto opened = sqlite_ledger::open({.path = dir / "ledger.sqlite3", .server_secret = *secret, .clk = &clk});
        EXPECT_TRUE(opened) << opened.error().to_string();
        book = std::move(*opened);
        config.prices["chat.completions"] = k_price;
        config.prices["completions"] = k_price;
        config.cache_price = k_cache_price;
        m = std::make_unique<meter>(meter_params{.config = config, .book = *book, .time = clk, .server_secret = *secret,
                                                 .admin_key_hash = key_hash(*secret, k_admin)});
        auto table = server_routes();
        for (auto& r : account_routes(*m)) table.push_back(std::move(r));
        table.push_back({http::verb::post, "/v1/test/run", nullptr, m->metered("chat.completions", stage.handler(), {}, meter::route_work::quick)});
        // Deterministic, like a text request with a seed: the body is the answer's identity.
        table.push_back({http::verb::post, "/v1/test/cached", nullptr,
                         m->metered("completions", stage.handler(), [](const http_request& req) -> std::optional<std::string> {
                             auto body = json::parse(req.body(), nullptr, false);
                             if (!body.is_object() || !body.contains("seed")) return std::nullopt;
                             return body.dump();
                         })});
        server_params p;
        p.host = "127.0.0.1";
        p.port = 0;
        p.max_connections = 512;
        p.stop_timeout = stop_timeout;
        srv = std::make_unique<server>(p, std::move(table));
        EXPECT_TRUE(srv->start());
    }
    ~fixture() {
        stage.release();
        srv->stop();
        srv.reset();
        m.reset();
        book.reset();
        fs::remove_all(dir);
    }

    using answer = mm::test::api_answer;
    answer call(const std::string& method, const std::string& target, const std::string& key, const std::string& body = "",
                const std::string& extra_headers = "") {
        return mm::test::api_call(srv->port(), method, target, key, body, extra_headers);
    }
    std::string new_key(const json& limits = json::object()) {
        json body = limits;
        body["user"] = body.value("user", "alice");
        auto a = call("POST", "/v1/admin/keys", k_admin, body.dump());
        EXPECT_EQ(a.status, 201u) << a.body.dump();
        return a.body.value("key", "");
    }
    micros spent(const std::string& key) { return call("GET", "/v1/me", key).body["key_budget"]["spent"].get<micros>(); }
};

TEST(meter, a_successful_request_is_billed_once_at_its_flat_price) {
    fixture f;
    const std::string key = f.new_key({{"budget", 1'000'000}});
    auto a = f.call("POST", "/v1/test/run", key, R"({"action":"ok"})");
    EXPECT_EQ(a.status, 200u);
    EXPECT_EQ(a.body["ok"], true);
    EXPECT_EQ(a.raw.at("x-request-id").substr(0, 4), "req_");
    EXPECT_EQ(f.spent(key), k_price);
    auto me = f.call("GET", "/v1/me", key).body;
    EXPECT_EQ(me["user"], "alice");
    EXPECT_EQ(me["key_budget"]["remaining"], 1'000'000 - k_price);
    auto usage = f.call("GET", "/v1/usage?group_by=endpoint", key).body;
    ASSERT_EQ(usage["data"].size(), 1u) << usage.dump();
    EXPECT_EQ(usage["data"][0]["group"], "chat.completions");
    EXPECT_EQ(usage["data"][0]["billed_requests"], 1);
    EXPECT_EQ(usage["data"][0]["charged"], k_price);
}

TEST(meter, keys_and_roles_are_checked) {
    fixture f;
    const std::string key = f.new_key();
    struct row { const char* name; const char* method; const char* target; std::string key; unsigned status; const char* code; };
    const row rows[] = {
        {"no key", "POST", "/v1/test/run", "", 401, "invalid_api_key"},
        {"unknown key", "POST", "/v1/test/run", "mm-not-a-real-key", 401, "invalid_api_key"},
        {"admin key on a billable route", "POST", "/v1/test/run", k_admin, 403, "permission_denied"},
        {"user key on the admin API", "GET", "/v1/admin/keys", key, 403, "permission_denied"},
        {"admin key has no /me", "GET", "/v1/me", k_admin, 403, "permission_denied"},
    };
    for (const auto& r : rows) {
        auto a = f.call(r.method, r.target, r.key, "{}");
        EXPECT_EQ(a.status, r.status) << r.name;
        EXPECT_EQ(a.body["error"]["code"], r.code) << r.name << ": " << a.body.dump();
    }
    // Revoked keys stop working at once.
    auto list = f.call("GET", "/v1/admin/keys", k_admin).body;
    ASSERT_EQ(list["data"].size(), 1u);
    const std::string id = list["data"][0]["id"];
    EXPECT_EQ(f.call("DELETE", "/v1/admin/keys/" + id, k_admin).status, 200u);
    EXPECT_EQ(f.call("POST", "/v1/test/run", key, "{}").status, 401u);
}

TEST(meter, admin_api_rejects_bad_bodies_with_the_field_named) {
    fixture f;
    struct row { const char* body; const char* in_message; };
    for (const auto& r : {row{"{", "not valid JSON"}, row{R"({"budget": 5})", "user: required"},
                          row{R"({"user": "a", "budget": -1})", "budget: expected a non-negative integer"},
                          row{R"({"user": "a", "period": "week"})", "period: expected"},
                          row{R"({"user": "a", "rpm": "10"})", "rpm: expected"},
                          row{R"({"user": "a", "colour": "red"})", "colour: unknown field"},
                          row{R"({"user": "a", "budget": 80000000000000000000000e00000000064159})", "not valid JSON"},
                          row{R"({"user": "a", "budget": 18446744073709551615})", "budget: expected a non-negative"}}) {
        auto a = f.call("POST", "/v1/admin/keys", k_admin, r.body);
        EXPECT_EQ(a.status, 400u) << r.body;
        EXPECT_NE(a.body["error"]["message"].get<std::string>().find(r.in_message), std::string::npos)
            << r.body << " -> " << a.body.dump();
    }
    // Nesting is refused before parsing, past the limit only: within it, the parser sees the body and names
    // the stray field.
    for (int depth : {k_json_max_nesting + 50, k_json_max_nesting - 8}) {
        const std::string body = R"({"user": "a", "deep": )" + std::string(depth, '[') + std::string(depth, ']') + "}";
        auto a = f.call("POST", "/v1/admin/keys", k_admin, body);
        EXPECT_EQ(a.status, 400u) << depth;
        const char* want = depth > k_json_max_nesting ? "nests deeper than" : "deep: unknown field";
        EXPECT_NE(a.body["error"]["message"].get<std::string>().find(want), std::string::npos) << depth << " -> " << a.body.dump();
    }
}

// A user-level budget caps all of the user's keys together; the admin reads it back with the keys.
TEST(meter, a_user_budget_caps_the_users_keys_together) {
    fixture f;
    const std::string a = f.new_key({{"user", "dana"}}), b = f.new_key({{"user", "dana"}});
    auto put = f.call("PUT", "/v1/admin/users/dana", k_admin, json{{"budget", 2 * k_price}, {"period", "day"}}.dump());
    ASSERT_EQ(put.status, 200u) << put.body.dump();
    EXPECT_EQ(put.body["budget"], 2 * k_price);
    EXPECT_EQ(f.call("POST", "/v1/test/run", a, R"({"action":"ok"})").status, 200u);
    EXPECT_EQ(f.call("POST", "/v1/test/run", b, R"({"action":"ok"})").status, 200u);
    auto over = f.call("POST", "/v1/test/run", a, R"({"action":"ok"})");
    EXPECT_EQ(over.status, 429u);
    EXPECT_EQ(over.body["error"]["code"], "insufficient_quota") << over.body.dump();

    auto user = f.call("GET", "/v1/admin/users/dana", k_admin);
    ASSERT_EQ(user.status, 200u) << user.body.dump();
    EXPECT_EQ(user.body["object"], "user");
    EXPECT_EQ(user.body["user"], "dana");
    EXPECT_EQ(user.body["period"], "day");
    EXPECT_EQ(user.body["spent"], 2 * k_price);
    EXPECT_EQ(user.body["reserved"], 0);
    EXPECT_EQ(user.body["remaining"], 0);
    EXPECT_EQ(user.body["period_end"].get<int64_t>() - user.body["period_start"].get<int64_t>(), 86'400);
    EXPECT_EQ(user.body["keys"].size(), 2u);
    EXPECT_EQ(f.call("GET", "/v1/me", b).body["user_budget"]["spent"], 2 * k_price);

    // Lifting the budget lets the keys run again; spent still shows.
    ASSERT_EQ(f.call("PUT", "/v1/admin/users/dana", k_admin, R"({"budget": null})").status, 200u);
    EXPECT_EQ(f.call("POST", "/v1/test/run", a, R"({"action":"ok"})").status, 200u);
    user = f.call("GET", "/v1/admin/users/dana", k_admin);
    EXPECT_TRUE(user.body["budget"].is_null()) << user.body.dump();
    EXPECT_TRUE(user.body["remaining"].is_null());
    EXPECT_EQ(user.body["spent"], 3 * k_price);

    auto unknown = f.call("GET", "/v1/admin/users/nobody", k_admin);
    EXPECT_EQ(unknown.status, 404u);
    EXPECT_EQ(f.call("GET", "/v1/admin/users/dana", a).status, 403u);
    EXPECT_EQ(f.call("PUT", "/v1/admin/users/dana", k_admin, R"({"budget": -5})").status, 400u);
}

TEST(meter, failed_requests_are_voided_and_shown_at_zero) {
    fixture f;
    const std::string key = f.new_key({{"budget", 5000}});
    auto a = f.call("POST", "/v1/test/run", key, R"({"action":"fail"})");
    EXPECT_EQ(a.status, 500u);
    EXPECT_EQ(f.spent(key), 0);
    EXPECT_EQ(f.call("GET", "/v1/me", key).body["key_budget"]["reserved"], 0);
    auto usage = f.call("GET", "/v1/usage?group_by=outcome", key).body;
    ASSERT_EQ(usage["data"].size(), 1u) << usage.dump();
    EXPECT_EQ(usage["data"][0]["group"], "failed");
    EXPECT_EQ(usage["data"][0]["charged"], 0);
}

// A stream whose work fails after its head went out: the client gets its chunks and the error event, and
// the request is voided as failed, like a failure answered whole.
TEST(meter, a_stream_that_fails_after_its_head_is_voided) {
    fixture f;
    const std::string key = f.new_key({{"budget", 5000}});
    auto a = f.call("POST", "/v1/test/run", key, R"({"action":"stream","chunks":2,"then_fail":true})");
    EXPECT_EQ(a.status, 200u) << "the head was already out";
    EXPECT_NE(a.raw.body().find("failed on command"), std::string::npos) << a.raw.body();
    EXPECT_EQ(f.spent(key), 0);
    EXPECT_EQ(f.call("GET", "/v1/me", key).body["key_budget"]["reserved"], 0);
    auto usage = f.call("GET", "/v1/usage?group_by=outcome", key).body;
    ASSERT_EQ(usage["data"].size(), 1u) << usage.dump();
    EXPECT_EQ(usage["data"][0]["group"], "failed");
}

TEST(meter, a_repeated_deterministic_request_is_answered_from_the_cache_at_the_cache_price) {
    fixture f;
    const std::string key = f.new_key({{"budget", 1'000'000}});
    const std::string body = R"({"action":"ok","seed":7,"prompt":"hi"})";
    auto first = f.call("POST", "/v1/test/cached", key, body);
    ASSERT_EQ(first.status, 200u);
    EXPECT_EQ(first.raw.count("x-mmserve-cache"), 0u);
    auto second = f.call("POST", "/v1/test/cached", key, body);
    ASSERT_EQ(second.status, 200u);
    EXPECT_EQ(second.raw.at("x-mmserve-cache"), "hit");
    EXPECT_EQ(second.raw.body(), first.raw.body()) << "the stored answer, byte for byte";
    EXPECT_NE(second.raw.at("x-request-id"), first.raw.at("x-request-id")) << "a hit is its own request";
    EXPECT_EQ(f.stage.ran(), 1) << "a hit does not run the stage";
    EXPECT_EQ(f.spent(key), k_price + k_cache_price);

    // Another body, a request without a seed, and a failure are not hits.
    EXPECT_EQ(f.call("POST", "/v1/test/cached", key, R"({"action":"ok","seed":8,"prompt":"hi"})").raw.count("x-mmserve-cache"), 0u);
    for (int i = 0; i < 2; ++i) EXPECT_EQ(f.call("POST", "/v1/test/cached", key, R"({"action":"ok"})").raw.count("x-mmserve-cache"), 0u);
    for (int i = 0; i < 2; ++i) EXPECT_EQ(f.call("POST", "/v1/test/cached", key, R"({"action":"fail","seed":1})").status, 500u);
    EXPECT_EQ(f.stage.ran(), 6);
    EXPECT_EQ(f.spent(key), 4 * k_price + k_cache_price) << "failures cost nothing";

    auto usage = f.call("GET", "/v1/usage?group_by=outcome", key).body;
    std::map<std::string, int64_t> by_outcome;
    for (const auto& row : usage["data"]) by_outcome[row["group"]] = row["requests"].get<int64_t>();
    EXPECT_EQ(by_outcome["cache_hit"], 1);
    EXPECT_EQ(by_outcome["ok"], 4);
    EXPECT_EQ(by_outcome["failed"], 2);
}

TEST(meter, a_cache_hit_that_does_not_fit_the_budget_is_refused_unbilled) {
    fixture f;
    const std::string key = f.new_key({{"budget", k_price + k_cache_price - 1}});
    const std::string body = R"({"seed":1})";
    ASSERT_EQ(f.call("POST", "/v1/test/cached", key, body).status, 200u);
    auto hit = f.call("POST", "/v1/test/cached", key, body);
    EXPECT_EQ(hit.status, 429u);
    EXPECT_EQ(hit.body["error"]["code"], "insufficient_quota");
    EXPECT_EQ(f.spent(key), k_price);
}

TEST(meter, sixty_four_racing_requests_never_overshoot_a_budget_for_ten) {
    fixture f;
    const std::string key = f.new_key({{"budget", 10 * k_price}});
    std::vector<std::future<unsigned>> results;
    for (int i = 0; i < 64; ++i)
        results.push_back(std::async(std::launch::async, [&] { return f.call("POST", "/v1/test/run", key, "{}").status; }));
    int ok = 0, quota = 0;
    for (auto& r : results) {
        const unsigned s = r.get();
        ok += s == 200;
        quota += s == 429;
    }
    EXPECT_EQ(ok, 10);
    EXPECT_EQ(quota, 54);
    EXPECT_EQ(f.spent(key), 10 * k_price);
    EXPECT_EQ(f.stage.ran(), 10) << "rejected requests never reach the stage";
    auto a = f.call("POST", "/v1/test/run", key, "{}");
    EXPECT_EQ(a.body["error"]["code"], "insufficient_quota");
}

TEST(meter, rate_limited_requests_are_refused_with_headers_and_not_billed) {
    fixture f;
    const std::string key = f.new_key({{"rpm", 2}});
    EXPECT_EQ(f.call("POST", "/v1/test/run", key, "{}").status, 200u);
    auto second = f.call("POST", "/v1/test/run", key, "{}");
    EXPECT_EQ(second.raw.at("x-ratelimit-limit-requests"), "2");
    EXPECT_EQ(second.raw.at("x-ratelimit-remaining-requests"), "0");
    auto third = f.call("POST", "/v1/test/run", key, "{}");
    EXPECT_EQ(third.status, 429u);
    EXPECT_EQ(third.body["error"]["code"], "rate_limit_exceeded");
    EXPECT_GE(std::stoi(std::string(third.raw.at(http::field::retry_after))), 1);
    EXPECT_EQ(f.spent(key), 2 * k_price);
    auto usage = f.call("GET", "/v1/usage?group_by=outcome", key).body;
    bool seen = false;
    for (const auto& row : usage["data"])
        if (row["group"] == "rejected_rate") seen = row["requests"] == 1 && row["charged"] == 0;
    EXPECT_TRUE(seen) << usage.dump();
}

TEST(meter, a_request_over_max_concurrent_is_refused_with_headers_and_not_billed) {
    fixture f;
    const std::string key = f.new_key({{"max_concurrent", 1}});
    auto held = std::async(std::launch::async, [&] { return f.call("POST", "/v1/test/run", key, R"({"action":"hold"})"); });
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (f.stage.holding() == 0 && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
    auto refused = f.call("POST", "/v1/test/run", key, "{}");
    EXPECT_EQ(refused.status, 429u);
    EXPECT_EQ(refused.body["error"]["code"], "rate_limit_exceeded");
    EXPECT_NE(refused.body["error"]["message"].get<std::string>().find("max_concurrent 1"), std::string::npos);
    EXPECT_EQ(refused.raw.at(http::field::retry_after), "1");
    EXPECT_EQ(refused.raw.at("x-ratelimit-limit-concurrent"), "1");
    EXPECT_EQ(refused.raw.at("x-ratelimit-remaining-concurrent"), "0");
    EXPECT_EQ(refused.raw.count("x-ratelimit-limit-requests"), 0u) << "no per-minute limit is set";
    f.stage.release();
    auto first = held.get();
    EXPECT_EQ(first.status, 200u);
    EXPECT_EQ(first.raw.at("x-ratelimit-remaining-concurrent"), "0");
    auto after = f.call("POST", "/v1/test/run", key, "{}");
    EXPECT_EQ(after.status, 200u) << "the slot frees when the held request ends";
    EXPECT_EQ(f.spent(key), 2 * k_price);
    EXPECT_EQ(f.stage.ran(), 2);
}

TEST(meter, an_idempotent_retry_is_replayed_and_billed_once) {
    fixture f;
    const std::string key = f.new_key();
    const std::string idem = "Idempotency-Key: order-42\r\n";
    auto first = f.call("POST", "/v1/test/run", key, R"({"n":1})", idem);
    auto again = f.call("POST", "/v1/test/run", key, R"({"n":1})", idem);
    EXPECT_EQ(first.status, 200u);
    EXPECT_EQ(again.status, 200u);
    EXPECT_EQ(again.raw.at("Idempotent-Replayed"), "true");
    EXPECT_EQ(again.raw.body(), first.raw.body());
    EXPECT_EQ(f.stage.ran(), 1);
    EXPECT_EQ(f.spent(key), k_price);
    auto other_body = f.call("POST", "/v1/test/run", key, R"({"n":2})", idem);
    EXPECT_EQ(other_body.status, 422u);
    EXPECT_EQ(other_body.body["error"]["code"], "idempotency_key_reused");
}

TEST(meter, an_idempotent_answer_too_large_to_keep_is_refused_on_retry_not_billed_again) {
    fixture f;
    const std::string key = f.new_key();
    const std::string idem = "Idempotency-Key: big-answer\r\n";
    const std::string big = R"({"action":"stream","chunks":5,"pad":1048576})";  // 5 MiB, over the 4 MiB kept
    auto first = f.call("POST", "/v1/test/run", key, big, idem);
    EXPECT_EQ(first.status, 200u);
    EXPECT_GT(first.raw.body().size(), size_t{5} << 20);
    auto again = f.call("POST", "/v1/test/run", key, big, idem);
    EXPECT_EQ(again.status, 409u);
    EXPECT_EQ(again.body["error"]["code"], "idempotency_answer_not_kept") << again.body.dump();
    EXPECT_EQ(f.stage.ran(), 1);
    EXPECT_EQ(f.spent(key), k_price);
    // A small answer under another key is still kept and replayed.
    const std::string small = R"({"action":"stream","chunks":2})";
    auto kept = f.call("POST", "/v1/test/run", key, small, "Idempotency-Key: small-answer\r\n");
    auto replay = f.call("POST", "/v1/test/run", key, small, "Idempotency-Key: small-answer\r\n");
    EXPECT_EQ(replay.status, 200u);
    EXPECT_EQ(replay.raw.body(), kept.raw.body());
    EXPECT_EQ(f.spent(key), 2 * k_price);
}

TEST(meter, eight_concurrent_duplicates_run_once) {
    fixture f;
    const std::string key = f.new_key();
    const std::string idem = "Idempotency-Key: dup-8\r\n";
    std::vector<std::future<fixture::answer>> results;
    for (int i = 0; i < 8; ++i)
        results.push_back(std::async(std::launch::async,
                                     [&] { return f.call("POST", "/v1/test/run", key, R"({"action":"hold"})", idem); }));
    // The one that runs holds in the stage; duplicates arriving meanwhile get 409, later ones a replay.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (f.stage.holding() == 0 && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
    f.stage.release();
    int ok = 0, conflict = 0, replayed = 0;
    std::vector<fixture::answer> answers;
    for (auto& r : results) answers.push_back(r.get());
    for (const auto& a : answers) {
        if (a.status == 200 && a.raw.count("Idempotent-Replayed")) ++replayed;
        else if (a.status == 200) ++ok;
        else if (a.status == 409) ++conflict;
    }
    EXPECT_EQ(ok, 1);
    EXPECT_EQ(ok + conflict + replayed, 8);
    EXPECT_EQ(f.stage.ran(), 1);
    EXPECT_EQ(f.spent(key), k_price);
}

TEST(meter, a_client_that_leaves_mid_stream_is_not_billed_and_its_stage_work_stops) {
    fixture f;
    const std::string key = f.new_key();
    {
        test_client c(f.srv->port());
        const std::string body = R"({"action":"stream","chunks":2,"then_hold":true})";
        ASSERT_FALSE(c.write("POST /v1/test/run HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + key +
                             "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body));
        ASSERT_TRUE(c.read_raw());  // the stream has begun
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (f.stage.holding() == 0 && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
        c.close();
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (f.stage.cancelled() == 0 && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
    EXPECT_EQ(f.stage.cancelled(), 1);
    // The void lands right after the stage stops; poll /me briefly for it.
    micros reserved = -1;
    while (std::chrono::steady_clock::now() < deadline) {
        auto me = f.call("GET", "/v1/me", key).body;
        reserved = me["key_budget"]["reserved"].get<micros>();
        if (reserved == 0) break;
    }
    EXPECT_EQ(reserved, 0);
    EXPECT_EQ(f.spent(key), 0);
}

// A graceful stop: the request that finishes within the deadline is answered and billed; the one that
// outlives it is cancelled, answered as such, and voided; nothing stays reserved.
TEST(meter, a_stop_lets_requests_in_flight_finish_and_bill_and_voids_what_outlives_the_deadline) {
    fixture f(std::chrono::milliseconds(2'000));
    const std::string key = f.new_key();
    auto quick = std::async(std::launch::async, [&] { return f.call("POST", "/v1/test/run", key, R"({"action":"work","ms":200})"); });
    auto stuck = std::async(std::launch::async, [&] { return f.call("POST", "/v1/test/run", key, R"({"action":"hold"})"); });
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while ((f.stage.ran() < 2 || f.stage.holding() == 0) && std::chrono::steady_clock::now() < deadline)
        std::this_thread::yield();
    ASSERT_EQ(f.stage.ran(), 2) << "both requests are with the stage before the stop";
    f.srv->stop();

    const auto q = quick.get();
    EXPECT_EQ(q.status, 200u) << q.raw.body();
    const auto s = stuck.get();
    EXPECT_EQ(s.status, 503u) << s.raw.body();
    EXPECT_EQ(s.body["error"].value("code", ""), "cancelled") << s.raw.body();
    EXPECT_EQ(f.stage.cancelled(), 1);

    auto billed = f.book->charge_get(std::string(q.raw.at("x-request-id")));
    ASSERT_TRUE(billed);
    EXPECT_EQ(billed->state, charge_state::committed);
    auto voided = f.book->charge_get(std::string(s.raw.at("x-request-id")));
    ASSERT_TRUE(voided);
    EXPECT_EQ(voided->state, charge_state::voided);
    EXPECT_EQ(voided->outcome, charge_outcome::cancelled);
    auto by_outcome = f.book->usage({.group_by = usage_group::outcome});
    ASSERT_TRUE(by_outcome);
    for (const auto& row : *by_outcome) EXPECT_EQ(row.outcomes.count("pending"), 0u) << row.group;
}

TEST(meter, a_completed_stream_is_billed_before_its_last_byte) {
    fixture f;
    const std::string key = f.new_key();
    auto a = f.call("POST", "/v1/test/run", key, R"({"action":"stream","chunks":3})");
    EXPECT_EQ(a.status, 200u);
    EXPECT_EQ(a.raw.body(), "data: 0\n\ndata: 1\n\ndata: 2\n\ndata: [DONE]\n\n");
    EXPECT_EQ(f.spent(key), k_price);  // the client has its last byte, so the charge is already durable
}

// Not just the chunked terminator: the stream's final event ([DONE]) goes out after the commit, so a client
// that stops reading at [DONE] (as the SDKs do) has been billed.
TEST(meter, a_streams_done_event_follows_its_commit) {
    fixture f;
    const std::string key = f.new_key();
    test_client c(f.srv->port());
    const std::string body = R"({"action":"stream","chunks":2})";
    ASSERT_FALSE(c.write("POST /v1/test/run HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + key +
                         "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
                         "\r\n\r\n" + body));
    std::string seen;
    while (seen.find("data: [DONE]") == std::string::npos) {
        auto bytes = c.read_raw();
        ASSERT_TRUE(bytes) << seen;
        seen += *bytes;
    }
    EXPECT_EQ(f.spent(key), k_price) << seen;
}

}  // namespace
}  // namespace mm::services

namespace mm::services {
namespace {

// `mmserve keys` / `mmserve usage` talk to a running server's admin API.
std::pair<int, std::string> run_cli(const std::string& args) {
    const std::string cmd = std::string(MM_BINARY_DIR) + "/services/mmserve " + args + " 2>&1";
    std::FILE* p = ::popen(cmd.c_str(), "r");
    std::string out;
    char buf[4096];
    while (size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
    const int rc = ::pclose(p);
    return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, out};
}

TEST(admin_cli, creates_lists_and_revokes_keys_on_a_running_server) {
    fixture f;
    const std::string common = " --url http://127.0.0.1:" + std::to_string(f.srv->port()) + " --admin-key " + k_admin;
    auto [rc, out] = run_cli("keys create --user carol --budget 3000 --rpm 7" + common);
    ASSERT_EQ(rc, 0) << out;
    const json created = json::parse(out);
    EXPECT_EQ(created["user"], "carol");
    EXPECT_EQ(created["rpm"], 7);
    const std::string key = created["key"];
    EXPECT_EQ(f.call("POST", "/v1/test/run", key, "{}").status, 200u) << "the new key works";

    auto [lrc, listed] = run_cli("keys list" + common);
    ASSERT_EQ(lrc, 0) << listed;
    EXPECT_EQ(json::parse(listed)["data"][0]["id"], created["id"]);
    auto [urc, usage] = run_cli("usage --group-by key" + common);
    ASSERT_EQ(urc, 0) << usage;
    EXPECT_EQ(json::parse(usage)["data"][0]["charged"], k_price);

    auto [rrc, revoked] = run_cli("keys revoke " + created["id"].get<std::string>() + common);
    EXPECT_EQ(rrc, 0) << revoked;
    EXPECT_EQ(f.call("POST", "/v1/test/run", key, "{}").status, 401u);

    EXPECT_EQ(run_cli("keys create --user x --budget lots" + common).first, 2);
    EXPECT_EQ(run_cli("keys revoke key_nope" + common).first, 1);
    EXPECT_EQ(run_cli("keys list --url http://127.0.0.1:" + std::to_string(f.srv->port()) + " --admin-key wrong-key-000000").first, 1);
}

TEST(admin_cli, sets_and_shows_a_users_budget) {
    fixture f;
    const std::string common = " --url http://127.0.0.1:" + std::to_string(f.srv->port()) + " --admin-key " + k_admin;
    const std::string key = f.new_key({{"user", "dana smith"}});  // a space: the path segment is escaped
    auto [src, set] = run_cli("users set 'dana smith' --budget 1500 --period day" + common);
    ASSERT_EQ(src, 0) << set;
    EXPECT_EQ(json::parse(set)["budget"], 1500);
    EXPECT_EQ(f.call("POST", "/v1/test/run", key, "{}").status, 200u);
    EXPECT_EQ(f.call("POST", "/v1/test/run", key, "{}").body["error"]["code"], "insufficient_quota")
        << "the user's budget covers one request";
    auto [grc, got] = run_cli("users get 'dana smith'" + common);
    ASSERT_EQ(grc, 0) << got;
    const json shown = json::parse(got);
    EXPECT_EQ(shown["user"], "dana smith");
    EXPECT_EQ(shown["spent"], k_price);
    EXPECT_EQ(shown["period"], "day");
    EXPECT_EQ(shown["keys"].size(), 1u);
    auto [nrc, lifted] = run_cli("users set 'dana smith' --budget none" + common);
    ASSERT_EQ(nrc, 0) << lifted;
    EXPECT_EQ(f.call("POST", "/v1/test/run", key, "{}").status, 200u) << "no user budget any more";

    EXPECT_EQ(run_cli("users set 'dana smith' --budget much" + common).first, 2);
    EXPECT_EQ(run_cli("users set 'dana smith' --colour red" + common).first, 2);
    EXPECT_EQ(run_cli("users get nobody-here" + common).first, 1) << "unknown user: the server's 404";
    EXPECT_EQ(run_cli("users frob 'dana smith'" + common).first, 2);
}

}  // namespace
}  // namespace mm::services
