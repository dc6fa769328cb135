// The sampler's steps, each on a distribution small enough to reason about exactly.
#include <gtest/gtest.h>

#include <cmath>
#include <algorithm>
#include <map>
#include <random>
#include <set>
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

// A vocabulary-sized row, where top-k, top-p and min-p no longer sort the whole row: the kept set must be
// the same best-first cut a full sort gives, with the same ties rule (lower id first).
TEST(sampler, cuts_on_a_vocabulary_sized_row_match_a_full_sort) {
    std::mt19937 rng(7);
    std::normal_distribution<float> normal(0.0f, 1.5f);
    std::vector<float> row(5000);
    for (auto& v : row) v = std::round(normal(rng) * 8.0f) / 8.0f;  // coarse values: many ties at the cut
    std::vector<int32_t> order(row.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int32_t>(i);
    std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return row[a] > row[b] || (row[a] == row[b] && a < b); });
    const float t = 0.9f;
    auto weight = [&](int32_t id) { return std::exp(static_cast<double>(row[id] - row[order[0]]) / t); };
    // Expected kept sets, by the definitions: top_k the k best; then top_p the shortest prefix of those
    // reaching p of their mass; min_p those with p >= min_p * p_max.
    auto kept = [&](int top_k, float top_p, float min_p) {
        const size_t k = top_k > 0 ? static_cast<size_t>(top_k) : order.size();
        double z = 0;
        for (size_t i = 0; i < k; ++i) z += weight(order[i]);
        size_t end = k;
        double cum = 0;
        for (size_t i = 0; i < k && top_p < 1.0f; ++i)
            if ((cum += weight(order[i]) / z) >= top_p) {
                end = i + 1;
                break;
            }
        std::set<int32_t> out;
        for (size_t i = 0; i < end; ++i)
            if (weight(order[i]) >= min_p) out.insert(order[i]);
        return out;
    };
    struct cut { int top_k; float top_p, min_p; };
    for (const cut c : {cut{0, 0.3f, 0.0f}, cut{0, 0.9f, 0.0f}, cut{300, 0.5f, 0.0f}, cut{0, 1.0f, 0.05f},
                        cut{1000, 0.8f, 0.02f}, cut{40, 1.0f, 0.0f}}) {
        const std::set<int32_t> want = kept(c.top_k, c.top_p, c.min_p);
        ASSERT_GT(want.size(), 10u);
        std::set<int32_t> seen;
        sampler s({.temperature = t, .top_k = c.top_k, .top_p = c.top_p, .min_p = c.min_p, .seed = 11});
        for (int i = 0; i < 20000; ++i) {
            std::vector<float> l = row;
            const int32_t id = s.sample(l, {});
            ASSERT_TRUE(want.count(id)) << "top_k " << c.top_k << " top_p " << c.top_p << " min_p " << c.min_p
                                        << ": drew " << id << ", outside the cut";
            seen.insert(id);
        }
        // Every kept token is reachable: the draws cover most of the set (the rarest have p of a few 1e-4).
        EXPECT_GT(seen.size(), want.size() * 8 / 10) << "top_k " << c.top_k << " top_p " << c.top_p;
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
