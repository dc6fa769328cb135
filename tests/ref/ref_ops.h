// Scalar references for the non-matmul ops in common/ops.h, written from the math: nested loops, double
// arithmetic, no pool, no shared code with common/. Inputs are flat row-major spans with their dims spelled
// out; an empty weight / bias span means "none".
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace mm::ref {

// ---- over the last dim of [rows, cols] ----
std::vector<float> softmax(std::span<const float> x, int64_t rows, int64_t cols);
std::vector<float> layer_norm(std::span<const float> x, int64_t rows, int64_t cols, std::span<const float> weight,
                              std::span<const float> bias, float eps);
std::vector<float> rms_norm(std::span<const float> x, int64_t rows, int64_t cols, std::span<const float> weight,
                            float eps);

// x[n, c, hw]: mean and variance over each group of c / n_groups channels; weight / bias per channel.
struct group_norm_dims {
    int64_t n, c, hw;
    int n_groups;
};
std::vector<float> group_norm(std::span<const float> x, group_norm_dims d, std::span<const float> weight,
                              std::span<const float> bias, float eps);

// ---- elementwise ----
std::vector<float> gelu_tanh(std::span<const float> x);
std::vector<float> gelu_erf(std::span<const float> x);
std::vector<float> silu(std::span<const float> x);
// a[rows, cols] op b, where b holds either rows * cols values or one row of cols broadcast over the rows.
std::vector<float> add(std::span<const float> a, std::span<const float> b, int64_t rows, int64_t cols);
std::vector<float> mul(std::span<const float> a, std::span<const float> b, int64_t rows, int64_t cols);
std::vector<float> scale(std::span<const float> x, float s);

// ---- positions and attention ----
// x[n_tokens, n_head, d_head]; pair i of the first n_rot dims turns by pos * freq_scale * base^(-2i / n_rot).
// neox false: pairs (2i, 2i + 1); true: pairs (i, i + n_rot / 2).
struct rope_dims {
    int64_t n_tokens, n_head, d_head, n_rot;
    double freq_base, freq_scale;
    bool neox;
};
std::vector<float> rope(std::span<const float> x, std::span<const int32_t> positions, rope_dims d);

// q[n_tokens, n_head, d_head], k / v[n_head_kv, n_rows, d_head], of which rows 0..n_kv-1 hold keys. Query i
// sits at pos0 + i and sees keys 0..min(pos0 + i, n_kv - 1); head h reads KV head h / (n_head / n_head_kv).
// Returns [n_tokens, n_head, d_head].
struct attention_dims {
    int64_t n_tokens, n_head, n_kv, n_rows, n_head_kv, d_head, pos0;
    double scale;
};
std::vector<float> attention(std::span<const float> q, std::span<const float> k, std::span<const float> v,
                             attention_dims d);

// x[n, c_in, h, w] * w[c_out, c_in, kh, kw] (+ bias[c_out]) -> [n, c_out, oh, ow], zero padding.
struct conv2d_dims {
    int64_t n, c_in, h, w, c_out, kh, kw, stride, pad;
    int64_t oh() const { return (h + 2 * pad - kh) / stride + 1; }
    int64_t ow() const { return (w + 2 * pad - kw) / stride + 1; }
};
std::vector<float> conv2d(std::span<const float> x, std::span<const float> w, std::span<const float> bias,
                          conv2d_dims d);

// ---- layout ----
// y's dim i is x's dim perm[i]; dims and perm have one entry per dim.
std::vector<float> permute(std::span<const float> x, std::span<const int64_t> dims, std::span<const int> perm);
// a and b joined along axis; their dims agree everywhere else.
std::vector<float> concat(std::span<const float> a, std::span<const int64_t> a_dims, std::span<const float> b,
                          std::span<const int64_t> b_dims, int axis);
// x[planes, h, w] -> [planes, h * factor, w * factor].
std::vector<float> upsample_nearest(std::span<const float> x, int64_t planes, int64_t h, int64_t w, int64_t factor);

}  // namespace mm::ref
