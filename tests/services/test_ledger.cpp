// The meter's ledger on a real SQLite file in a fresh temp dir per test, with a manual clock: charge
// arithmetic, key and user budgets, period roll-over, racing reservations, idempotency, alerts, key
// storage, schema migrations. Crash recovery (kill -9, power loss) is in test_ledger_crash.cpp.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <latch>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "clock.h"
#include "key_hash.h"
#include "sqlite_ledger.h"
#include "sqlite_ledger_schema.h"

namespace mm::services {
namespace {

namespace fs = std::filesystem;

constexpr int64_t k_t0 = 1710504000000;  // 2024-03-15T12:00:00Z
constexpr int64_t k_day = 86'400'000;
constexpr const char* k_server_secret = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

// prefix + n; appending also avoids a g++ 12 -Wrestrict false positive on `"literal" + std::string`.
std::string numbered(std::string prefix, int n) {
    prefix += std::to_string(n);
    return prefix;
}

std::string file_bytes(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

class ledger_test : public ::testing::Test {
protected:
    void SetUp() override {
        std::string t = (fs::temp_directory_path() / "mm_ledger_XXXXXX").string();
        ASSERT_NE(::mkdtemp(t.data()), nullptr);
        dir_ = t;
    }
    void TearDown() override { fs::remove_all(dir_); }

    fs::path db_path(const std::string& sub = "main") const { return dir_ / sub / "ledger.sqlite3"; }

    // Opens (or reopens) a ledger file; null after a failed expectation.
    std::unique_ptr<sqlite_ledger> open_ledger(const std::string& sub = "main", size_t cache_entries = 16) {
        auto l = sqlite_ledger::open({.path = db_path(sub),
                                      .server_secret = k_server_secret,
                                      .clk = &clk_,
                                      .on_alert = [this](const alert& a) {
                                          std::lock_guard lock(alerts_mu_);
                                          alerts_.push_back(a);
                                      },
                                      .cache_max_entries = cache_entries});
        EXPECT_TRUE(l) << l.error().to_string();
        return l ? std::move(*l) : nullptr;
    }

    std::string make_key(ledger& l, const std::string& user, key_limits limits = {}) {
        auto k = l.key_create({.user = user, .limits = limits});
        EXPECT_TRUE(k) << k.error().to_string();
        return k ? k->id : std::string();
    }

    std::vector<alert> take_alerts() {
        std::lock_guard lock(alerts_mu_);
        return std::exchange(alerts_, {});
    }

    fs::path dir_;
    manual_clock clk_{k_t0};
    std::mutex alerts_mu_;
    std::vector<alert> alerts_;  // guarded by alerts_mu_
};

// ---- periods --------------------------------------------------------------------------------------

TEST(ledger_period, bounds_are_utc_calendar_days_and_months) {
    struct bounds_case { const char* name; period p; int64_t t; int64_t start, end; };
    const bounds_case cases[] = {
        {"day, midday", period::day, 1710504000000, 1710460800000, 1710547200000},
        {"day, last ms of leap day", period::day, 1709251199999, 1709164800000, 1709251200000},
        {"day, first ms of March", period::day, 1709251200000, 1709251200000, 1709337600000},
        {"day, before the epoch", period::day, -1, -86400000, 0},
        {"month, mid March", period::month, 1710504000000, 1709251200000, 1711929600000},
        {"month, leap February", period::month, 1709251199999, 1706745600000, 1709251200000},
        {"month, plain February", period::month, 1675209600000, 1675209600000, 1677628800000},
        {"month, December to January", period::month, 1704067199000, 1701388800000, 1704067200000},
        {"month, the epoch", period::month, 0, 0, 2678400000},
        {"none", period::none, 1710504000000, 0, INT64_MAX},
    };
    for (const auto& c : cases) {
        const period_range r = period_bounds(c.p, c.t);
        EXPECT_EQ(r.start_ms, c.start) << c.name;
        EXPECT_EQ(r.end_ms, c.end) << c.name;
    }
}

TEST(ledger_period, names_round_trip_and_unknown_names_are_refused) {
    for (period p : {period::day, period::month, period::none}) EXPECT_EQ(*period_parse(period_name(p)), p);
    EXPECT_EQ(period_parse("week").error().code(), errc::invalid_argument);
    EXPECT_EQ(charge_outcome_parse("crashed").value(), charge_outcome::crashed);
    EXPECT_FALSE(charge_outcome_parse("OK"));
}

// ---- keys -----------------------------------------------------------------------------------------

TEST_F(ledger_test, keys_authenticate_until_revoked_and_survive_reopen) {
    const key_limits limits{.budget = 1000, .budget_period = period::day, .rpm = 60, .max_concurrent = 2};
    std::string secret1, secret2, id1, id2;
    {
        auto l = open_ledger();
        ASSERT_NE(l, nullptr);
        auto k1 = l->key_create({.user = "alice", .limits = limits});
        ASSERT_TRUE(k1) << k1.error().to_string();
        auto k2 = l->key_create({.user = "alice", .limits = {}});
        ASSERT_TRUE(k2);
        secret1 = k1->secret;
        secret2 = k2->secret;
        id1 = k1->id;
        id2 = k2->id;
        EXPECT_EQ(k1->prefix, secret1.substr(0, 12));
        EXPECT_NE(id1, id2);

        auto who = l->key_authenticate(secret1);
        ASSERT_TRUE(who) << who.error().to_string();
        EXPECT_EQ(who->id, id1);
        EXPECT_EQ(who->user, "alice");
        EXPECT_EQ(who->limits.budget, 1000);
        EXPECT_EQ(who->limits.rpm, 60);
        EXPECT_EQ(who->limits.max_concurrent, 2);
        EXPECT_EQ(who->limits.budget_period, period::day);
        EXPECT_EQ(l->key_find_by_hash(key_hash(k_server_secret, secret1))->id, id1);

        std::string tampered = secret1;
        tampered.back() = tampered.back() == 'A' ? 'B' : 'A';
        for (const std::string& bad : {tampered, std::string("mm-"), std::string(), secret1 + "x"})
            EXPECT_EQ(l->key_authenticate(bad).error().code(), errc::unauthenticated) << bad;

        EXPECT_EQ(l->key_list("alice").size(), 2u);
        EXPECT_TRUE(l->key_list("bob").empty());
        auto alice = l->user_get("alice");
        ASSERT_TRUE(alice) << "a key's user is created with it";
        EXPECT_FALSE(alice->budget);

        ASSERT_TRUE(l->key_revoke(id1));
        EXPECT_TRUE(l->key_revoke(id1)) << "revoking twice is harmless";
        EXPECT_EQ(l->key_revoke("key_nope").code(), errc::not_found);
        EXPECT_EQ(l->key_authenticate(secret1).error().code(), errc::unauthenticated);
        EXPECT_EQ(l->reserve("r1", id1, "chat.completions", 1).code(), errc::unauthenticated);
        EXPECT_TRUE(l->key_get(id1)->revoked_ms) << "a revoked key stays listed for usage";

        ASSERT_TRUE(l->key_set_limits(id2, {.budget = 5, .budget_period = period::none, .rpm = 7}));
        ASSERT_TRUE(l->user_set_budget("alice", 500, period::day));
    }
    auto l = open_ledger();
    ASSERT_NE(l, nullptr);
    EXPECT_EQ(l->key_authenticate(secret1).error().code(), errc::unauthenticated) << "revocation is durable";
    auto k2 = l->key_authenticate(secret2);
    ASSERT_TRUE(k2) << k2.error().to_string();
    EXPECT_EQ(k2->limits.budget, 5);
    EXPECT_EQ(k2->limits.budget_period, period::none);
    EXPECT_EQ(k2->limits.rpm, 7);
    EXPECT_EQ(l->user_get("alice")->budget, 500);
    EXPECT_EQ(l->user_get("alice")->budget_period, period::day);
}

TEST_F(ledger_test, the_secret_is_never_written_to_disk) {
    std::string secret, hash, prefix;
    {
        auto l = open_ledger();
        ASSERT_NE(l, nullptr);
        auto k = l->key_create({.user = "alice", .limits = {}});
        ASSERT_TRUE(k);
        secret = k->secret;
        prefix = k->prefix;
        hash = key_hash(k_server_secret, secret);
        ASSERT_TRUE(l->reserve("r1", k->id, "chat.completions", 1));
        ASSERT_TRUE(l->commit("r1"));
    }
    std::string bytes;
    for (const auto& e : fs::directory_iterator(db_path().parent_path())) bytes += file_bytes(e.path());
    // The prefix and hash are stored in the clear, so finding them shows the search reads the real bytes.
    EXPECT_NE(bytes.find(prefix), std::string::npos);
    EXPECT_NE(bytes.find(hash), std::string::npos);
    EXPECT_EQ(bytes.find(secret), std::string::npos) << "the full secret must not be stored";
    EXPECT_EQ(bytes.find(secret.substr(12)), std::string::npos) << "nor its unshown part";
}

// ---- charges --------------------------------------------------------------------------------------

enum class charge_op { reserve, commit, void_, unbilled };

struct charge_step {
    const char* name;
    charge_op op;
    const char* request_id;
    micros price;
    charge_outcome outcome;
    errc want;
    micros spent, reserved;  // the key's, after the step
};

status run_step(ledger& l, const std::string& key_id, const charge_step& s) {
    switch (s.op) {
        case charge_op::reserve: return l.reserve(s.request_id, key_id, "chat.completions", s.price);
        case charge_op::commit: return l.commit(s.request_id, s.outcome);
        case charge_op::void_: return l.void_(s.request_id, s.outcome);
        case charge_op::unbilled: return l.record_unbilled(s.request_id, key_id, "chat.completions", s.outcome);
    }
    return status(errc::internal);
}

TEST_F(ledger_test, reserve_commit_void_and_unbilled_arithmetic) {
    auto l = open_ledger();
    ASSERT_NE(l, nullptr);
    const std::string key = make_key(*l, "alice", {.budget = 100, .budget_period = period::month});
    using enum charge_op;
    using o = charge_outcome;
    const charge_step steps[] = {
        {"reserve 30", reserve, "r1", 30, o::ok, errc::ok, 0, 30},
        {"reserve 50", reserve, "r2", 50, o::ok, errc::ok, 0, 80},
        {"reserve 30 overshoots", reserve, "r3", 30, o::ok, errc::budget_exhausted, 0, 80},
        {"commit 30", commit, "r1", 0, o::ok, errc::ok, 30, 50},
        {"void 50", void_, "r2", 0, o::failed, errc::ok, 30, 0},
        {"a refused id can be used again; 70 fits exactly", reserve, "r3", 70, o::ok, errc::ok, 30, 70},
        {"commit 70", commit, "r3", 0, o::ok, errc::ok, 100, 0},
        {"price 0 fits a spent budget", reserve, "r4", 0, o::ok, errc::ok, 100, 0},
        {"price 1 does not", reserve, "r5", 1, o::ok, errc::budget_exhausted, 100, 0},
        {"the refusal is recorded unbilled", unbilled, "r5", 0, o::rejected_budget, errc::ok, 100, 0},
        {"a cache hit commits at its price", commit, "r4", 0, o::cache_hit, errc::ok, 100, 0},
        {"request ids are single-use", reserve, "r1", 0, o::ok, errc::invalid_argument, 100, 0},
        {"unbilled ids too", unbilled, "r2", 0, o::rejected_rate, errc::invalid_argument, 100, 0},
        {"commit twice", commit, "r1", 0, o::ok, errc::not_found, 100, 0},
        {"commit a voided charge", commit, "r2", 0, o::ok, errc::not_found, 100, 0},
        {"void a committed charge", void_, "r3", 0, o::cancelled, errc::not_found, 100, 0},
        {"commit with a failure outcome", commit, "r9", 0, o::failed, errc::invalid_argument, 100, 0},
        {"void with outcome ok", void_, "r9", 0, o::ok, errc::invalid_argument, 100, 0},
        {"negative price", reserve, "r9", -1, o::ok, errc::invalid_argument, 100, 0},
        {"price past the cap", reserve, "r9", k_price_max + 1, o::ok, errc::invalid_argument, 100, 0},
        {"empty request id", reserve, "", 0, o::ok, errc::invalid_argument, 100, 0},
    };
    for (const auto& s : steps) {
        const status got = run_step(*l, key, s);
        EXPECT_EQ(got.code(), s.want) << s.name << ": " << got.to_string();
        auto me = l->me(key);
        ASSERT_TRUE(me) << s.name;
        EXPECT_EQ(me->key_budget.spent, s.spent) << s.name;
        EXPECT_EQ(me->key_budget.reserved, s.reserved) << s.name;
        EXPECT_EQ(me->key_budget.remaining, 100 - s.spent - s.reserved) << s.name;
    }
    EXPECT_EQ(l->reserve("x", "key_unknown", "chat.completions", 1).code(), errc::not_found);

    auto r2 = l->charge_get("r2");
    ASSERT_TRUE(r2);
    EXPECT_EQ(r2->state, charge_state::voided);
    EXPECT_EQ(r2->outcome, charge_outcome::failed);
    EXPECT_EQ(r2->price, 50) << "the reserved price is kept; a voided charge counts 0";

    struct usage_want { const char* group; int64_t requests, billed; micros charged; };
    const usage_want want[] = {
        {"cache_hit", 1, 1, 0}, {"failed", 1, 0, 0}, {"ok", 2, 2, 100}, {"rejected_budget", 1, 0, 0}};
    auto rows = l->usage({.group_by = usage_group::outcome});
    ASSERT_TRUE(rows) << rows.error().to_string();
    ASSERT_EQ(rows->size(), std::size(want));
    for (size_t i = 0; i < rows->size(); ++i) {
        EXPECT_EQ((*rows)[i].group, want[i].group);
        EXPECT_EQ((*rows)[i].requests, want[i].requests) << want[i].group;
        EXPECT_EQ((*rows)[i].billed_requests, want[i].billed) << want[i].group;
        EXPECT_EQ((*rows)[i].charged, want[i].charged) << want[i].group;
    }
    auto by_day = l->usage({.group_by = usage_group::day, .key_id = key});
    ASSERT_TRUE(by_day);
    ASSERT_EQ(by_day->size(), 1u);
    EXPECT_EQ((*by_day)[0].group, "2024-03-15");
    EXPECT_EQ((*by_day)[0].requests, 5);
    EXPECT_EQ((*by_day)[0].charged, 100);
    EXPECT_EQ((*by_day)[0].outcomes.at("ok"), 2);
    struct filter_case { const char* name; usage_query q; size_t rows; };
    const filter_case filters[] = {
        {"by user", {.group_by = usage_group::endpoint, .user = "alice"}, 1},
        {"another user", {.group_by = usage_group::endpoint, .user = "bob"}, 0},
        {"another key", {.group_by = usage_group::endpoint, .key_id = "key_other"}, 0},
        {"before the charges", {.start_ms = 0, .end_ms = k_t0, .group_by = usage_group::endpoint}, 0},
        {"from the first charge on", {.start_ms = k_t0, .group_by = usage_group::endpoint}, 1},
    };
    for (const auto& f : filters) {
        auto got = l->usage(f.q);
        ASSERT_TRUE(got) << f.name;
        EXPECT_EQ(got->size(), f.rows) << f.name;
        if (!got->empty()) {
            EXPECT_EQ((*got)[0].requests, 5) << f.name;
        }
    }
    EXPECT_EQ(l->usage({.start_ms = 5, .end_ms = 5}).error().code(), errc::invalid_argument);
}

// try_reserve is reserve for a network thread: it decides what the mirror can decide and leaves the rest
// (a subject's first charge of the period, whose totals are read from the table) to reserve, doing nothing.
TEST_F(ledger_test, try_reserve_decides_in_memory_or_leaves_the_request_untouched) {
    auto l = open_ledger();
    ASSERT_NE(l, nullptr);
    const std::string key = make_key(*l, "carol", {.budget = 50, .budget_period = period::month});
    EXPECT_FALSE(l->try_reserve("t1", key, "chat.completions", 20).has_value()) << "totals not yet known";
    EXPECT_EQ(l->me(key)->key_budget.reserved, 0) << "an undecided try holds nothing";
    ASSERT_TRUE(l->reserve("t1", key, "chat.completions", 20));  // builds the totals

    auto decided = l->try_reserve("t2", key, "chat.completions", 20);
    ASSERT_TRUE(decided.has_value());
    EXPECT_TRUE(decided->ok());
    decided = l->try_reserve("t3", key, "chat.completions", 20);
    ASSERT_TRUE(decided.has_value());
    EXPECT_EQ(decided->code(), errc::budget_exhausted) << "20 + 20 + 20 > 50, decided in memory";
    ASSERT_TRUE(l->commit("t1"));
    decided = l->try_reserve("t1", key, "chat.completions", 0);
    ASSERT_TRUE(decided.has_value());
    EXPECT_EQ(decided->code(), errc::invalid_argument) << "a finished id is single-use here too";
    decided = l->try_reserve("t2", key, "chat.completions", 0);
    ASSERT_TRUE(decided.has_value());
    EXPECT_EQ(decided->code(), errc::invalid_argument) << "and an open one";
    EXPECT_EQ(l->me(key)->key_budget.spent, 20);
    EXPECT_EQ(l->me(key)->key_budget.reserved, 20);
}

TEST_F(ledger_test, key_and_user_budgets_each_refuse_and_say_which) {
    struct who_case {
        const char* name;
        std::optional<micros> key_budget, user_budget;
        bool first_charge_on_other_key;  // the user's second key spends first
        const char* want;                // nullptr: the second reserve fits
    };
    const who_case cases[] = {
        {"both fit", 100, 100, false, nullptr},
        {"the key runs out first", 50, 100, false, "key budget exhausted"},
        {"the user runs out first", 100, 50, false, "user budget exhausted"},
        {"the user's budget is shared by its keys", std::nullopt, 50, true, "user budget exhausted"},
        {"another user's spending does not count", std::nullopt, std::nullopt, true, nullptr},
    };
    int n = 0;
    for (const auto& c : cases) {
        auto l = open_ledger(numbered("case", n++));
        ASSERT_NE(l, nullptr);
        const std::string a = make_key(*l, "u", {.budget = c.key_budget});
        const std::string b = make_key(*l, "u");
        ASSERT_TRUE(l->user_set_budget("u", c.user_budget, period::month));
        ASSERT_TRUE(l->reserve("first", c.first_charge_on_other_key ? b : a, "chat.completions", 40)) << c.name;
        ASSERT_TRUE(l->commit("first")) << c.name;
        const status s = l->reserve("second", a, "chat.completions", 20);
        if (!c.want) {
            EXPECT_TRUE(s) << c.name << ": " << s.to_string();
            continue;
        }
        EXPECT_EQ(s.code(), errc::budget_exhausted) << c.name;
        EXPECT_NE(s.message().find(c.want), std::string::npos) << c.name << ": " << s.message();
        auto me = l->me(a);
        ASSERT_TRUE(me);
        ASSERT_EQ(me->user_budget.has_value(), c.user_budget.has_value()) << c.name;
        if (me->user_budget) {
            EXPECT_EQ(me->user_budget->spent, 40) << c.name;
        }
    }
}

TEST_F(ledger_test, spent_resets_when_the_period_rolls_over) {
    struct roll_case {
        const char* name;
        period p;
        int64_t start;    // a little before the boundary
        int64_t advance;  // to cross it (or not, for none)
        bool resets;
    };
    const roll_case cases[] = {
        {"day, into March of a leap year", period::day, 1709251199000, 1000, true},
        {"month, end of leap February", period::month, 1709251199999, 1, true},
        {"month, end of the year", period::month, 1704067199000, 1000, true},
        {"day, not yet crossed", period::day, 1709251199000, 999, false},
        {"none never resets", period::none, 1709251199000, 400 * k_day, false},
    };
    constexpr micros price = 10;
    int n = 0;
    for (const auto& c : cases) {
        clk_.set_ms(c.start);
        auto l = open_ledger(numbered("case", n++));
        ASSERT_NE(l, nullptr);
        const std::string key = make_key(*l, "u", {.budget = 4 * price, .budget_period = c.p});
        for (int i = 0; i < 3; ++i) {
            const std::string id = numbered("old", i);
            ASSERT_TRUE(l->reserve(id, key, "chat.completions", price)) << c.name;
            ASSERT_TRUE(l->commit(id)) << c.name;
        }
        ASSERT_TRUE(l->reserve("carried", key, "chat.completions", price)) << c.name;  // open across the boundary
        EXPECT_EQ(l->reserve("full", key, "chat.completions", price).code(), errc::budget_exhausted) << c.name;

        clk_.advance_ms(c.advance);
        auto me = l->me(key);
        ASSERT_TRUE(me);
        EXPECT_EQ(me->key_budget.spent, c.resets ? 0 : 3 * price) << c.name;
        EXPECT_EQ(me->key_budget.reserved, c.resets ? 0 : price) << c.name << ": the carried charge stays in its period";
        const status fresh = l->reserve("new0", key, "chat.completions", price);
        EXPECT_EQ(fresh.code(), c.resets ? errc::ok : errc::budget_exhausted) << c.name;
        ASSERT_TRUE(l->commit("carried")) << c.name;
        if (fresh) {
            ASSERT_TRUE(l->commit("new0"));
        }
        me = l->me(key);
        EXPECT_EQ(me->key_budget.spent, c.resets ? price : 4 * price)
            << c.name << ": a charge counts in the period it was reserved in";
    }
}

TEST_F(ledger_test, racing_reservations_never_overshoot) {
    struct race_case { const char* name; bool budget_on_user; };
    constexpr int n_threads = 64, tries_per_thread = 3;
    constexpr micros price = 7, budget = 10 * price;
    int n = 0;
    for (const auto& c : {race_case{"key budget", false}, race_case{"user budget", true}}) {
        auto l = open_ledger(numbered("case", n++));
        ASSERT_NE(l, nullptr);
        const std::string key =
            make_key(*l, "u", {.budget = c.budget_on_user ? std::nullopt : std::optional<micros>(budget)});
        if (c.budget_on_user) {
            ASSERT_TRUE(l->user_set_budget("u", budget, period::month));
        }

        std::atomic<int> won{0}, refused{0}, other{0};
        std::latch start(n_threads);
        std::vector<std::thread> threads;
        for (int t = 0; t < n_threads; ++t)
            threads.emplace_back([&, t] {
                start.arrive_and_wait();
                for (int i = 0; i < tries_per_thread; ++i) {
                    const std::string id = numbered(numbered("t", t) + "_", i);
                    const status s = l->reserve(id, key, "chat.completions", price);
                    if (s && l->commit(id)) won++;
                    else if (s.code() == errc::budget_exhausted) refused++;
                    else other++;
                }
            });
        for (auto& th : threads) th.join();
        EXPECT_EQ(won.load(), 10) << c.name;
        EXPECT_EQ(refused.load(), n_threads * tries_per_thread - 10) << c.name;
        EXPECT_EQ(other.load(), 0) << c.name;
        auto me = l->me(key);
        ASSERT_TRUE(me);
        const budget_view& v = c.budget_on_user ? *me->user_budget : me->key_budget;
        EXPECT_EQ(v.spent, budget) << c.name;
        EXPECT_EQ(v.reserved, 0) << c.name;
        auto rows = l->usage({.group_by = usage_group::key});
        ASSERT_TRUE(rows);
        EXPECT_EQ((*rows)[0].charged, budget) << c.name << ": the table agrees with the totals";
    }
}

// ---- alerts ---------------------------------------------------------------------------------------

TEST_F(ledger_test, alerts_fire_once_per_threshold_per_period) {
    struct alert_step {
        const char* name;
        int commits;        // each 10 against a key budget of 100/day and a user budget of 200/month
        bool reopen_first;  // the ledger restarts before these commits
        int64_t advance_first;
        std::vector<std::pair<alert::subject_kind, int>> want;  // in order
    };
    using k = alert::subject_kind;
    const alert_step steps[] = {
        {"40%: nothing yet", 4, false, 0, {}},
        {"50%", 1, false, 0, {{k::key, 50}}},
        {"after a restart 60 and 70% stay quiet", 2, true, 0, {}},
        {"80%", 1, false, 0, {{k::key, 80}}},
        {"100% of the key is 50% of the user", 2, false, 0, {{k::key, 100}, {k::user, 50}}},
        {"next day: the key's thresholds again; the user's month goes on", 5, false, k_day, {{k::key, 50}}},
        {"user 80%", 1, false, 0, {{k::user, 80}}},
    };
    auto l = open_ledger();
    ASSERT_NE(l, nullptr);
    const std::string key = make_key(*l, "u", {.budget = 100, .budget_period = period::day});
    ASSERT_TRUE(l->user_set_budget("u", 200, period::month));
    int id = 0;
    for (const auto& s : steps) {
        if (s.reopen_first) {
            l.reset();
            l = open_ledger();
            ASSERT_NE(l, nullptr);
        }
        clk_.advance_ms(s.advance_first);
        for (int i = 0; i < s.commits; ++i) {
            const std::string rid = numbered("r", id++);
            ASSERT_TRUE(l->reserve(rid, key, "chat.completions", 10)) << s.name;
            ASSERT_TRUE(l->commit(rid)) << s.name;
        }
        const auto got = take_alerts();  // the sink has run before commit() returned
        ASSERT_EQ(got.size(), s.want.size()) << s.name;
        for (size_t i = 0; i < got.size(); ++i) {
            EXPECT_EQ(got[i].kind, s.want[i].first) << s.name;
            EXPECT_EQ(got[i].threshold_pct, s.want[i].second) << s.name;
            EXPECT_EQ(got[i].subject, got[i].kind == k::key ? key : "u") << s.name;
            const period p = got[i].kind == k::key ? period::day : period::month;
            EXPECT_EQ(got[i].range.start_ms, period_bounds(p, clk_.now_ms()).start_ms) << s.name;
            EXPECT_EQ(got[i].budget, got[i].kind == k::key ? 100 : 200) << s.name;
            EXPECT_GE(got[i].spent * 100, got[i].budget * got[i].threshold_pct) << s.name;
        }
    }
}

// ---- idempotency ----------------------------------------------------------------------------------

TEST_F(ledger_test, idempotency_run_replay_mismatch_in_flight_abandon_expiry) {
    enum class act { begin, finish, abandon };
    struct idem_step {
        const char* name;
        int64_t advance_ms;
        act what;
        const char* key_id;
        const char* body_hash;
        idem_verdict want_verdict;  // for begin
        errc want = errc::ok;
    };
    using v = idem_verdict;
    const idem_step steps[] = {
        {"first attempt runs", 0, act::begin, "key_a", "h1", v::run},
        {"a retry while it runs", 0, act::begin, "key_a", "h1", v::in_flight},
        {"another body", 0, act::begin, "key_a", "h2", v::mismatch},
        {"the same Idempotency-Key under another API key", 0, act::begin, "key_b", "h2", v::run},
        {"the first attempt finishes", 0, act::finish, "key_a", "", v::run},
        {"finishing twice", 0, act::finish, "key_a", "", v::run, errc::not_found},
        {"a retry replays", 1000, act::begin, "key_a", "h1", v::replay},
        {"another body still mismatches", 0, act::begin, "key_a", "h2", v::mismatch},
        {"just inside 24 h", k_idempotency_ttl_ms - 1001, act::begin, "key_a", "h1", v::replay},
        {"24 h after the first attempt: forgotten", 1, act::begin, "key_a", "h2", v::run},
        {"the new attempt fails", 0, act::abandon, "key_a", "", v::run},
        {"abandoning twice", 0, act::abandon, "key_a", "", v::run, errc::not_found},
        {"after abandon a retry runs", 0, act::begin, "key_a", "h1", v::run},
        {"finishing what never began", 0, act::finish, "key_c", "", v::run, errc::not_found},
    };
    auto l = open_ledger();
    ASSERT_NE(l, nullptr);
    const stored_response resp{.http_status = 201, .content_type = "application/json", .body = std::string("{\"a\":\0}", 8)};
    for (const auto& s : steps) {
        clk_.advance_ms(s.advance_ms);
        switch (s.what) {
            case act::begin: {
                auto r = l->idem_begin(s.key_id, "idem-1", s.body_hash);
                ASSERT_EQ(r.error().code(), s.want) << s.name;
                if (!r) break;
                EXPECT_EQ(r->verdict, s.want_verdict) << s.name;
                if (r->verdict == v::replay) {
                    EXPECT_EQ(r->response.http_status, resp.http_status) << s.name;
                    EXPECT_EQ(r->response.content_type, resp.content_type) << s.name;
                    EXPECT_EQ(r->response.body, resp.body) << s.name << ": bodies are bytes, NULs included";
                }
                break;
            }
            case act::finish: EXPECT_EQ(l->idem_finish(s.key_id, "idem-1", resp).code(), s.want) << s.name; break;
            case act::abandon: EXPECT_EQ(l->idem_abandon(s.key_id, "idem-1").code(), s.want) << s.name; break;
        }
    }
    EXPECT_EQ(l->idem_begin("key_a", "", "h").error().code(), errc::invalid_argument);
}

TEST_F(ledger_test, idempotency_expired_records_are_purged) {
    auto l = open_ledger();
    ASSERT_NE(l, nullptr);
    for (const char* k : {"i1", "i2", "i3"}) ASSERT_EQ(l->idem_begin("key_a", k, "h")->verdict, idem_verdict::run);
    ASSERT_TRUE(l->idem_finish("key_a", "i2", {.http_status = 200, .content_type = "text/plain", .body = "x"}));
    clk_.advance_ms(k_idempotency_ttl_ms - 1);
    EXPECT_EQ(l->idem_purge_expired().value(), 0);
    clk_.advance_ms(1);
    EXPECT_EQ(l->idem_purge_expired().value(), 3);
    EXPECT_EQ(l->idem_purge_expired().value(), 0);
}

TEST_F(ledger_test, idempotency_concurrent_first_attempts_run_exactly_once) {
    constexpr int n_threads = 8, rounds = 20;
    auto l = open_ledger();
    ASSERT_NE(l, nullptr);
    for (int round = 0; round < rounds; ++round) {
        const std::string idem = numbered("same-", round);
        std::atomic<int> run{0}, in_flight{0};
        std::latch start(n_threads);
        std::vector<std::thread> threads;
        for (int t = 0; t < n_threads; ++t)
            threads.emplace_back([&] {
                start.arrive_and_wait();
                auto r = l->idem_begin("key_a", idem, "h");
                if (r && r->verdict == idem_verdict::run) run++;
                if (r && r->verdict == idem_verdict::in_flight) in_flight++;
            });
        for (auto& th : threads) th.join();
        EXPECT_EQ(run.load(), 1) << "round " << round;
        EXPECT_EQ(in_flight.load(), n_threads - 1) << "round " << round;
    }
}

TEST_F(ledger_test, idempotency_records_of_a_dead_process_do_not_block_retries) {
    {
        auto l = open_ledger();
        ASSERT_NE(l, nullptr);
        ASSERT_EQ(l->idem_begin("key_a", "k", "h")->verdict, idem_verdict::run);
        ASSERT_EQ(l->idem_begin("key_a", "done", "h")->verdict, idem_verdict::run);
        ASSERT_TRUE(l->idem_finish("key_a", "done", {.http_status = 200, .content_type = "text/plain", .body = "ok"}));
    }
    auto l = open_ledger();
    ASSERT_NE(l, nullptr);
    EXPECT_EQ(l->idem_begin("key_a", "k", "h")->verdict, idem_verdict::run) << "not 409 for a day";
    EXPECT_EQ(l->idem_begin("key_a", "done", "h")->verdict, idem_verdict::replay) << "finished ones are kept";
}

// ---- response cache -------------------------------------------------------------------------------

TEST_F(ledger_test, response_cache_keeps_the_most_recently_used) {
    auto l = open_ledger("main", /*cache_entries=*/2);
    ASSERT_NE(l, nullptr);
    auto resp = [](const char* body) { return stored_response{.http_status = 200, .content_type = "t", .body = body}; };
    struct cache_step { const char* name; const char* put; const char* get; const char* want; };
    const cache_step steps[] = {
        {"miss", nullptr, "a", nullptr},
        {"put a", "a", "a", "a"},
        {"put b", "b", "b", "b"},
        {"touch a", nullptr, "a", "a"},
        {"put c evicts b, the least recent", "c", "b", nullptr},
        {"a stays", nullptr, "a", "a"},
        {"c stays", nullptr, "c", "c"},
    };
    for (const auto& s : steps) {
        if (s.put) l->cache_put(s.put, resp(s.put));
        auto got = l->cache_get(s.get);
        ASSERT_EQ(got.has_value(), s.want != nullptr) << s.name;
        if (got) {
            EXPECT_EQ(got->body, s.want) << s.name;
        }
    }
}

// ---- schema ---------------------------------------------------------------------------------------

TEST_F(ledger_test, a_version_1_file_is_migrated_with_its_rows) {
    const std::string secret = "mm-old-key-from-version-one";
    const std::string seed = "INSERT INTO users VALUES ('old', 50, 'month', 1);"
                             "INSERT INTO keys (id, user_name, prefix, hash, budget, period, rpm, max_concurrent, "
                             "created_ms) VALUES ('key_old', 'old', 'mm-old-key-f', '" +
                             key_hash(k_server_secret, secret) + "', NULL, 'month', 0, 0, 1);";
    fs::create_directories(db_path().parent_path());
    ASSERT_TRUE(ledger_schema_create_at(db_path(), 1, seed));
    auto l = open_ledger();
    ASSERT_NE(l, nullptr);
    auto k = l->key_authenticate(secret);
    ASSERT_TRUE(k) << k.error().to_string();
    EXPECT_EQ(k->id, "key_old");
    EXPECT_EQ(l->user_get("old")->budget, 50);
    // Version 2's tables exist now.
    EXPECT_EQ(l->idem_begin("key_old", "i", "h")->verdict, idem_verdict::run);
    ASSERT_TRUE(l->reserve("r", "key_old", "chat.completions", 30));
    ASSERT_TRUE(l->commit("r"));
    EXPECT_EQ(take_alerts().size(), 1u) << "the user's 50% alert";
}

TEST_F(ledger_test, a_file_from_a_newer_build_is_refused) {
    fs::create_directories(db_path().parent_path());
    ASSERT_TRUE(ledger_schema_create_at(db_path(), ledger_schema_latest(), "PRAGMA user_version = 99"));
    auto l = sqlite_ledger::open({.path = db_path(), .server_secret = k_server_secret, .clk = &clk_});
    ASSERT_FALSE(l);
    EXPECT_EQ(l.error().code(), errc::unsupported);
    EXPECT_NE(l.error().message().find("version 99"), std::string::npos) << l.error().message();
    EXPECT_NE(l.error().message().find("newer"), std::string::npos) << l.error().message();
}

TEST_F(ledger_test, one_ledger_file_has_one_owner) {
    auto first = open_ledger();
    ASSERT_NE(first, nullptr);
    auto second = sqlite_ledger::open({.path = db_path(), .server_secret = k_server_secret, .clk = &clk_});
    ASSERT_FALSE(second) << "a second owner would void the first one's open reservations";
    EXPECT_NE(second.error().message().find("another"), std::string::npos) << second.error().message();
    first.reset();
    EXPECT_NE(open_ledger(), nullptr) << "free again once closed";
}

TEST_F(ledger_test, open_refuses_incomplete_params) {
    struct params_case { const char* name; sqlite_ledger_params p; };
    const params_case cases[] = {
        {"no path", {.path = {}, .server_secret = "s", .clk = &clk_}},
        {"no secret", {.path = db_path(), .server_secret = {}, .clk = &clk_}},
        {"no clock", {.path = db_path(), .server_secret = "s", .clk = nullptr}},
    };
    for (const auto& c : cases) {
        auto l = sqlite_ledger::open(c.p);
        ASSERT_FALSE(l) << c.name;
        EXPECT_EQ(l.error().code(), errc::invalid_argument) << c.name;
    }
}

}  // namespace
}  // namespace mm::services
