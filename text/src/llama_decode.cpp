// llama_decode: the llama block (RMSNorm, RoPE'd grouped-query attention, SwiGLU FFN, residuals) over a
// flattened batch. Activations are f32 throughout; each matrix product is one call over all rows, so a
// prefill reads the weights once and a batch of decoding sequences shares one pass over them.
#include "text/llama_decode.h"

#include <cmath>
#include <cstring>
#include <vector>

#include "common/ops.h"

namespace mm::text {
namespace {

// Every row computed alike whatever the batch holds: a request's numbers never depend on its neighbours.
constexpr ops::matmul_mode k_mode = ops::matmul_mode::rowwise;

}  // namespace

int64_t llama_decode_rows(std::span<const decode_seq> batch) {
    int64_t n = 0;
    for (const auto& s : batch) n += s.all_logits ? static_cast<int64_t>(s.tokens.size()) : 1;
    return n;
}

status llama_decode(thread_pool& pool, const llama_model& m, kv_cache& cache, std::span<const decode_seq> batch,
                    tensor& logits) {
    const llama_hparams& h = m.hp;
    const int64_t e = h.n_embd, kv = h.kv_dim(), d_head = h.d_head();
    int64_t n_tok = 0;
    for (const auto& s : batch) {
        if (s.tokens.empty()) return status(errc::invalid_argument, "a sequence in the batch has no tokens");
        if (s.slot < 0 || s.slot >= cache.n_slots()) return status(errc::invalid_argument, "kv slot out of range");
        if (s.pos0 < 0 || s.pos0 + static_cast<int64_t>(s.tokens.size()) > cache.n_ctx())
            return status(errc::invalid_argument, "positions past the end of the context");
        for (int32_t t : s.tokens)
            if (t < 0 || t >= h.n_vocab)
                return status(errc::invalid_argument, "token id " + std::to_string(t) + " out of range");
        n_tok += static_cast<int64_t>(s.tokens.size());
    }
    if (n_tok == 0) return status(errc::invalid_argument, "empty batch");
    const int64_t n_out = llama_decode_rows(batch);
    if (!(logits.shape() == shape_t{n_out, h.n_vocab}) || logits.type() != dtype::f32)
        return status(errc::invalid_argument, "logits must be f32 [" + std::to_string(n_out) + ", n_vocab]");

    // Embeddings and positions, row by row in batch order.
    tensor x = tensor::zeros(dtype::f32, {n_tok, e});
    std::vector<int32_t> positions;
    positions.reserve(static_cast<size_t>(n_tok));
    {
        int64_t r = 0;
        for (const auto& s : batch)
            for (size_t i = 0; i < s.tokens.size(); ++i, ++r) {
                row_to_f32(m.tok_embd.type(), m.tok_embd.row(s.tokens[i]), x.data<float>() + r * e, e);
                positions.push_back(s.pos0 + static_cast<int32_t>(i));
            }
    }

    tensor xn = tensor::zeros(dtype::f32, {n_tok, e});
    tensor q = tensor::zeros(dtype::f32, {n_tok, e});
    tensor k = tensor::zeros(dtype::f32, {n_tok, kv});
    tensor v = tensor::zeros(dtype::f32, {n_tok, kv});
    tensor att = tensor::zeros(dtype::f32, {n_tok, e});
    tensor proj = tensor::zeros(dtype::f32, {n_tok, e});
    tensor gate = tensor::zeros(dtype::f32, {n_tok, h.n_ff});
    tensor up = tensor::zeros(dtype::f32, {n_tok, h.n_ff});
    const float attn_scale = 1.0f / std::sqrt(static_cast<float>(d_head));

    for (int il = 0; il < h.n_layer; ++il) {
        const llama_layer& L = m.layers[static_cast<size_t>(il)];
        ops::rms_norm(pool, x, &L.attn_norm, h.rms_eps, xn);
        const ops::matmul_out qkv[] = {{&L.wq, &q}, {&L.wk, &k}, {&L.wv, &v}};  // one dispatch for the three
        ops::matmul_shared(pool, xn, qkv, k_mode);
        tensor q3 = q.reshape({n_tok, h.n_head, d_head});
        tensor k3 = k.reshape({n_tok, h.n_head_kv, d_head});
        ops::rope(pool, q3, positions, h.rope, q3);
        ops::rope(pool, k3, positions, h.rope, k3);

        int64_t r = 0;
        for (const auto& s : batch) {
            const int64_t n = static_cast<int64_t>(s.tokens.size());
            float* kc = cache.k(s.slot, il);
            float* vc = cache.v(s.slot, il);
            // The cache is head-major: each new token's row of each KV head goes to that head's run.
            const size_t row = static_cast<size_t>(d_head) * sizeof(float);
            for (int64_t i = 0; i < n; ++i)
                for (int64_t g = 0; g < h.n_head_kv; ++g) {
                    const size_t to = g * cache.head_stride() + static_cast<size_t>(s.pos0 + i) * d_head;
                    const size_t from = static_cast<size_t>((r + i) * kv + g * d_head);
                    std::memcpy(kc + to, k.data<float>() + from, row);
                    std::memcpy(vc + to, v.data<float>() + from, row);
                }
            const int64_t n_kv = s.pos0 + n;
            const tensor qs = tensor::view(dtype::f32, {n, h.n_head, d_head}, q.data<float>() + r * e);
            const tensor ks = tensor::view(dtype::f32, {h.n_head_kv, cache.n_ctx(), d_head}, kc);
            const tensor vs = tensor::view(dtype::f32, {h.n_head_kv, cache.n_ctx(), d_head}, vc);
            tensor ys = tensor::view(dtype::f32, {n, h.n_head, d_head}, att.data<float>() + r * e);
            ops::attention(pool, qs, ks, vs, n_kv, s.pos0, attn_scale, ys);
            r += n;
        }
        ops::matmul(pool, att, L.wo, proj, k_mode);
        ops::add(pool, x, proj, x);

        ops::rms_norm(pool, x, &L.ffn_norm, h.rms_eps, xn);
        const ops::matmul_out gate_up[] = {{&L.w_gate, &gate}, {&L.w_up, &up}};
        ops::matmul_shared(pool, xn, gate_up, k_mode);
        ops::swiglu(pool, gate, up, gate);
        ops::matmul(pool, gate, L.w_down, proj, k_mode);
        ops::add(pool, x, proj, x);
    }

    // Only the rows whose logits were asked for go through the final norm and the classifier.
    tensor last = tensor::zeros(dtype::f32, {n_out, e});
    {
        int64_t r = 0, o = 0;
        for (const auto& s : batch) {
            const int64_t n = static_cast<int64_t>(s.tokens.size());
            const int64_t from = s.all_logits ? r : r + n - 1;
            const int64_t rows = s.all_logits ? n : 1;
            std::memcpy(last.data<float>() + o * e, x.data<float>() + from * e, static_cast<size_t>(rows * e) * sizeof(float));
            o += rows;
            r += n;
        }
    }
    ops::rms_norm(pool, last, &m.output_norm, h.rms_eps, last);
    ops::matmul(pool, last, m.output, logits, k_mode);
    return ok_status();
}

}  // namespace mm::text
