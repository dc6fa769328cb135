// The meter's rate limits: a sliding minute per key and requests in flight, with the numbers the
// x-ratelimit-* and Retry-After headers carry. Time is passed in, so nothing sleeps.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "services/rate_limiter.h"

namespace mm::services {
namespace {

TEST(rate_limiter, sliding_minute_admits_rpm_then_refuses_until_the_oldest_leaves) {
    rate_limiter rl;
    const rate_limits lim{.rpm = 3};
    struct step { const char* name; int64_t t; bool allowed; int64_t remaining; int64_t reset_ms; int64_t retry; };
    const step steps[] = {
        {"first", 1'000, true, 2, 60'000, 0},
        {"second", 2'000, true, 1, 59'000, 0},
        {"third", 30'000, true, 0, 31'000, 0},
        {"fourth refused", 30'500, false, 0, 30'500, 31},
        {"still inside the minute", 60'999, false, 0, 1, 1},
        {"first has left", 61'000, true, 0, 1'000, 0},
        {"refused again", 61'500, false, 0, 500, 1},
    };
    for (const auto& s : steps) {
        const auto d = rl.acquire("k", lim, s.t);
        EXPECT_EQ(d.allowed, s.allowed) << s.name;
        EXPECT_EQ(d.limit, 3) << s.name;
        EXPECT_EQ(d.remaining, s.remaining) << s.name;
        EXPECT_EQ(d.reset_ms, s.reset_ms) << s.name;
        if (!s.allowed) {
            EXPECT_EQ(d.retry_after_s, s.retry) << s.name;
        }
        if (d.allowed) rl.release("k");
    }
}

TEST(rate_limiter, concurrency_limit_counts_requests_in_flight) {
    rate_limiter rl;
    const rate_limits lim{.max_concurrent = 2};
    const auto first = rl.acquire("k", lim, 0);
    EXPECT_TRUE(first.allowed);
    EXPECT_EQ(first.concurrent_limit, 2);
    EXPECT_EQ(first.concurrent_remaining, 1);
    EXPECT_EQ(rl.acquire("k", lim, 0).concurrent_remaining, 0);
    const auto refused = rl.acquire("k", lim, 0);
    EXPECT_FALSE(refused.allowed);
    EXPECT_TRUE(refused.by_concurrency);
    EXPECT_EQ(refused.concurrent_limit, 2);
    EXPECT_EQ(refused.concurrent_remaining, 0);
    EXPECT_EQ(refused.retry_after_s, 1);
    EXPECT_TRUE(rl.acquire("other", lim, 0).allowed) << "keys are independent";
    rl.release("k");
    EXPECT_TRUE(rl.acquire("k", lim, 0).allowed);
}

TEST(rate_limiter, unlimited_by_default) {
    rate_limiter rl;
    for (int i = 0; i < 1000; ++i) ASSERT_TRUE(rl.acquire("k", {}, i).allowed);
}

TEST(rate_limiter, racing_threads_never_exceed_the_limit) {
    rate_limiter rl;
    std::atomic<int> admitted{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t)
        threads.emplace_back([&] {
            for (int i = 0; i < 100; ++i)
                if (rl.acquire("k", {.rpm = 50}, 1'000).allowed) admitted++;
        });
    for (auto& t : threads) t.join();
    EXPECT_EQ(admitted.load(), 50);
}

TEST(rate_limiter, reset_text_uses_openai_durations) {
    struct row { int64_t ms; const char* want; };
    for (const auto& r : {row{0, "0ms"}, row{250, "250ms"}, row{1000, "1s"}, row{1001, "2s"}, row{59'000, "59s"},
                          row{60'000, "1m0s"}, row{360'000, "6m0s"}, row{61'500, "1m2s"}})
        EXPECT_EQ(rate_reset_text(r.ms), r.want) << r.ms;
}

}  // namespace
}  // namespace mm::services
