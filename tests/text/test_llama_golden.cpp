// The llama forward pass against ../shared/golden/text (README there): run.c's full f32 logits, run.c's
// and llama-server's greedy ids, and llama-server's log-probabilities for the q8_0 / q4_0 files, with the
// tolerances the golden README gives and explains. Token ids come from the goldens, so these tests check
// the model alone; the tokenizer has its own tests.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/gguf.h"
#include "common/thread_pool.h"
#include "ref/files.h"
#include "text/kv_cache.h"
#include "text/llama_decode.h"
#include "text/llama_model.h"
#include "ref/shared_files.h"

namespace mm::text {
namespace {

using json = nlohmann::json;
const std::filesystem::path k_models = std::filesystem::path(MM_SHARED_DIR) / "models" / "text";

std::vector<float> load_f32(const std::string& name) {
    auto bytes = test::read_file(test::shared_path("golden/text/" + name));
    std::vector<float> v(bytes.size() / sizeof(float));
    std::memcpy(v.data(), bytes.data(), v.size() * sizeof(float));
    return v;
}

std::vector<int32_t> ids_of(const json& a) { return a.get<std::vector<int32_t>>(); }

// A loaded model with the file it views.
struct loaded {
    std::optional<gguf_file> file;
    std::shared_ptr<const llama_model> model;
};

loaded load(const std::string& name) {
    loaded l;
    if (name.ends_with(".bin")) {
        auto m = llama_load_llama2c(k_models / name);
        EXPECT_TRUE(m) << m.error().to_string();
        if (m) l.model = *m;
        return l;
    }
    auto f = gguf_open(k_models / name);
    EXPECT_TRUE(f) << f.error().to_string();
    if (!f) return l;
    l.file.emplace(std::move(*f));
    auto m = llama_load_gguf(*l.file);
    EXPECT_TRUE(m) << m.error().to_string();
    if (m) l.model = *m;
    return l;
}

std::vector<float> log_softmax(std::span<const float> x) {
    const float mx = *std::max_element(x.begin(), x.end());
    double sum = 0;
    for (float v : x) sum += std::exp(static_cast<double>(v - mx));
    const float lse = mx + static_cast<float>(std::log(sum));
    std::vector<float> y(x.size());
    for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] - lse;
    return y;
}

int32_t argmax(std::span<const float> x) {
    return static_cast<int32_t>(std::max_element(x.begin(), x.end()) - x.begin());
}

// Feeds tokens to slot 0: the first `prefill` in one batch, the rest one per step (as decoding does), and
// returns the logits at every position [n][n_vocab].
std::vector<float> teacher_forced(thread_pool& pool, const llama_model& m, std::span<const int32_t> tokens,
                                  int prefill) {
    const int n = static_cast<int>(tokens.size());
    const int64_t V = m.hp.n_vocab;
    kv_cache cache(m.hp, 1, n);
    std::vector<float> out(static_cast<size_t>(n) * V);
    tensor logits = tensor::zeros(dtype::f32, {prefill, V});
    const decode_seq first{.slot = 0, .pos0 = 0, .tokens = tokens.first(prefill), .all_logits = true};
    EXPECT_TRUE(llama_decode(pool, m, cache, {&first, 1}, logits));
    std::memcpy(out.data(), logits.data<float>(), static_cast<size_t>(prefill * V) * sizeof(float));
    tensor one = tensor::zeros(dtype::f32, {1, V});
    for (int p = prefill; p < n; ++p) {
        const decode_seq s{.slot = 0, .pos0 = p, .tokens = tokens.subspan(p, 1)};
        EXPECT_TRUE(llama_decode(pool, m, cache, {&s, 1}, one));
        std::memcpy(out.data() + static_cast<size_t>(p) * V, one.data<float>(), V * sizeof(float));
    }
    return out;
}

// Greedy decoding from a prompt until `steps` positions are filled.
std::vector<int32_t> greedy(thread_pool& pool, const llama_model& m, std::vector<int32_t> prompt, int steps) {
    const int64_t V = m.hp.n_vocab;
    kv_cache cache(m.hp, 1, steps);
    tensor logits = tensor::zeros(dtype::f32, {1, V});
    std::vector<int32_t> out;
    decode_seq s{.slot = 0, .pos0 = 0, .tokens = prompt};
    for (int pos = static_cast<int>(prompt.size());; ++pos) {
        EXPECT_TRUE(llama_decode(pool, m, cache, {&s, 1}, logits));
        const int32_t next = argmax({logits.data<float>(), static_cast<size_t>(V)});
        out.push_back(next);
        if (pos >= steps) break;
        prompt.assign(1, next);
        s = decode_seq{.slot = 0, .pos0 = pos, .tokens = prompt};
    }
    return out;
}

TEST(llama_golden, hyper_parameters_of_stories260k_in_both_formats) {
    for (const char* name : {"stories260K.bin", "stories260K-f32.gguf", "stories260K-q8_0.gguf", "stories260K-q4_0.gguf"}) {
        auto l = load(name);
        ASSERT_TRUE(l.model) << name;
        const llama_hparams& h = l.model->hp;
        EXPECT_EQ(h.n_vocab, 512) << name;
        EXPECT_EQ(h.n_embd, 64) << name;
        EXPECT_EQ(h.n_layer, 5) << name;
        EXPECT_EQ(h.n_head, 8) << name;
        EXPECT_EQ(h.n_head_kv, 4) << name;
        EXPECT_EQ(h.n_ff, 172) << name;
        EXPECT_FLOAT_EQ(h.rope.freq_base, 10000.0f) << name;
    }
}

// Every logit at every one of 128 positions within abs 1e-4 of run.c's (README: logits are O(10), the two
// references agree to ~1.5e-5, so 1e-4 leaves room for a different summation order and nothing more).
TEST(llama_golden, f32_logits_match_run_c_at_every_position) {
    const json meta = test::text_golden("logits_runc_once_upon.json");
    const std::vector<int32_t> inputs = ids_of(meta["position_inputs"]);
    const std::vector<float> want = load_f32("logits_runc_once_upon.f32.bin");
    ASSERT_EQ(want.size(), inputs.size() * 512);
    thread_pool pool(2);
    for (const char* name : {"stories260K.bin", "stories260K-f32.gguf"}) {
        auto l = load(name);
        ASSERT_TRUE(l.model);
        for (int prefill : {1, 5, 128}) {
            const std::vector<float> got = teacher_forced(pool, *l.model, inputs, prefill);
            float worst = 0;
            size_t at = 0;
            for (size_t i = 0; i < want.size(); ++i)
                if (float d = std::abs(got[i] - want[i]); d > worst) worst = d, at = i;
            EXPECT_LE(worst, 1e-4f) << name << " prefill " << prefill << ": position " << at / 512 << " token "
                                    << at % 512 << " got " << got[at] << " want " << want[at];
        }
    }
}

// Greedy ids identical to run.c's and llama-server's f32 runs, for every case (the smallest f32 top1-top2
// margin is 0.011, far above f32 noise, so exact equality is the right check).
TEST(llama_golden, f32_greedy_ids_match_run_c_and_llama_server) {
    const json runc = test::text_golden("runc_greedy.json");
    const json server = test::text_golden("server_greedy_f32.json");
    const int steps = runc["steps"].get<int>();
    thread_pool pool(2);
    for (const char* name : {"stories260K.bin", "stories260K-f32.gguf"}) {
        auto l = load(name);
        ASSERT_TRUE(l.model);
        for (const json& c : runc["cases"]) {
            const auto want = ids_of(c["generated_ids"]);
            auto got = greedy(pool, *l.model, ids_of(c["prompt_ids"]), steps);
            got.resize(want.size());  // run.c stops at `steps`; both end at the same position
            EXPECT_EQ(got, want) << name << " case " << c["id"];
        }
        for (const json& c : server["cases"]) {
            const auto want = ids_of(c["generated_ids"]);
            auto got = greedy(pool, *l.model, ids_of(c["prompt_ids"]), steps);
            got.resize(want.size());
            EXPECT_EQ(got, want) << name << " case " << c["id"] << " (llama-server)";
        }
    }
}

// Quantized files, teacher-forced along llama-server's own greedy path (README "Quantized"): we quantize
// activations to int8 per 32-block with an f32 scale where llama.cpp rounds the scale to f16, and keep
// ffn_down's activations f32 where it rounds them to f16, so the README's bounds for an implementation that
// does not copy llama.cpp's activation rounding apply: top-1 logprob abs 0.15, top-5 abs 0.35, greedy ids
// identical up to the first step whose top1-top2 margin is below 0.3.
TEST(llama_golden, quantized_logprobs_follow_llama_server_within_the_readme_bounds) {
    const json cmp = test::text_golden("comparisons.json");
    thread_pool pool(2);
    for (const std::string q : {"q8_0", "q4_0"}) {
        auto l = load("stories260K-" + q + ".gguf");
        ASSERT_TRUE(l.model);
        const json server = test::text_golden("server_greedy_" + q + ".json");
        for (const json& c : server["cases"]) {
            std::vector<int32_t> tokens = ids_of(c["prompt_ids"]);
            const auto gen = ids_of(c["generated_ids"]);
            const size_t n_prompt = tokens.size();
            tokens.insert(tokens.end(), gen.begin(), gen.end() - 1);
            const auto logits = teacher_forced(pool, *l.model, tokens, static_cast<int>(n_prompt));
            const int exact_until = cmp["runc_vs_server"][c["id"].get<std::string>()]
                                       ["server_" + q + "_first_step_with_margin_below_0.3"].get<int>();
            float worst_top1 = 0, worst_top5 = 0;
            for (size_t step = 0; step < gen.size(); ++step) {
                const size_t pos = n_prompt - 1 + step;
                const auto lp = log_softmax({logits.data() + pos * 512, 512});
                const json& s = c["steps"][step];
                worst_top1 = std::max(worst_top1, std::abs(lp[s["id"].get<int>()] - s["logprob"].get<float>()));
                for (const json& t : s["top5"])
                    worst_top5 = std::max(worst_top5, std::abs(lp[t["id"].get<int>()] - t["logprob"].get<float>()));
                if (static_cast<int>(step) < exact_until) {
                    EXPECT_EQ(argmax(lp), gen[step]) << q << " " << c["id"] << " step " << step;
                }
            }
            EXPECT_LE(worst_top1, 0.15f) << q << " " << c["id"];
            EXPECT_LE(worst_top5, 0.35f) << q << " " << c["id"];
        }
    }
}

// llama-server's f32 run, teacher-forced: every step's chosen-token and top-5 log-probabilities within abs
// 1e-4 (README: the two references agree to 1.6e-5; 1e-4 allows another summation order, nothing more).
TEST(llama_golden, f32_step_logprobs_and_top5_match_llama_server) {
    const json server = test::text_golden("server_greedy_f32.json");
    thread_pool pool(2);
    for (const char* name : {"stories260K.bin", "stories260K-f32.gguf"}) {
        auto l = load(name);
        ASSERT_TRUE(l.model);
        for (const json& c : server["cases"]) {
            std::vector<int32_t> tokens = ids_of(c["prompt_ids"]);
            const auto gen = ids_of(c["generated_ids"]);
            const size_t n_prompt = tokens.size();
            tokens.insert(tokens.end(), gen.begin(), gen.end() - 1);
            const auto logits = teacher_forced(pool, *l.model, tokens, static_cast<int>(n_prompt));
            ASSERT_EQ(c["steps"].size(), gen.size()) << c["id"];
            float worst = 0;
            for (size_t step = 0; step < gen.size(); ++step) {
                const auto lp = log_softmax({logits.data() + (n_prompt - 1 + step) * 512, 512});
                const json& s = c["steps"][step];
                worst = std::max(worst, std::abs(lp[s["id"].get<int>()] - s["logprob"].get<float>()));
                ASSERT_EQ(s["top5"].size(), 5u);
                for (const json& t : s["top5"])
                    worst = std::max(worst, std::abs(lp[t["id"].get<int>()] - t["logprob"].get<float>()));
            }
            EXPECT_LE(worst, 1e-4f) << name << " case " << c["id"];
        }
    }
}

// Full distributions at the first three positions (README: abs 0.15 for tokens above logprob -10 without
// llama.cpp's activation rounding; f32 abs 1e-4).
TEST(llama_golden, first_three_full_distributions) {
    thread_pool pool(2);
    for (const std::string q : {"f32", "q8_0", "q4_0"}) {
        const json meta = test::text_golden("logprobs_server_" + q + "_once_upon_first3.json");
        const auto want = load_f32("logprobs_server_" + q + "_once_upon_first3.f32.bin");
        auto l = load("stories260K-" + q + ".gguf");
        ASSERT_TRUE(l.model);
        const auto ids = ids_of(meta["prompt_ids"]);
        const auto logits = teacher_forced(pool, *l.model, ids, 3);
        const float tol = q == "f32" ? 1e-4f : 0.15f;
        for (int p = 0; p < 3; ++p) {
            const auto lp = log_softmax({logits.data() + p * 512, 512});
            for (int t = 0; t < 512; ++t) {
                const float w = want[static_cast<size_t>(p * 512 + t)];
                if (w <= -10.0f && q != "f32") continue;
                EXPECT_NEAR(lp[t], w, tol) << q << " position " << p << " token " << t;
            }
        }
    }
}

// Continuous batching: sequences decoded together give what each gives alone, whatever else is in the step
// (different slots, prompt lengths and positions; one prefilling while others decode).
TEST(llama_golden, a_sequence_decodes_the_same_alone_and_in_a_batch) {
    const json runc = test::text_golden("runc_greedy.json");
    thread_pool pool(2);
    for (const char* name : {"stories260K-f32.gguf", "stories260K-q8_0.gguf", "stories260K-q4_0.gguf"}) {
        auto l = load(name);
        ASSERT_TRUE(l.model);
        const llama_model& m = *l.model;
        std::vector<std::vector<int32_t>> alone;
        std::vector<std::vector<int32_t>> prompts;
        for (const json& c : runc["cases"]) {
            prompts.push_back(ids_of(c["prompt_ids"]));
            alone.push_back(greedy(pool, m, prompts.back(), 64));
        }
        // All four together in one cache; case i joins at step i (a prefill beside the others' decodes).
        const int n = static_cast<int>(prompts.size());
        kv_cache cache(m.hp, n, 64);
        std::vector<std::vector<int32_t>> together(n);
        std::vector<int> pos(n, 0);
        std::vector<std::vector<int32_t>> feed = prompts;
        for (int step = 0; step < 200; ++step) {
            std::vector<decode_seq> batch;
            std::vector<int> who;
            for (int i = 0; i < n; ++i) {
                if (i > step || pos[i] + static_cast<int>(feed[i].size()) > 64 || together[i].size() >= alone[i].size())
                    continue;
                batch.push_back({.slot = i, .pos0 = pos[i], .tokens = feed[i]});
                who.push_back(i);
            }
            if (batch.empty()) break;
            tensor logits = tensor::zeros(dtype::f32, {static_cast<int64_t>(batch.size()), 512});
            ASSERT_TRUE(llama_decode(pool, m, cache, batch, logits));
            for (size_t b = 0; b < batch.size(); ++b) {
                const int i = who[b];
                const int32_t next = argmax({logits.data<float>() + b * 512, 512});
                together[i].push_back(next);
                pos[i] += static_cast<int>(feed[i].size());
                feed[i].assign(1, next);
            }
        }
        for (int i = 0; i < n; ++i) EXPECT_EQ(together[i], alone[i]) << name << " case " << i;
    }
}

TEST(llama_golden, bad_batches_are_refused) {
    auto l = load("stories260K-f32.gguf");
    ASSERT_TRUE(l.model);
    thread_pool pool(1);
    kv_cache cache(l.model->hp, 2, 16);
    tensor logits = tensor::zeros(dtype::f32, {1, 512});
    const std::vector<int32_t> ok{1}, bad_id{512}, neg{-1}, long_prompt(17, 1);
    struct row { const char* name; decode_seq s; };
    const row rows[] = {
        {"token past the vocabulary", {.slot = 0, .pos0 = 0, .tokens = bad_id}},
        {"negative token", {.slot = 0, .pos0 = 0, .tokens = neg}},
        {"slot out of range", {.slot = 2, .pos0 = 0, .tokens = ok}},
        {"position past the context", {.slot = 0, .pos0 = 16, .tokens = ok}},
        {"prompt longer than the context", {.slot = 0, .pos0 = 0, .tokens = long_prompt}},
        {"no tokens", {.slot = 0, .pos0 = 0, .tokens = {}}},
    };
    for (const row& r : rows)
        EXPECT_EQ(llama_decode(pool, *l.model, cache, {&r.s, 1}, logits).code(), errc::invalid_argument) << r.name;
    const decode_seq good{.slot = 1, .pos0 = 0, .tokens = ok};
    tensor wrong = tensor::zeros(dtype::f32, {2, 512});
    EXPECT_EQ(llama_decode(pool, *l.model, cache, {&good, 1}, wrong).code(), errc::invalid_argument);
    EXPECT_TRUE(llama_decode(pool, *l.model, cache, {&good, 1}, logits));
}

}  // namespace
}  // namespace mm::text
