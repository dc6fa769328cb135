// The bounded stage queue: admits up to its depth, refuses at once past it, frees a place per ticket.
#include <gtest/gtest.h>

#include <atomic>
#include <optional>
#include <thread>
#include <vector>

#include "services/stage_gate.h"

namespace mm::services {
namespace {

TEST(stage_gate, admits_up_to_depth_and_frees_places_as_tickets_end) {
    stage_gate g("text", 2);
    auto a = g.try_enter();
    auto b = g.try_enter();
    ASSERT_TRUE(a && b);
    EXPECT_FALSE(g.try_enter()) << "full";
    EXPECT_EQ(g.depth(), 2);
    a.reset();
    EXPECT_EQ(g.depth(), 1);
    auto c = g.try_enter();
    EXPECT_TRUE(c);
    std::optional<stage_gate::ticket> moved(std::move(*c));
    c.reset();  // the moved-from ticket gives nothing back
    EXPECT_EQ(g.depth(), 2);
}

TEST(stage_gate, racing_threads_never_exceed_depth) {
    stage_gate g("image", 5);
    std::atomic<int> inside{0}, max_inside{0}, refused{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t)
        threads.emplace_back([&] {
            for (int i = 0; i < 2000; ++i) {
                auto tk = g.try_enter();
                if (!tk) {
                    refused++;
                    continue;
                }
                const int now = ++inside;
                int m = max_inside.load();
                while (now > m && !max_inside.compare_exchange_weak(m, now)) {}
                --inside;
            }
        });
    for (auto& t : threads) t.join();
    EXPECT_LE(max_inside.load(), 5);
    EXPECT_EQ(g.depth(), 0);
}

}  // namespace
}  // namespace mm::services
