// Every non-matmul op in common/ops.h against its scalar reference (tests/ref/ref_ops.h), on shapes with
// sizes of 1, odd and prime, with pools of 1 and 2 threads, and with y aliasing x wherever ops.h allows it.
// Tolerances are written in u = 2^-24 (f32's unit roundoff) where they come from rounding analysis.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "common/ops.h"
#include "ref/compare.h"
#include "ref/ref_ops.h"

namespace mm {
namespace {

using test::max_abs_err;
using test::max_err_over_bound;
using test::max_rel_err;
using test::random_floats;

constexpr double k_u = 0x1p-24;  // f32 unit roundoff: one rounding moves a value by at most u * |value|
constexpr int k_thread_counts[] = {1, 2};
constexpr float k_eps = 1e-5f;  // the norms' epsilon, as the models use it

std::vector<int64_t> dims(const shape_t& s) { return {s.d.begin(), s.d.begin() + s.n}; }

tensor random_tensor(shape_t s, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
    return tensor::from(s, random_floats(s.elements(), seed, lo, hi));
}

std::vector<float> abs_values(std::span<const float> v) {
    std::vector<float> a(v.size());
    for (size_t i = 0; i < v.size(); ++i) a[i] = std::fabs(v[i]);
    return a;
}

std::string label(const std::string& name, const thread_pool& pool) {
    return name + " with " + std::to_string(pool.size()) + " thread(s)";
}

// Runs op(x, y) into a fresh y, then again in place on a copy of x. Where ops.h lets y alias x the two
// must agree bit for bit: an op that re-read x after writing y would not.
template <class Op>
tensor run_checking_in_place(const tensor& x, const std::string& what, Op op) {
    tensor y = tensor::zeros(dtype::f32, x.shape());
    op(x, y);
    tensor z = x.clone();
    op(z, z);
    const auto e = max_abs_err(z.f32(), y.f32());
    EXPECT_EQ(e.value, 0.0) << what << ": in place differs from out of place: " << e << ", index "
                            << e.where(dims(y.shape()));
    return y;
}

// ---- normalization ----

TEST(ops, softmax_matches_reference) {
    struct softmax_case { const char* name; int64_t rows, cols; float range; };
    const softmax_case cases[] = {
        {"one", 1, 1, 1.0f},           {"odd", 7, 13, 8.0f},      {"prime", 13, 263, 8.0f},
        {"vocab-wide", 2, 4099, 8.0f},
        {"logits that overflow exp", 3, 37, 200.0f},  // exp(200) is inf in f32 unless the max is subtracted
    };
    for (int threads : k_thread_counts) {
        thread_pool pool(threads);
        for (const auto& c : cases) {
            const std::string what = label(c.name, pool);
            const tensor x = random_tensor({c.rows, c.cols}, 11, -c.range, c.range);
            const tensor y =
                run_checking_in_place(x, what, [&](const tensor& in, tensor& out) { ops::softmax(pool, in, out); });
            const auto want = ref::softmax(x.f32(), c.rows, c.cols);
            // x - max rounds by half an ulp of |x - max| (< 69 wherever the result is above 1e-30): 3.8e-6
            // relative after exp, plus an ulp each from exp and the 1/sum scaling. Below the 1e-30 floor
            // f32 is subnormal and holds no relative precision. An unnormalized or shifted row is off by O(1).
            const auto e = max_rel_err(y.f32(), want, /*floor=*/1e-30);
            EXPECT_LE(e.value, 1e-5) << what << ": " << e << ", index " << e.where(dims(x.shape()));
        }
    }
}

// x = offset + spread * uniform[-1, 1): the offset rows break a one-pass E[x²] - E[x]² variance, the tiny
// ones (variance ~3e-7 against eps 1e-5) catch eps in the wrong place.
struct norm_case { const char* name; int64_t rows, cols; float offset, spread; bool weight, bias; };
const norm_case k_norm_cases[] = {
    {"one col", 5, 1, 0.0f, 1.0f, true, true},           {"odd, no affine", 7, 13, 0.0f, 1.0f, false, false},
    {"prime, weight only", 3, 263, 0.0f, 1.0f, true, false}, {"llama width", 2, 4096, 0.0f, 1.0f, true, true},
    {"offset rows", 4, 129, 100.0f, 1.0f, true, true},     {"tiny variance", 3, 64, 0.0f, 1e-3f, true, true},
};

tensor norm_input(const norm_case& c) {
    auto v = random_floats(c.rows * c.cols, 21, -c.spread, c.spread);
    for (auto& x : v) x += c.offset;
    return tensor::from({c.rows, c.cols}, v);
}

// Statistics kept in double leave one f32 rounding per output (u relative). 1e-6 (~16 u, relative to
// max(|y|, 1)) allows a few more roundings in the affine step but not f32 statistics: a mean rounded to
// f32 at offset 100 is off by up to ulp(100) / 2 = 3.8e-6, i.e. ~7e-6 once divided by the std of 0.58.
constexpr double k_norm_tol = 1e-6;

TEST(ops, layer_norm_matches_reference) {
    for (int threads : k_thread_counts) {
        thread_pool pool(threads);
        for (const auto& c : k_norm_cases) {
            const std::string what = label(c.name, pool);
            const tensor x = norm_input(c);
            const tensor w = random_tensor({c.cols}, 22, 0.5f, 1.5f), b = random_tensor({c.cols}, 23);
            const tensor* wp = c.weight ? &w : nullptr;
            const tensor* bp = c.bias ? &b : nullptr;
            const tensor y = run_checking_in_place(x, what, [&](const tensor& in, tensor& out) {
                ops::layer_norm(pool, in, wp, bp, k_eps, out);
            });
            const auto want = ref::layer_norm(x.f32(), c.rows, c.cols, c.weight ? w.f32() : std::span<const float>{},
                                              c.bias ? b.f32() : std::span<const float>{}, k_eps);
            const auto e = max_rel_err(y.f32(), want, /*floor=*/1.0);
            EXPECT_LE(e.value, k_norm_tol) << what << ": " << e << ", index " << e.where(dims(x.shape()));
        }
    }
}

TEST(ops, rms_norm_matches_reference) {
    for (int threads : k_thread_counts) {
        thread_pool pool(threads);
        for (const auto& c : k_norm_cases) {
            const std::string what = label(c.name, pool);
            const tensor x = norm_input(c);
            const tensor w = random_tensor({c.cols}, 24, 0.5f, 1.5f);
            const tensor* wp = c.weight ? &w : nullptr;
            const tensor y = run_checking_in_place(x, what, [&](const tensor& in, tensor& out) {
                ops::rms_norm(pool, in, wp, k_eps, out);
            });
            const auto want =
                ref::rms_norm(x.f32(), c.rows, c.cols, c.weight ? w.f32() : std::span<const float>{}, k_eps);
            const auto e = max_rel_err(y.f32(), want, /*floor=*/1.0);  // same reasoning as k_norm_tol
            EXPECT_LE(e.value, k_norm_tol) << what << ": " << e << ", index " << e.where(dims(x.shape()));
        }
    }
}

TEST(ops, group_norm_matches_reference) {
    struct group_norm_case { const char* name; int64_t n, c, h, w; int n_groups; bool affine; float offset; };
    const group_norm_case cases[] = {  // n == 0: x is [c, h, w], otherwise [n, c, h, w]
        {"unbatched, one group", 0, 4, 5, 3, 1, true, 0.0f},     {"batched, two groups", 2, 6, 7, 7, 2, true, 0.0f},
        {"unet's 32 groups", 1, 64, 9, 13, 32, true, 0.0f},      {"group per channel", 2, 5, 3, 1, 5, true, 0.0f},
        {"no affine, offset", 1, 12, 13, 11, 3, false, 50.0f},   {"one pixel", 1, 6, 1, 1, 3, true, 0.0f},
    };
    for (int threads : k_thread_counts) {
        thread_pool pool(threads);
        for (const auto& c : cases) {
            const std::string what = label(c.name, pool);
            const shape_t s = c.n ? shape_t{c.n, c.c, c.h, c.w} : shape_t{c.c, c.h, c.w};
            auto xv = random_floats(s.elements(), 31);
            for (auto& v : xv) v += c.offset;
            const tensor x = tensor::from(s, xv);
            const tensor w = random_tensor({c.c}, 32, 0.5f, 1.5f), b = random_tensor({c.c}, 33);
            const tensor* wp = c.affine ? &w : nullptr;
            const tensor* bp = c.affine ? &b : nullptr;
            const tensor y = run_checking_in_place(x, what, [&](const tensor& in, tensor& out) {
                ops::group_norm(pool, in, c.n_groups, wp, bp, k_eps, out);
            });
            const ref::group_norm_dims d{.n = c.n ? c.n : 1, .c = c.c, .hw = c.h * c.w, .n_groups = c.n_groups};
            const auto want = ref::group_norm(x.f32(), d, c.affine ? w.f32() : std::span<const float>{},
                                              c.affine ? b.f32() : std::span<const float>{}, k_eps);
            const auto e = max_rel_err(y.f32(), want, /*floor=*/1.0);  // same reasoning as k_norm_tol
            EXPECT_LE(e.value, k_norm_tol) << what << ": " << e << ", index " << e.where(dims(s));
        }
    }
}

// ---- activations ----

TEST(ops, activations_match_reference) {
    struct activation { const char* name; void (*op)(thread_pool&, const tensor&, tensor&);
                        std::vector<float> (*ref)(std::span<const float>); };
    const activation activations[] = {
        {"gelu_tanh", ops::gelu_tanh, ref::gelu_tanh}, {"gelu_erf", ops::gelu_erf, ref::gelu_erf},
        {"silu", ops::silu, ref::silu},
    };
    struct shape_case { const char* name; shape_t shape; };
    const shape_case shapes[] = {{"one", {1}}, {"odd", {7, 13}}, {"prime", {263}}, {"rows", {37, 129, 3}}};
    for (int threads : k_thread_counts) {
        thread_pool pool(threads);
        for (const auto& a : activations)
            for (const auto& s : shapes) {
                const std::string what = label(std::string(a.name) + " " + s.name, pool);
                const tensor x = random_tensor(s.shape, 41, -6.0f, 6.0f);
                const tensor y =
                    run_checking_in_place(x, what, [&](const tensor& in, tensor& out) { a.op(pool, in, out); });
                const auto want = a.ref(x.f32());
                // f32 tanh / erf / exp are within an ulp or two; the worst case is 1 + tanh (or erf) cancelling
                // near -1 for x down to -6, which costs ulp(1) * |x| / 2 = 3.6e-7 absolute. 2e-6 relative to
                // max(|y|, 1) is 5x that; swapping the tanh and erf forms differs by up to ~5e-4.
                const auto e = max_rel_err(y.f32(), want, /*floor=*/1.0);
                EXPECT_LE(e.value, 2e-6) << what << ": " << e << ", index " << e.where(dims(s.shape));
            }
    }
}

// SwiGLU: silu(gate) * up in one pass, as the llama FFN takes it, in place over gate as decode runs it.
TEST(ops, swiglu_matches_reference) {
    const shape_t shapes[] = {{1}, {7, 13}, {263}, {2, 5632}};
    for (int threads : k_thread_counts) {
        thread_pool pool(threads);
        for (const auto& s : shapes) {
            const std::string what = label("swiglu " + std::to_string(s.elements()), pool);
            const tensor gate = random_tensor(s, 43, -6.0f, 6.0f), up = random_tensor(s, 44, -2.0f, 2.0f);
            tensor y = tensor::zeros(dtype::f32, s);
            ops::swiglu(pool, gate, up, y);
            tensor in_place = tensor::from(s, gate.f32());
            ops::swiglu(pool, in_place, up, in_place);
            const auto silu = ref::silu(gate.f32());
            std::vector<float> want(silu.size());
            for (size_t i = 0; i < want.size(); ++i) want[i] = static_cast<float>(static_cast<double>(silu[i]) * up.f32()[i]);
            // SiLU's own bound (activations_match_reference) scaled by |up| <= 2, plus the product's rounding.
            const auto e = max_rel_err(y.f32(), want, /*floor=*/1.0);
            EXPECT_LE(e.value, 5e-6) << what << ": " << e << ", index " << e.where(dims(s));
            EXPECT_EQ(max_abs_err(in_place.f32(), y.f32()).value, 0.0) << what << " in place";
        }
    }
}

// ---- elementwise ----

TEST(ops, add_mul_scale_match_reference) {
    struct binary_case { const char* name; shape_t a; bool broadcast; };
    const binary_case cases[] = {
        {"one", {1}, false},         {"odd rows, broadcast", {7, 13}, true},     {"3d", {3, 5, 37}, false},
        {"4d, broadcast", {2, 3, 7, 64}, true}, {"prime", {129, 263}, false},     {"one row, broadcast", {1, 37}, true},
    };
    for (int threads : k_thread_counts) {
        thread_pool pool(threads);
        for (const auto& c : cases) {
            const tensor a = random_tensor(c.a, 51);
            const tensor b = random_tensor(c.broadcast ? shape_t{c.a.last()} : c.a, 52);
            const int64_t rows = c.a.rows(), cols = c.a.last();
            // Each output is one correctly rounded f32 operation. The reference's double sum or product of two
            // f32 values is exact (their exponents are close; 24 + 24 bits fit in 53), so rounding it to f32
            // gives the same bits: tolerance 0. A wrong broadcast index is off by O(1).
            const std::string add_what = label(std::string("add ") + c.name, pool);
            const tensor sum = run_checking_in_place(
                a, add_what, [&](const tensor& in, tensor& out) { ops::add(pool, in, b, out); });
            const auto e_add = max_abs_err(sum.f32(), ref::add(a.f32(), b.f32(), rows, cols));
            EXPECT_EQ(e_add.value, 0.0) << add_what << ": " << e_add << ", index " << e_add.where(dims(c.a));

            const std::string mul_what = label(std::string("mul ") + c.name, pool);
            const tensor prod = run_checking_in_place(
                a, mul_what, [&](const tensor& in, tensor& out) { ops::mul(pool, in, b, out); });
            const auto e_mul = max_abs_err(prod.f32(), ref::mul(a.f32(), b.f32(), rows, cols));
            EXPECT_EQ(e_mul.value, 0.0) << mul_what << ": " << e_mul << ", index " << e_mul.where(dims(c.a));

            const std::string scale_what = label(std::string("scale ") + c.name, pool);
            const tensor scaled = run_checking_in_place(
                a, scale_what, [&](const tensor& in, tensor& out) { ops::scale(pool, in, -1.7f, out); });
            const auto e_scale = max_abs_err(scaled.f32(), ref::scale(a.f32(), -1.7f));
            EXPECT_EQ(e_scale.value, 0.0) << scale_what << ": " << e_scale << ", index " << e_scale.where(dims(c.a));
        }
    }
}

// ---- positions and attention ----

TEST(ops, rope_matches_reference) {
    using ops::rope_mode;
    struct rope_case { const char* name; int64_t n_tokens, n_head, d_head; int n_rot; rope_mode mode; int32_t pos0;
                       float base, freq_scale; };
    const rope_case cases[] = {  // token t sits at pos0 + t
        {"one pair at 0", 1, 1, 2, 0, rope_mode::normal, 0, 1e4f, 1.0f},
        {"normal decode", 1, 7, 64, 0, rope_mode::normal, 263, 1e4f, 1.0f},
        {"normal partial, odd head", 5, 3, 13, 8, rope_mode::normal, 17, 1e4f, 1.0f},
        {"normal linear scaling", 7, 2, 64, 64, rope_mode::normal, 100, 1e4f, 0.25f},
        {"neox partial", 13, 4, 64, 32, rope_mode::neox, 0, 1e4f, 1.0f},
        {"neox partial, odd head", 3, 2, 37, 10, rope_mode::neox, 5, 1e4f, 1.0f},
        {"neox prefill, big base", 37, 2, 128, 0, rope_mode::neox, 0, 5e5f, 1.0f},
        {"neox long position", 2, 3, 128, 96, rope_mode::neox, 4090, 1e4f, 1.0f},
    };
    for (int threads : k_thread_counts) {
        thread_pool pool(threads);
        for (const auto& c : cases) {
            const std::string what = label(c.name, pool);
            const tensor x = random_tensor({c.n_tokens, c.n_head, c.d_head}, 61);
            std::vector<int32_t> pos(static_cast<size_t>(c.n_tokens));
            for (size_t t = 0; t < pos.size(); ++t) pos[t] = c.pos0 + static_cast<int32_t>(t);
            const ops::rope_params p{.n_rot = c.n_rot, .freq_base = c.base, .freq_scale = c.freq_scale, .mode = c.mode};
            const tensor y = run_checking_in_place(
                x, what, [&](const tensor& in, tensor& out) { ops::rope(pool, in, pos, p, out); });
            const int64_t n_rot = c.n_rot ? c.n_rot : c.d_head, half = n_rot / 2;
            const auto want = ref::rope(x.f32(), pos, {.n_tokens = c.n_tokens, .n_head = c.n_head, .d_head = c.d_head,
                                                       .n_rot = n_rot, .freq_base = c.base, .freq_scale = c.freq_scale,
                                                       .neox = c.mode == rope_mode::neox});
            // Bound per element. theta_i is formed as llama.cpp forms it: base^(-2/n_rot) (powf, < 1 ulp = 2u)
            // raised by i f32 multiplies (u each), times freq_scale (u): off by at most theta_i * (3i + 1) u.
            // A rotated pair then moves by that angle error times |x0| + |x1| <= 2, plus an ulp each from
            // cos / sin and three roundings in x0 c - x1 s: 2 delta_i + 8u. Dims past n_rot pass through
            // exactly (bound 0). At position 4090 that allows 1.6e-3 on pair 1; a wrong pairing is O(1).
            std::vector<double> bound(want.size(), 0.0);
            const double max_pos = c.pos0 + c.n_tokens - 1;
            for (size_t r = 0; r < want.size() / static_cast<size_t>(c.d_head); ++r)
                for (int64_t d = 0; d < n_rot; ++d) {
                    const int64_t i = c.mode == rope_mode::neox ? d % half : d / 2;
                    const double theta =
                        max_pos * c.freq_scale * std::pow(c.base, -2.0 * static_cast<double>(i) / n_rot);
                    bound[r * c.d_head + d] = 2 * theta * (3 * i + 1) * k_u + 8 * k_u;
                }
            const auto e = max_err_over_bound(y.f32(), want, bound);
            EXPECT_LE(e.value, 1.0) << what << ": error / bound " << e << ", index " << e.where(dims(x.shape()));
        }
    }
}

TEST(ops, attention_matches_reference) {
    struct attention_case { const char* name; int64_t n_tokens, n_head, n_head_kv, d_head, n_kv, pos0; };
    const attention_case cases[] = {
        {"one of everything", 1, 1, 1, 1, 1, 0},
        {"decode over a filled cache", 1, 4, 4, 64, 37, 36},
        {"decode, gqa", 1, 8, 2, 64, 263, 262},
        {"prefill", 13, 4, 4, 32, 13, 0},
        {"prefill, gqa", 37, 6, 3, 16, 37, 0},
        {"chunk after a filled cache, one kv head", 7, 4, 1, 128, 136, 129},
        {"odd head size", 5, 3, 1, 7, 11, 6},
        {"mask hides later cache rows", 3, 2, 1, 16, 64, 10},  // the cache holds rows past pos0 + i
        {"non-causal: pos0 at the last key", 5, 2, 2, 8, 9, 8},  // every query sees all n_kv keys
    };
    for (int threads : k_thread_counts) {
        thread_pool pool(threads);
        for (const auto& c : cases) {
            const std::string what = label(c.name, pool);
            const tensor q = random_tensor({c.n_tokens, c.n_head, c.d_head}, 71);
            // The cache has rows past n_kv, random like the rest: a kernel that reads them, or walks a head
            // with the wrong stride, gets a wrong answer.
            const int64_t n_rows = c.n_kv + 5;
            const tensor k = random_tensor({c.n_head_kv, n_rows, c.d_head}, 72);
            const tensor v = random_tensor({c.n_head_kv, n_rows, c.d_head}, 73);
            const float scale = 1.0f / std::sqrt(static_cast<float>(c.d_head));
            tensor y = tensor::zeros(dtype::f32, q.shape());
            ops::attention(pool, q, k, v, c.n_kv, c.pos0, scale, y);
            const ref::attention_dims d{.n_tokens = c.n_tokens, .n_head = c.n_head, .n_kv = c.n_kv, .n_rows = n_rows,
                                        .n_head_kv = c.n_head_kv, .d_head = c.d_head, .pos0 = c.pos0, .scale = scale};
            const auto want = ref::attention(q.f32(), k.f32(), v.f32(), d);
            // Inputs in [-1, 1]: scores are O(1) d_head-term f32 dots (rounding ~ sqrt(128) u ~ 1e-6), the output
            // an n_kv-term weighted mean of |v| <= 1 (~ sqrt(263) u ~ 1e-6). 1e-5 is 10x that. One key too many or
            // too few moves an output by ~|v| / n_kv >= 4e-3, and the wrong KV head by ~0.05.
            const auto e = max_abs_err(y.f32(), want);
            EXPECT_LE(e.value, 1e-5) << what << ": " << e << ", index " << e.where(dims(y.shape()));
        }
    }
}

// ---- conv2d ----

TEST(ops, conv2d_matches_reference) {
    struct conv_case { const char* name; int64_t n, c_in, h, w, c_out, k; int stride, pad; bool bias; };
    const conv_case cases[] = {
        {"one pixel", 1, 1, 1, 1, 1, 1, 1, 0, true},
        {"1x1, no gather", 1, 7, 5, 13, 3, 1, 1, 0, true},
        {"1x1, stride 2", 2, 4, 9, 7, 5, 1, 2, 0, false},
        {"1x1, padded", 1, 3, 5, 5, 2, 1, 1, 1, true},
        {"3x3 same", 1, 3, 13, 11, 8, 3, 1, 1, true},
        {"3x3 valid, batched", 2, 5, 7, 9, 6, 3, 1, 0, false},
        {"3x3 stride 2, padded", 1, 8, 37, 29, 13, 3, 2, 1, true},
        {"3x3 stride 2, unpadded", 1, 4, 13, 13, 7, 3, 2, 0, true},
        {"several tiles", 1, 64, 33, 31, 37, 3, 1, 1, true},  // k = 576: ~455-pixel tiles over 1023 outputs
    };
    for (int threads : k_thread_counts) {
        thread_pool pool(threads);
        for (const auto& c : cases) {
            const std::string what = label(c.name, pool);
            const ref::conv2d_dims d{.n = c.n, .c_in = c.c_in, .h = c.h, .w = c.w, .c_out = c.c_out,
                                     .kh = c.k, .kw = c.k, .stride = c.stride, .pad = c.pad};
            const tensor x = random_tensor({c.n, c.c_in, c.h, c.w}, 81);
            const tensor w = random_tensor({c.c_out, c.c_in, c.k, c.k}, 82);
            const tensor b = random_tensor({c.c_out}, 83);
            tensor y = tensor::zeros(dtype::f32, {c.n, c.c_out, d.oh(), d.ow()});
            ops::conv2d(pool, x, w, c.bias ? &b : nullptr, y, {.stride = c.stride, .pad = c.pad});
            const auto bias = c.bias ? b.f32() : std::span<const float>{};
            const auto want = ref::conv2d(x.f32(), w.f32(), bias, d);
            // Rigorous per output, whatever summation order sgemm picks: a K-term f32 dot plus the bias add is
            // within ~(K + 1) u * sum |terms|, and the reference's own rounding to f32 adds u * |y|; K + 4 covers
            // both and the bound's second-order terms. sum |terms| is the same convolution of |x|, |w| and
            // |bias|. A misplaced tap or padding row is off by many orders more.
            const auto mag = ref::conv2d(abs_values(x.f32()), abs_values(w.f32()), abs_values(bias), d);
            const double k_terms = static_cast<double>(c.c_in * c.k * c.k);
            std::vector<double> bound(mag.size());
            for (size_t i = 0; i < mag.size(); ++i) bound[i] = (k_terms + 4) * k_u * mag[i];
            const auto e = max_err_over_bound(y.f32(), want, bound);
            EXPECT_LE(e.value, 1.0) << what << ": error / bound " << e << ", index " << e.where(dims(y.shape()));
        }
    }
}

// ---- layout: pure copies, so every check is exact ----

TEST(ops, permute_matches_reference) {
    struct permute_case { const char* name; shape_t x; std::array<int, 4> perm; };
    const permute_case cases[] = {
        {"1d", {37}, {0}},                          {"2d transpose", {7, 13}, {1, 0}},
        {"2d identity", {1, 263}, {0, 1}},          {"3d swap heads and tokens", {13, 4, 37}, {1, 0, 2}},
        {"3d cycle", {5, 7, 3}, {2, 0, 1}},         {"4d nchw to nhwc", {2, 3, 5, 7}, {0, 2, 3, 1}},
        {"4d reversed", {3, 5, 2, 7}, {3, 2, 1, 0}},
    };
    for (int threads : k_thread_counts) {
        thread_pool pool(threads);
        for (const auto& c : cases) {
            const std::string what = label(c.name, pool);
            const tensor x = random_tensor(c.x, 91);
            shape_t ys = c.x;
            for (int i = 0; i < c.x.n; ++i) ys.d[i] = c.x[c.perm[i]];
            tensor y = tensor::zeros(dtype::f32, ys);
            ops::permute(pool, x, c.perm, y);
            const auto xd = dims(c.x);
            const auto want = ref::permute(x.f32(), xd, std::span<const int>(c.perm.data(), xd.size()));
            const auto e = max_abs_err(y.f32(), want);
            EXPECT_EQ(e.value, 0.0) << what << ": " << e << ", index " << e.where(dims(ys));
        }
    }
}

TEST(ops, concat_matches_reference) {
    struct concat_case { const char* name; shape_t a, b; int axis; };
    const concat_case cases[] = {
        {"1d", {7}, {13}, 0},                              {"2d rows", {3, 5}, {4, 5}, 0},
        {"2d cols", {3, 5}, {3, 2}, 1},                    {"3d axis 0", {2, 3, 7}, {1, 3, 7}, 0},
        {"3d axis 1", {2, 3, 7}, {2, 5, 7}, 1},            {"3d axis 2", {2, 3, 7}, {2, 3, 1}, 2},
        {"4d channels (unet skip)", {2, 3, 5, 7}, {2, 4, 5, 7}, 1}, {"4d axis 0", {1, 3, 5, 7}, {2, 3, 5, 7}, 0},
        {"4d axis 2", {2, 3, 5, 7}, {2, 3, 2, 7}, 2},      {"4d axis 3", {2, 3, 5, 7}, {2, 3, 5, 13}, 3},
    };
    for (int threads : k_thread_counts) {
        thread_pool pool(threads);
        for (const auto& c : cases) {
            const std::string what = label(c.name, pool);
            const tensor a = random_tensor(c.a, 101), b = random_tensor(c.b, 102);
            shape_t ys = c.a;
            ys.d[c.axis] += c.b[c.axis];
            tensor y = tensor::zeros(dtype::f32, ys);
            ops::concat(pool, a, b, c.axis, y);
            const auto want = ref::concat(a.f32(), dims(c.a), b.f32(), dims(c.b), c.axis);
            const auto e = max_abs_err(y.f32(), want);
            EXPECT_EQ(e.value, 0.0) << what << ": " << e << ", index " << e.where(dims(ys));
        }
    }
}

TEST(ops, upsample_nearest_matches_reference) {
    struct upsample_case { const char* name; shape_t x; int factor; };
    const upsample_case cases[] = {
        {"one pixel", {1, 1}, 2}, {"3d", {3, 5, 7}, 2}, {"4d, factor 3", {2, 3, 13, 7}, 3}, {"factor 1", {4, 5}, 1},
    };
    for (int threads : k_thread_counts) {
        thread_pool pool(threads);
        for (const auto& c : cases) {
            const std::string what = label(c.name, pool);
            const tensor x = random_tensor(c.x, 111);
            shape_t ys = c.x;
            ys.d[ys.n - 2] *= c.factor;
            ys.d[ys.n - 1] *= c.factor;
            tensor y = tensor::zeros(dtype::f32, ys);
            ops::upsample_nearest(pool, x, c.factor, y);
            const int64_t h = c.x[c.x.n - 2], w = c.x[c.x.n - 1];
            const auto want = ref::upsample_nearest(x.f32(), x.elements() / (h * w), h, w, c.factor);
            const auto e = max_abs_err(y.f32(), want);
            EXPECT_EQ(e.value, 0.0) << what << ": " << e << ", index " << e.where(dims(ys));
        }
    }
}

// ---- shape bugs abort ----

TEST(ops_death, shape_mismatches_abort) {
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    struct death_case { const char* name; std::function<void(thread_pool&)> call; };
    const death_case cases[] = {
        {"add: broadcast row of the wrong length", [](thread_pool& pool) {
             tensor a = tensor::zeros(dtype::f32, {3, 5}), b = tensor::zeros(dtype::f32, {4});
             ops::add(pool, a, b, a);
         }},
        {"softmax: output shape", [](thread_pool& pool) {
             tensor x = tensor::zeros(dtype::f32, {3, 5}), y = tensor::zeros(dtype::f32, {5, 3});
             ops::softmax(pool, x, y);
         }},
        {"group_norm: groups do not divide channels", [](thread_pool& pool) {
             tensor x = tensor::zeros(dtype::f32, {6, 2, 2});
             ops::group_norm(pool, x, 4, nullptr, nullptr, k_eps, x);
         }},
        {"rope: odd n_rot", [](thread_pool& pool) {
             tensor x = tensor::zeros(dtype::f32, {1, 1, 8});
             const int32_t pos[] = {0};
             ops::rope(pool, x, pos, {.n_rot = 3}, x);
         }},
        {"attention: heads not a multiple of kv heads", [](thread_pool& pool) {
             tensor q = tensor::zeros(dtype::f32, {1, 6, 8}), k = tensor::zeros(dtype::f32, {4, 4, 8});
             tensor y = tensor::zeros(dtype::f32, {1, 6, 8});
             ops::attention(pool, q, k, k, 4, 0, 1.0f, y);
         }},
        {"conv2d: input channels", [](thread_pool& pool) {
             tensor x = tensor::zeros(dtype::f32, {1, 3, 5, 5}), w = tensor::zeros(dtype::f32, {2, 4, 3, 3});
             tensor y = tensor::zeros(dtype::f32, {1, 2, 3, 3});
             ops::conv2d(pool, x, w, nullptr, y);
         }},
        {"permute: repeated axis", [](thread_pool& pool) {
             tensor x = tensor::zeros(dtype::f32, {3, 3}), y = tensor::zeros(dtype::f32, {3, 3});
             ops::permute(pool, x, {0, 0}, y);
         }},
        {"concat: off-axis dims differ", [](thread_pool& pool) {
             tensor a = tensor::zeros(dtype::f32, {2, 3}), b = tensor::zeros(dtype::f32, {3, 3});
             tensor y = tensor::zeros(dtype::f32, {2, 6});
             ops::concat(pool, a, b, 1, y);
         }},
    };
    for (const auto& c : cases) {
        EXPECT_DEATH(
            {
                thread_pool pool(1);
                c.call(pool);
            },
            "MM_ASSERT failed")
            << c.name;
    }
}

}  // namespace
}  // namespace mm
