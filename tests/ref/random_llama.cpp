#include "random_llama.h"

#include <cmath>
#include <random>
#include <string>

#include "common/gguf_writer.h"

namespace mm::test {

status write_random_llama(const std::filesystem::path& path, const random_llama_shape& s, const gguf_file& vocab_source) {
    const gguf_value* tokens = vocab_source.find("tokenizer.ggml.tokens");
    if (!tokens || tokens->type != gguf_type::array) return status(errc::invalid_argument, "the vocab source has no tokens");
    const int64_t n_vocab = static_cast<int64_t>(std::get<gguf_array>(tokens->data).items.size());

    gguf_writer w;
    w.set_string("general.architecture", "llama");
    w.set_string("general.name", "random-llama");
    w.set_u32("llama.embedding_length", static_cast<uint32_t>(s.n_embd));
    w.set_u32("llama.block_count", static_cast<uint32_t>(s.n_layer));
    w.set_u32("llama.attention.head_count", static_cast<uint32_t>(s.n_head));
    w.set_u32("llama.attention.head_count_kv", static_cast<uint32_t>(s.n_head_kv));
    w.set_u32("llama.feed_forward_length", static_cast<uint32_t>(s.n_ff));
    w.set_u32("llama.context_length", static_cast<uint32_t>(s.n_ctx));
    w.set_f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
    for (const auto& kv : vocab_source.metadata())
        if (kv.key.starts_with("tokenizer.")) w.set(kv.key, kv.value);

    std::mt19937 rng(s.seed);
    auto matrix = [&](int64_t rows, int64_t cols) {
        std::normal_distribution<float> dist(0.0f, 1.0f / std::sqrt(static_cast<float>(cols)));
        tensor t = tensor::zeros(dtype::f32, {rows, cols});
        for (int64_t i = 0; i < rows * cols; ++i) t.data<float>()[i] = dist(rng);
        return s.weights == dtype::f32 ? std::move(t) : convert(t, s.weights);
    };
    auto norm = [&](int64_t n) {
        tensor t = tensor::zeros(dtype::f32, {n});
        for (int64_t i = 0; i < n; ++i) t.data<float>()[i] = 1.0f;
        return t;
    };
    const int64_t e = s.n_embd, kv = static_cast<int64_t>(s.n_embd) / s.n_head * s.n_head_kv, ff = s.n_ff;
    w.add_tensor("token_embd.weight", matrix(n_vocab, e));
    w.add_tensor("output_norm.weight", norm(e));
    w.add_tensor("output.weight", matrix(n_vocab, e));
    if (s.rope_freqs) w.add_tensor("rope_freqs.weight", norm(e / s.n_head / 2));
    for (int l = 0; l < s.n_layer; ++l) {
        const std::string p = "blk." + std::to_string(l) + ".";
        w.add_tensor(p + "attn_norm.weight", norm(e));
        w.add_tensor(p + "attn_q.weight", matrix(e, e));
        w.add_tensor(p + "attn_k.weight", matrix(kv, e));
        w.add_tensor(p + "attn_v.weight", matrix(kv, e));
        w.add_tensor(p + "attn_output.weight", matrix(e, e));
        w.add_tensor(p + "ffn_norm.weight", norm(e));
        w.add_tensor(p + "ffn_gate.weight", matrix(ff, e));
        w.add_tensor(p + "ffn_up.weight", matrix(ff, e));
        w.add_tensor(p + "ffn_down.weight", matrix(e, ff));
    }
    return w.write(path);
}

}  // namespace mm::test
