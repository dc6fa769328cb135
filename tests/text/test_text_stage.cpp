// text_stage: loading both formats behind the value-only interface, and the memory budget checked before
// anything is allocated.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>

#include "common/kernels.h"
#include "ref/random_llama.h"
#include "text/kv_cache.h"
#include "text/llama_decode.h"
#include "text/llama_model.h"
#include "text/text_stage.h"

namespace mm::text {
namespace {

const std::filesystem::path k_models = std::filesystem::path(MM_SHARED_DIR) / "models" / "text";

TEST(text_stage, loads_gguf_and_llama2c_and_reports_its_memory) {
    thread_pool pool(1);
    int64_t last_done = -1, last_total = 0;
    auto g = text_stage::load({.id = "g", .path = k_models / "stories260K-f32.gguf", .n_parallel = 2, .n_ctx = 64}, pool,
                              [&](int64_t done, int64_t total) {
                                  EXPECT_GT(done, last_done) << "progress only grows";
                                  last_done = done, last_total = total;
                              });
    ASSERT_TRUE(g) << g.error().to_string();
    EXPECT_EQ(last_done, last_total) << "progress ends at its total";
    // The weights paged in (a tied classifier counted once) plus 2 x 64 positions x 5 layers x 2 (K, V) x 32
    // floats of KV cache.
    EXPECT_EQ((*g)->memory_bytes() - 2 * 64 * 5 * 2 * 32 * 4, last_total);
    EXPECT_EQ((*g)->n_ctx(), 64);
    EXPECT_EQ((*g)->format(), chat_format::chatml) << "no template in the file: the fallback";

    auto c = text_stage::load({.id = "c", .path = k_models / "stories260K.bin", .tokenizer = k_models / "tok512.bin"}, pool);
    ASSERT_TRUE(c) << c.error().to_string();
    EXPECT_EQ((*c)->n_ctx(), 512) << "llama2.c's seq_len";
    EXPECT_EQ((*c)->tokenize("Once upon a time", true, false), (*g)->tokenize("Once upon a time", true, false));

    auto no_tok = text_stage::load({.id = "c", .path = k_models / "stories260K.bin"}, pool);
    EXPECT_EQ(no_tok.error().code(), errc::invalid_argument);
    auto mismatch = text_stage::load({.id = "c", .path = k_models / "stories260K.bin",
                                      .tokenizer = k_models / "vocab" / "ggml-vocab-llama-spm.gguf"}, pool);
    EXPECT_FALSE(mismatch);
}

// A file whose RoPE needs per-frequency factors (Llama 3.1+) is refused by name, not run without them.
TEST(text_stage, a_model_with_rope_frequency_factors_is_refused_by_name) {
    auto vocab = gguf_open(k_models / "stories260K-f32.gguf");
    ASSERT_TRUE(vocab);
    const auto path = std::filesystem::temp_directory_path() / ("mm_rope_freqs_" + std::to_string(::getpid()) + ".gguf");
    ASSERT_TRUE(test::write_random_llama(path, {.n_embd = 64, .n_layer = 1, .n_head = 4, .n_head_kv = 2, .n_ff = 96,
                                                .rope_freqs = true}, *vocab));
    thread_pool pool(1);
    auto m = text_stage::load({.id = "r", .path = path}, pool);
    std::filesystem::remove(path);
    ASSERT_FALSE(m);
    EXPECT_EQ(m.error().code(), errc::unsupported);
    EXPECT_NE(m.error().message().find("rope_freqs.weight"), std::string::npos) << m.error().message();
}

// The stage serves q4_0 / q8_0 matrices regrouped (q4_0r / q8_0r) where the CPU has those kernels: plain and
// regrouped weights both decode the model's logits, within the noise of q8 activations (below).
TEST(text_stage, regrouped_weights_decode_the_models_logits) {
    auto vocab = gguf_open(k_models / "stories260K-f32.gguf");
    ASSERT_TRUE(vocab);
    for (auto [plain_t, grouped_t] : {std::pair{dtype::q4_0, dtype::q4_0r}, std::pair{dtype::q8_0, dtype::q8_0r}}) {
        const auto path = std::filesystem::temp_directory_path() /
                          ("mm_regrouped_" + std::to_string(::getpid()) + std::string(dtype_name(plain_t)) + ".gguf");
        ASSERT_TRUE(test::write_random_llama(path, {.n_embd = 512, .n_layer = 2, .n_head = 8, .n_head_kv = 4,
                                                    .n_ff = 1024, .weights = plain_t}, *vocab));
        auto f = gguf_open(path);
        ASSERT_TRUE(f);
        auto plain = llama_load_gguf(*f);
        std::filesystem::remove(path);  // the mapping stays
        ASSERT_TRUE(plain) << plain.error().to_string();
        const auto fast = llama_for_matvec(*plain);
        const bool kernel = (plain_t == dtype::q4_0 ? kernels_best().rows_q4_0r : kernels_best().rows_q8_0r) != nullptr;
        EXPECT_EQ(fast->layers[0].w_down.type(), kernel ? grouped_t : plain_t);
        EXPECT_EQ(fast->output.type(), kernel ? grouped_t : plain_t);
        EXPECT_EQ(fast->tok_embd.type(), plain_t) << "embedding rows are gathered, not multiplied";
        EXPECT_EQ(fast->weight_bytes(), (*plain)->weight_bytes());

        // The reference: the same weights dequantized to f32, so no activation is quantized. Both quantized
        // paths round activations to q8 before every product; where their f32 sums differ in their last bit
        // (the kernels add in different orders) an activation can round to the next step, and the two drift
        // apart by about as much as each is from the reference (measured: 1.8 % of the largest logit for q4_0
        // on AVX2, where plain and regrouped differ by 0.7 %). A regrouping that put a block, scale or row in
        // the wrong place is off by the size of the logits themselves.
        auto f32_model = std::make_shared<llama_model>();
        {
            const llama_model& p = **plain;
            auto same = [](const tensor& t) { return tensor::view(t.type(), t.shape(), t.raw()); };
            f32_model->hp = p.hp;
            f32_model->tok_embd = same(p.tok_embd);
            f32_model->output_norm = same(p.output_norm);
            f32_model->output = to_f32(p.output);
            for (const auto& l : p.layers)
                f32_model->layers.push_back({.attn_norm = same(l.attn_norm), .wq = to_f32(l.wq), .wk = to_f32(l.wk),
                                             .wv = to_f32(l.wv), .wo = to_f32(l.wo), .ffn_norm = same(l.ffn_norm),
                                             .w_gate = to_f32(l.w_gate), .w_up = to_f32(l.w_up), .w_down = to_f32(l.w_down)});
        }
        thread_pool pool(2);
        const llama_model* models[] = {f32_model.get(), plain->get(), fast.get()};
        std::vector<float> out[3];
        for (int v = 0; v < 3; ++v) {
            const llama_model& m = *models[v];
            kv_cache cache(m.hp, 1, 16);
            tensor logits = tensor::zeros(dtype::f32, {1, m.hp.n_vocab});
            const std::vector<int32_t> prompt{1, 17, 300, 42};
            const decode_seq seq{.slot = 0, .pos0 = 0, .tokens = prompt};  // prefill, then one decode step
            ASSERT_TRUE(llama_decode(pool, m, cache, {&seq, 1}, logits));
            const std::vector<int32_t> next{7};
            const decode_seq step{.slot = 0, .pos0 = 4, .tokens = next};
            ASSERT_TRUE(llama_decode(pool, m, cache, {&step, 1}, logits));
            out[v].assign(logits.data<float>(), logits.data<float>() + m.hp.n_vocab);
        }
        float scale = 0;
        for (float l : out[0]) scale = std::max(scale, std::fabs(l));
        for (int v : {1, 2})
            for (size_t i = 0; i < out[0].size(); ++i)
                ASSERT_NEAR(out[v][i], out[0][i], 0.05f * scale) << dtype_name(models[v]->output.type()) << " " << i;
    }
}

TEST(text_stage, a_model_over_the_memory_budget_is_refused_with_the_numbers) {
    thread_pool pool(1);
    auto small = text_stage::load({.id = "g", .path = k_models / "stories260K-f32.gguf", .n_parallel = 64, .n_ctx = 4096,
                                   .memory_budget = 64 << 20},
                                  pool);
    ASSERT_FALSE(small);
    EXPECT_EQ(small.error().code(), errc::resource_exhausted);
    EXPECT_NE(small.error().message().find("64 MiB"), std::string::npos) << small.error().message();
    EXPECT_NE(small.error().message().find("n_parallel"), std::string::npos);
    auto fits = text_stage::load({.id = "g", .path = k_models / "stories260K-f32.gguf", .n_parallel = 2, .n_ctx = 128,
                                  .memory_budget = 64 << 20},
                                 pool);
    EXPECT_TRUE(fits);
}

}  // namespace
}  // namespace mm::text
