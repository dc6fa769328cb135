// The sampler's steps, each on a distribution small enough to reason about exactly.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <vector>

#include "text/sampler.h"

namespace mm::text {
namespace {

std::vector<float> logits() { return {1.0f, 3.0f, 2.0f, 0.5f, 2.9f}; }

int32_t draw(sampling_params p, std::vector<float> l, std::vector<int32_t> history = {}) {
    sampler s(std::move(p));
    return s.sample(l, history);
}

TEST(sampler, greedy_and_top_k_one_pick_the_largest_logit) {
    EXPECT_EQ(draw({.temperature = 0.0f}, logits()), 1);
    for (uint64_t seed = 0; seed < 20; ++seed) EXPECT_EQ(draw({.temperature = 1.0f, .top_k = 1, .seed = seed}, logits()), 1);
}

TEST(sampler, penalties_and_bias_move_the_greedy_choice) {
    // Token 1 (3.0) seen twice: frequency 0.1 * 2 + presence 0.05 leaves 2.75 < 2.9 (token 4).
    EXPECT_EQ(draw({.temperature = 0.0f, .frequency_penalty = 0.1f, .presence_penalty = 0.05f}, logits(), {1, 1}), 4);
    // One sighting: 3.0 - 0.1 - 0.05 = 2.85 < 2.9 as well, but 0.04 + 0.05 keeps it ahead.
    EXPECT_EQ(draw({.temperature = 0.0f, .frequency_penalty = 0.04f, .presence_penalty = 0.05f}, logits(), {1}), 1);
    // Repetition penalty 1.1: 3.0 / 1.1 = 2.73 < 2.9.
    EXPECT_EQ(draw({.temperature = 0.0f, .repetition_penalty = 1.1f}, logits(), {1}), 4);
    EXPECT_EQ(draw({.temperature = 0.0f, .logit_bias = {{3, 5.0f}}}, logits()), 3);
}

TEST(sampler, the_mask_excludes_tokens) {
    const std::vector<bool> allowed{true, false, true, false, false};
    sampler s({.temperature = 0.0f});
    auto l = logits();
    EXPECT_EQ(s.sample(l, {}, &allowed), 2);
    for (uint64_t seed = 0; seed < 50; ++seed) {
        sampler r({.temperature = 1.5f, .seed = seed});
        auto l2 = logits();
        const int32_t t = r.sample(l2, {}, &allowed);
        EXPECT_TRUE(t == 0 || t == 2) << t;
    }
}

TEST(sampler, the_same_seed_gives_the_same_tokens_and_draws_follow_the_softmax) {
    std::map<int32_t, int> hist;
    const int n = 20000;
    sampler s({.temperature = 1.0f, .seed = 42});
    sampler twin({.temperature = 1.0f, .seed = 42});
    for (int i = 0; i < n; ++i) {
        auto a = logits(), b = logits();
        const int32_t t = s.sample(a, {});
        EXPECT_EQ(twin.sample(b, {}), t);
        ++hist[t];
    }
    // Expected frequencies from the softmax; 5 sigma of a binomial with n = 20000 is under 0.018.
    const auto l = logits();
    double z = 0;
    for (float v : l) z += std::exp(v);
    for (int t = 0; t < 5; ++t) EXPECT_NEAR(hist[t] / double(n), std::exp(l[t]) / z, 0.018) << t;
}

TEST(sampler, top_p_and_min_p_cut_the_tail) {
    // Probabilities at T=1: token 1 0.389, 4 0.352, 2 0.143, 0 0.053, 3 0.032.
    for (uint64_t seed = 0; seed < 200; ++seed) {
        const int32_t p = draw({.temperature = 1.0f, .top_p = 0.7f, .seed = seed}, logits());
        EXPECT_TRUE(p == 1 || p == 4) << "top_p 0.7 keeps the two that reach it: " << p;
        const int32_t m = draw({.temperature = 1.0f, .min_p = 0.3f, .seed = seed}, logits());
        EXPECT_TRUE(m == 1 || m == 4 || m == 2) << "min_p 0.3 keeps p >= 0.117: " << m;
    }
}

TEST(sampler, logprobs_are_the_models_log_softmax) {
    const auto l = logits();
    double z = 0;
    for (float v : l) z += std::exp(v);
    EXPECT_NEAR(logprob_of(l, 2).logprob, 2.0 - std::log(z), 1e-6);
    const auto top = top_logprobs(l, 3);
    ASSERT_EQ(top.size(), 3u);
    EXPECT_EQ(top[0].id, 1);
    EXPECT_EQ(top[1].id, 4);
    EXPECT_EQ(top[2].id, 2);
    EXPECT_NEAR(top[1].logprob, 2.9 - std::log(z), 1e-6);
}

TEST(sampler, bad_parameters_are_named) {
    EXPECT_FALSE(validate({.temperature = -1.0f}, 5));
    EXPECT_FALSE(validate({.top_p = 0.0f}, 5));
    EXPECT_FALSE(validate({.logit_bias = {{7, 1.0f}}}, 5));
    EXPECT_FALSE(validate({.logit_bias = {{1, 200.0f}}}, 5));
    EXPECT_TRUE(validate({.temperature = 0.7f, .top_k = 40, .top_p = 0.9f}, 5));
}

}  // namespace
}  // namespace mm::text
