// Ops on the shared runtime. Activations are f32; matmul weights may be any dtype.
// Every op splits its work by rows over the pool; the caller pre-shapes the output. A shape mismatch
// is a bug in model code and aborts (MM_ASSERT); ops never see user input directly.
// Each op has a scalar double-accumulating reference in tests/ref/ that the tests compare against.
#pragma once

#include <array>
#include <cstdint>
#include <span>

#include "common/tensor.h"
#include "common/thread_pool.h"

namespace mm::ops {

// ---- linear algebra ----
// y[m, n] = x[m, k] · w[n, k]ᵀ. w is row-major weights as GGUF stores them (f32 via cblas_sgemm;
// f16 / bf16 / q8_0 / q4_0 through our kernels, activations quantized to q8_0 on the fly for the q types).
// mode rowwise computes every row of y the same way whatever x's row count, through the dot kernels: q8_0 / q4_0
// with activations quantized per 32-block (f16-rounded scale) and f16 / bf16 with activations rounded to the
// weight's type, as llama.cpp's CPU path does. A row's result then never depends on the rows beside it, which
// the text stage needs so that a request decodes the same alone or batched. fastest may widen weight tiles to
// f32 and use sgemm for many rows. f32 weights always go to sgemm.
enum class matmul_mode { fastest, rowwise };
void matmul(thread_pool& pool, const tensor& x, const tensor& w, tensor& y, matmul_mode mode = matmul_mode::fastest);
// ys[i] = x · ws[i]ᵀ for weights that share their input (a layer's q / k / v, gate / up): what matmul gives
// for each, with x quantized once and all the weights' rows split across the pool in one dispatch.
struct matmul_out {
    const tensor* w;
    tensor* y;
};
void matmul_shared(thread_pool& pool, const tensor& x, std::span<const matmul_out> outs,
                   matmul_mode mode = matmul_mode::fastest);
// y[n] = w[n, k] · x[k]: matmul with one row.
void matvec(thread_pool& pool, const tensor& w, const tensor& x, tensor& y);

// y[n, c_out, oh, ow] = conv2d(x[n, c_in, h, w], w[c_out, c_in, kh, kw]) + bias[c_out] (bias may be null).
// im2col + sgemm. oh = (h + 2 * pad - kh) / stride + 1.
struct conv2d_params {
    int stride = 1;
    int pad = 0;
};
void conv2d(thread_pool& pool, const tensor& x, const tensor& w, const tensor* bias, tensor& y, conv2d_params p = {});

// ---- normalization and activations (over the last dim; y may alias x) ----
void softmax(thread_pool& pool, const tensor& x, tensor& y);
void layer_norm(thread_pool& pool, const tensor& x, const tensor* weight, const tensor* bias, float eps, tensor& y);
void rms_norm(thread_pool& pool, const tensor& x, const tensor* weight, float eps, tensor& y);
// x[n, c, h, w] (or [c, h, w]): statistics per group of c / n_groups channels; weight / bias per channel.
void group_norm(thread_pool& pool, const tensor& x, int n_groups, const tensor* weight, const tensor* bias, float eps,
                tensor& y);
void gelu_tanh(thread_pool& pool, const tensor& x, tensor& y);
void gelu_erf(thread_pool& pool, const tensor& x, tensor& y);
void silu(thread_pool& pool, const tensor& x, tensor& y);
// y = silu(gate) * up, the llama FFN's gate, in one pass; y may alias gate or up.
void swiglu(thread_pool& pool, const tensor& gate, const tensor& up, tensor& y);

// ---- positions and attention ----
enum class rope_mode { normal, neox };  // normal: rotate adjacent pairs (2i, 2i+1); neox: (i, i + n_rot / 2)
struct rope_params {
    int n_rot = 0;             // dims rotated at the front of each head; 0: all of d_head
    float freq_base = 10000.0f;
    float freq_scale = 1.0f;   // linear position scaling: theta = pos * freq_scale * base^(-2i / n_rot)
    rope_mode mode = rope_mode::normal;
};
// x[n_tokens, n_head, d_head]; positions[n_tokens]. y may alias x.
void rope(thread_pool& pool, const tensor& x, std::span<const int32_t> positions, rope_params p, tensor& y);

// Scaled-dot-product attention with a causal mask over a KV cache.
// q[n_tokens, n_head, d_head]; k, v[n_head_kv, n_rows, d_head], head-major, so one KV head's keys are
// contiguous; rows 0..n_kv-1 (n_kv <= n_rows: the cache's filled length) are read, the rest never.
// Query token i sits at position pos0 + i and sees keys 0..min(pos0 + i, n_kv - 1), so pos0 >= n_kv - 1
// lets every query see every key (encoders, cross-attention).
// n_head must be a multiple of n_head_kv (grouped-query heads share a KV head). y[n_tokens, n_head, d_head].
void attention(thread_pool& pool, const tensor& q, const tensor& k, const tensor& v, int64_t n_kv, int64_t pos0,
               float scale, tensor& y);

// ---- elementwise and layout ----
// b is either the same shape as a, or broadcast over a's rows (b has a's last dim as its only elements).
void add(thread_pool& pool, const tensor& a, const tensor& b, tensor& y);
void mul(thread_pool& pool, const tensor& a, const tensor& b, tensor& y);
void scale(thread_pool& pool, const tensor& x, float s, tensor& y);
// y's dim i is x's dim perm[i] (as torch.permute); perm has x.n_dims() entries.
void permute(thread_pool& pool, const tensor& x, std::array<int, 4> perm, tensor& y);
// Joins a and b along axis; every other dim must match.
void concat(thread_pool& pool, const tensor& a, const tensor& b, int axis, tensor& y);
// x[..., h, w] -> y[..., h * factor, w * factor], each pixel repeated.
void upsample_nearest(thread_pool& pool, const tensor& x, int factor, tensor& y);

}  // namespace mm::ops
