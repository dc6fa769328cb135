// The shared pool: every index covered exactly once, nested and concurrent callers, and the step
// scheduler's two properties (interactive first; batch never starved).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <latch>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/step_scheduler.h"
#include "common/thread_pool.h"

namespace mm {
namespace {

TEST(thread_pool, parallel_for_covers_every_index_once) {
    struct row { const char* name; int threads; int64_t n, min_chunk; };
    const row rows[] = {
        {"empty", 2, 0, 1},      {"one", 2, 1, 1},           {"fewer than threads", 4, 3, 1},
        {"prime", 2, 263, 1},    {"chunked", 3, 1000, 64},   {"chunk larger than n", 2, 10, 64},
        {"single thread", 1, 57, 1},
    };
    for (const auto& r : rows) {
        thread_pool pool(r.threads);
        std::vector<std::atomic<int>> hits(static_cast<size_t>(r.n));
        pool.parallel_for(r.n, [&](int64_t b, int64_t e) {
            ASSERT_LE(b, e);
            for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)]++;
        }, r.min_chunk);
        for (int64_t i = 0; i < r.n; ++i) ASSERT_EQ(hits[static_cast<size_t>(i)].load(), 1) << r.name << " index " << i;
    }
}

TEST(thread_pool, uses_every_thread) {
    thread_pool pool(2);
    std::mutex mu;
    std::vector<std::thread::id> ids;
    std::latch both(2);  // each chunk waits for the other, so they must run on two threads at once
    pool.parallel_for(2, [&](int64_t, int64_t) {
        {
            std::lock_guard lock(mu);
            ids.push_back(std::this_thread::get_id());
        }
        both.arrive_and_wait();
    });
    ASSERT_EQ(ids.size(), 2u);
    EXPECT_NE(ids[0], ids[1]);
}

TEST(thread_pool, nested_calls_run_inline) {
    thread_pool pool(2);
    std::atomic<int64_t> sum{0};
    pool.parallel_for(4, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i)
            pool.parallel_for(10, [&](int64_t b2, int64_t e2) { sum += (e2 - b2) * (i + 1); });
    });
    EXPECT_EQ(sum.load(), 10 * (1 + 2 + 3 + 4));
}

TEST(thread_pool, concurrent_callers_are_serialized_not_mixed) {
    thread_pool pool(2);
    std::vector<std::thread> callers;
    std::atomic<int64_t> total{0};
    for (int c = 0; c < 4; ++c)
        callers.emplace_back([&] {
            for (int rep = 0; rep < 200; ++rep) {
                std::atomic<int64_t> local{0};
                pool.parallel_for(100, [&](int64_t b, int64_t e) { local += e - b; });
                ASSERT_EQ(local.load(), 100);
                total += local.load();
            }
        });
    for (auto& t : callers) t.join();
    EXPECT_EQ(total.load(), 4 * 200 * 100);
}

TEST(thread_pool, workers_wake_after_sleeping) {
    // An idle worker leaves its spin and parks on the condition variable; a job must still wake it.
    thread_pool pool(2);
    for (int rep = 0; rep < 3; ++rep) {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (pool.sleeping() == 0 && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
        ASSERT_EQ(pool.sleeping(), 1) << "the worker never parked";
        std::atomic<int> n{0};
        pool.run_on_all([&](int) { n++; });
        EXPECT_EQ(n.load(), 2);
    }
}

// Blocks the scheduler's driver until released, so a test can queue a known mix first.
struct gate {
    std::promise<void> open;
    std::shared_future<void> opened = open.get_future().share();
};

TEST(step_scheduler, interactive_runs_ahead_of_batch_and_batch_is_not_starved) {
    step_scheduler sched({.interactive_burst = 3});
    gate g;
    std::promise<void> blocker_running;
    auto blocked = sched.submit(step_class::batch, [&] {
        blocker_running.set_value();
        g.opened.wait();
    });
    blocker_running.get_future().wait();

    std::mutex mu;
    std::string order;
    std::vector<std::future<void>> done;
    auto record = [&](char c) { return [&, c] { std::lock_guard lock(mu); order += c; }; };
    for (int i = 0; i < 3; ++i) done.push_back(sched.submit(step_class::batch, record('B')));  // queued first
    for (int i = 0; i < 10; ++i) done.push_back(sched.submit(step_class::interactive, record('I')));
    g.open.set_value();
    for (auto& f : done) f.wait();
    blocked.wait();

    // Interactive first although batch was queued earlier; a batch step after every 3 interactive ones.
    EXPECT_EQ(order, "IIIBIIIBIIIBI");
}

TEST(step_scheduler, batch_alone_runs_and_exceptions_reach_the_submitter) {
    step_scheduler sched;
    std::atomic<int> ran{0};
    std::vector<std::future<void>> done;
    for (int i = 0; i < 5; ++i) done.push_back(sched.submit(step_class::batch, [&] { ran++; }));
    auto bad = sched.submit(step_class::interactive, [] { throw std::runtime_error("step failed"); });
    for (auto& f : done) f.get();
    EXPECT_EQ(ran.load(), 5);
    EXPECT_THROW(bad.get(), std::runtime_error);
}

}  // namespace
}  // namespace mm
