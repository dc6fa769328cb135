// matmul / matvec through the pool, every weight dtype and both paths (dot kernels for few rows, widened
// tiles + sgemm for many), against the double reference on the weights the kernel actually holds.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "common/kernels.h"
#include "common/ops.h"
#include "common/quantize.h"
#include "ref/compare.h"
#include "ref/ref_matmul.h"

namespace mm {
namespace {

struct matmul_case { const char* name; dtype type; int64_t m, k, n; };
const matmul_case k_cases[] = {
    {"f32 vector", dtype::f32, 1, 7, 13},        {"f32 prime", dtype::f32, 37, 263, 129},
    {"f32 square", dtype::f32, 64, 64, 64},      {"f16 decode", dtype::f16, 1, 172, 64},
    {"f16 prefill", dtype::f16, 17, 37, 131},    {"bf16 decode", dtype::bf16, 3, 129, 7},
    {"bf16 prefill", dtype::bf16, 33, 64, 200},  {"q8_0 decode", dtype::q8_0, 1, 64, 512},
    {"q8_0 few rows", dtype::q8_0, 5, 416, 37},  {"q8_0 prefill", dtype::q8_0, 19, 96, 129},
    {"q4_0 decode", dtype::q4_0, 1, 4096, 67},   {"q4_0 few rows", dtype::q4_0, 2, 160, 263},
    {"q4_0 prefill", dtype::q4_0, 128, 64, 172},
    {"q4_0r decode", dtype::q4_0r, 1, 1024, 68}, {"q4_0r few rows", dtype::q4_0r, 3, 512, 12},
    {"q4_0r prefill", dtype::q4_0r, 20, 512, 36},
    {"q8_0r decode", dtype::q8_0r, 1, 1024, 68}, {"q8_0r prefill", dtype::q8_0r, 20, 512, 36},
};

void check(thread_pool& pool, const matmul_case& c) {
    const auto xf = test::random_gaussian(c.m * c.k, 1);
    const tensor x = tensor::from({c.m, c.k}, xf);
    tensor wf32 = tensor::from({c.n, c.k}, test::random_gaussian(c.n * c.k, 2));
    const tensor w = c.type == dtype::f32 ? wf32.clone() : convert(wf32, c.type);
    const auto wd = ref::dequantize_matrix(c.type, w.raw(), c.n, c.k);
    tensor y = tensor::zeros(dtype::f32, {c.m, c.n});
    ops::matmul(pool, x, w, y);
    const auto want = ref::matmul(xf, wd, c.m, c.k, c.n);

    // The dot-kernel path (few rows; regrouped types always) quantizes x.
    const bool quant_act = dtype_is_quantized(c.type) && (c.m < 16 || dtype_is_regrouped(c.type));
    for (int64_t i = 0; i < c.m; ++i)
        for (int64_t j = 0; j < c.n; ++j) {
            double mag = 0, act_err = 0;
            for (int64_t l = 0; l < c.k; ++l) {
                const double wl = std::fabs(wd[j * c.k + l]);
                mag += wl * std::fabs(xf[i * c.k + l]);
                if (quant_act) {
                    float amax = 0;  // the activation's block step, recomputed: amax / 127
                    for (int t = 0; t < 32; ++t) amax = std::max(amax, std::fabs(xf[i * c.k + l / 32 * 32 + t]));
                    act_err += wl * 0.5 * amax / 127;
                }
            }
            // Rigorous f32 accumulation bound k * eps * sum|x w|, plus the activations' rounding on the
            // quantized path; a wrong index or a dropped block is far outside it.
            const double tol = act_err + c.k * 0x1p-24 * mag + 1e-30;
            ASSERT_NEAR(y.data<float>()[i * c.n + j], want[i * c.n + j], tol)
                << c.name << " at [" << i << ", " << j << "] with " << pool.size() << " threads";
        }
}

TEST(matmul, matches_reference_on_every_dtype_and_path) {
    for (int threads : {1, 2, 3}) {
        thread_pool pool(threads);
        for (const auto& c : k_cases) {
            // Regrouped types exist only where their kernels do (AVX-512), and go through them at any m.
            if ((c.type == dtype::q4_0r && !kernels_best().rows_q4_0r) || (c.type == dtype::q8_0r && !kernels_best().rows_q8_0r))
                continue;
            check(pool, c);
        }
    }
}

TEST(matmul, matvec_is_matmul_with_one_row) {
    thread_pool pool(2);
    const tensor w = convert(tensor::from({129, 96}, test::random_gaussian(129 * 96, 3)), dtype::q8_0);
    const tensor x = tensor::from({96}, test::random_gaussian(96, 4));
    tensor y1 = tensor::zeros(dtype::f32, {129});
    tensor y2 = tensor::zeros(dtype::f32, {1, 129});
    ops::matvec(pool, w, x, y1);
    ops::matmul(pool, x.reshape({1, 96}), w, y2);
    for (int j = 0; j < 129; ++j) EXPECT_EQ(y1.data<float>()[j], y2.data<float>()[j]) << j;
}

// matmul_shared gives each weight exactly what matmul gives it alone, in one dispatch or (mixed types, f32,
// widened tiles) one by one; weights' row counts that do not divide evenly across the pool included.
TEST(matmul, shared_input_matmuls_equal_single_ones) {
    const int64_t k = 512;
    struct group { const char* name; std::vector<std::pair<dtype, int64_t>> weights; };  // type, rows
    std::vector<group> groups = {
        {"q8_0 q/k/v", {{dtype::q8_0, 48}, {dtype::q8_0, 16}, {dtype::q8_0, 20}}},
        {"q4_0 gate/up", {{dtype::q4_0, 36}, {dtype::q4_0, 36}}},
        {"f16", {{dtype::f16, 24}, {dtype::f16, 9}}},
        {"mixed", {{dtype::q4_0, 20}, {dtype::f16, 12}, {dtype::f32, 7}}},
    };
    if (kernels_best().rows_q4_0r) groups.push_back({"q4_0r", {{dtype::q4_0r, 36}, {dtype::q4_0r, 8}, {dtype::q4_0r, 68}}});
    if (kernels_best().rows_q8_0r) groups.push_back({"q8_0r", {{dtype::q8_0r, 20}, {dtype::q8_0r, 4}}});
    for (int threads : {1, 2, 3})
        for (const auto& g : groups)
            for (int64_t m : {1, 3, 20})
                for (auto mode : {ops::matmul_mode::rowwise, ops::matmul_mode::fastest}) {
                    thread_pool pool(threads);
                    const tensor x = tensor::from({m, k}, test::random_gaussian(m * k, 41));
                    std::vector<tensor> ws, together, alone;
                    std::vector<ops::matmul_out> outs;
                    for (size_t i = 0; i < g.weights.size(); ++i) {
                        const auto [t, n] = g.weights[i];
                        const tensor f = tensor::from({n, k}, test::random_gaussian(n * k, 42 + static_cast<uint32_t>(i)));
                        ws.push_back(t == dtype::f32 ? f.clone() : convert(f, t));
                        together.push_back(tensor::zeros(dtype::f32, {m, n}));
                        alone.push_back(tensor::zeros(dtype::f32, {m, n}));
                    }
                    for (size_t i = 0; i < ws.size(); ++i) outs.push_back({&ws[i], &together[i]});
                    ops::matmul_shared(pool, x, outs, mode);
                    for (size_t i = 0; i < ws.size(); ++i) {
                        ops::matmul(pool, x, ws[i], alone[i], mode);
                        const auto a = together[i].f32(), b = alone[i].f32();
                        ASSERT_TRUE(std::equal(a.begin(), a.end(), b.begin()))
                            << g.name << " weight " << i << " m " << m << " threads " << threads;
                    }
                }
}

// rowwise: each row of y is bit-for-bit what that row gives alone, for row counts on both sides of the
// sgemm threshold (and odd counts, for q4_0r's two-row kernel), so a batched request
// computes exactly what it would alone.
TEST(matmul, rowwise_rows_do_not_depend_on_their_neighbours) {
    thread_pool pool(2);
    std::vector<dtype> types{dtype::q8_0, dtype::q4_0, dtype::f16, dtype::bf16};
    if (kernels_best().rows_q4_0r) types.push_back(dtype::q4_0r);
    if (kernels_best().rows_q8_0r) types.push_back(dtype::q8_0r);
    for (dtype t : types) {
        // Regrouped rows come in fours of 512-element stretches.
        const int64_t k = dtype_is_regrouped(t) ? 1024 : 192, n = dtype_is_regrouped(t) ? 76 : 77;
        const tensor w = convert(tensor::from({n, k}, test::random_gaussian(n * k, 11)), t);
        for (int64_t m : {3, 7, 16, 40}) {
            const tensor x = tensor::from({m, k}, test::random_gaussian(m * k, 12));
            tensor y = tensor::zeros(dtype::f32, {m, n});
            ops::matmul(pool, x, w, y, ops::matmul_mode::rowwise);
            for (int64_t i = 0; i < m; ++i) {
                const tensor xi = tensor::view(dtype::f32, {1, k}, x.data<float>() + i * k);
                tensor yi = tensor::zeros(dtype::f32, {1, n});
                ops::matmul(pool, xi, w, yi, ops::matmul_mode::rowwise);
                for (int64_t j = 0; j < n; ++j)
                    ASSERT_EQ(y.data<float>()[i * n + j], yi.data<float>()[j]) << dtype_name(t) << " m " << m << " row " << i;
            }
        }
    }
}

// rowwise f16: the activations are rounded to f16 first, so the result equals the f32 product of the rounded
// activations with the widened weights (tolerance: f32 summation over k products, k * eps * sum|x w|).
TEST(matmul, rowwise_f16_rounds_activations_to_f16) {
    thread_pool pool(1);
    const int64_t m = 2, k = 172, n = 9;
    const tensor w = convert(tensor::from({n, k}, test::random_gaussian(n * k, 21)), dtype::f16);
    const tensor x = tensor::from({m, k}, test::random_gaussian(m * k, 22));
    const tensor x16 = to_f32(convert(x, dtype::f16));
    const tensor wf = to_f32(w);
    tensor y = tensor::zeros(dtype::f32, {m, n});
    ops::matmul(pool, x, w, y, ops::matmul_mode::rowwise);
    for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) {
            double want = 0, mag = 0;
            for (int64_t c = 0; c < k; ++c) {
                const double p = static_cast<double>(x16.data<float>()[i * k + c]) * wf.data<float>()[j * k + c];
                want += p;
                mag += std::fabs(p);
            }
            EXPECT_NEAR(y.data<float>()[i * n + j], want, k * 1.2e-7 * mag) << i << " " << j;
        }
}

}  // namespace
}  // namespace mm
