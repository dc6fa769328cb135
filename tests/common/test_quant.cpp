// Quant formats and the dot kernels: round trips against the format's definition, and every kernel table
// this CPU has (scalar, AVX2, AVX-512) against a double-precision reference on the dequantized weights.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "common/fp16.h"
#include "common/kernels.h"
#include "common/quantize.h"
#include "common/repack.h"
#include "common/tensor.h"
#include "ref/compare.h"
#include "ref/ref_matmul.h"

namespace mm {
namespace {

std::vector<const kernel_table*> tables() {
    std::vector<const kernel_table*> t{&kernels_scalar()};
    if (auto* k = kernels_avx2()) t.push_back(k);
    if (auto* k = kernels_avx512()) t.push_back(k);
    return t;
}

TEST(fp16, matches_the_bit_layout_definition_for_every_half) {
    // Every one of the 65536 halves widens to the value its bits define, and narrows back to itself.
    for (uint32_t h = 0; h < 65536; ++h) {
        const float want = ref::dequantize(dtype::f16, &h, 1)[0];
        const float got = f16_to_f32(static_cast<uint16_t>(h));
        if (std::isnan(want)) {
            ASSERT_TRUE(std::isnan(got)) << h;
            continue;
        }
        ASSERT_EQ(got, want) << "half 0x" << std::hex << h;
        ASSERT_EQ(f32_to_f16(got), h) << "half 0x" << std::hex << h;
    }
}

TEST(fp16, narrowing_rounds_to_nearest_even) {
    struct row { const char* name; float in; uint16_t want; };
    const row rows[] = {
        {"one", 1.0f, 0x3c00},
        {"tie rounds down to even", 1.0f + 1.0f / 2048, 0x3c00},
        {"tie rounds up to even", 1.0f + 3.0f / 2048, 0x3c02},
        {"above tie", 1.0f + 1.0f / 2048 + 1.0f / 65536, 0x3c01},
        {"max half", 65504.0f, 0x7bff},
        {"overflow to inf", 65520.0f, 0x7c00},
        {"smallest subnormal", 5.960464477539063e-08f, 0x0001},
        {"half of smallest subnormal ties to zero", 2.9802322387695312e-08f, 0x0000},
        {"negative", -2.5f, 0xc100},
    };
    for (const auto& r : rows) EXPECT_EQ(f32_to_f16(r.in), r.want) << r.name;
}

TEST(fp16, bf16_rounds_to_nearest_even) {
    EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
    EXPECT_EQ(f32_to_bf16(f32_from_bits(0x3f808000u)), 0x3f80);  // tie, even stays
    EXPECT_EQ(f32_to_bf16(f32_from_bits(0x3f818000u)), 0x3f82);  // tie, odd rounds up
    EXPECT_EQ(bf16_to_f32(0xc040), -3.0f);
}

struct quant_case { const char* name; int64_t n; float sigma; };
const quant_case k_quant_cases[] = {
    {"one block", 32, 1.0f}, {"three blocks", 96, 1.0f}, {"prime blocks", 13 * 32, 0.02f}, {"llm row", 4096, 3.0f},
};

TEST(quant, q8_0_round_trip_error_within_half_a_step) {
    for (const auto& c : k_quant_cases) {
        const auto x = test::random_gaussian(c.n, 11, c.sigma);
        std::vector<block_q8_0> q(static_cast<size_t>(c.n / 32));
        quantize_row_q8_0(x.data(), q.data(), c.n);
        const auto back = ref::dequantize(dtype::q8_0, q.data(), c.n);
        for (int64_t b = 0; b < c.n / 32; ++b) {
            float amax = 0;
            for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[b * 32 + i]));
            // Rounding to the nearest step costs d/2; storing d as f16 moves each value by at most
            // |q| * |d - d_f16| <= amax * 2^-11.
            const float bound = 0.5f * amax / 127 + amax * 0x1p-11f + 1e-12f;
            for (int i = 0; i < 32; ++i)
                ASSERT_LE(std::fabs(back[b * 32 + i] - x[b * 32 + i]), bound) << c.name << " block " << b << " i " << i;
        }
        // Our dequantizer agrees with the format's definition exactly.
        std::vector<float> ours(static_cast<size_t>(c.n));
        dequantize_row_q8_0(q.data(), ours.data(), c.n);
        EXPECT_EQ(ours, back) << c.name;
    }
}

TEST(quant, q4_0_round_trip_error_within_one_step) {
    for (const auto& c : k_quant_cases) {
        const auto x = test::random_gaussian(c.n, 12, c.sigma);
        std::vector<block_q4_0> q(static_cast<size_t>(c.n / 32));
        quantize_row_q4_0(x.data(), q.data(), c.n);
        const auto back = ref::dequantize(dtype::q4_0, q.data(), c.n);
        for (int64_t b = 0; b < c.n / 32; ++b) {
            float amax = 0;
            for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[b * 32 + i]));
            // Step d = amax / 8. Values round to the nearest step (d/2), except the top of the range,
            // where +8 clamps to +7 (one step); plus the f16 rounding of d (amax * 2^-11).
            const float bound = amax / 8 + amax * 0x1p-11f + 1e-12f;
            for (int i = 0; i < 32; ++i)
                ASSERT_LE(std::fabs(back[b * 32 + i] - x[b * 32 + i]), bound) << c.name << " block " << b << " i " << i;
        }
        std::vector<float> ours(static_cast<size_t>(c.n));
        dequantize_row_q4_0(q.data(), ours.data(), c.n);
        EXPECT_EQ(ours, back) << c.name;
    }
}

TEST(quant, activation_blocks_carry_their_sum) {
    const auto x = test::random_gaussian(2 * 256, 5);
    q8_act a;
    quantize_act_q8(x.data(), 2, 256, a);
    for (int row = 0; row < 2; ++row) {
        const q8_act_row r = a.row(row);
        for (int b = 0; b < 8; ++b) {
            int s = 0;
            for (int i = 0; i < 32; ++i) {
                const int8_t q = r.qs[q8_act_index(r.n_blocks, b, i)];
                s += q;
                // Rounded to nearest with the exact scale d, then stored with d rounded to f16 (relative error
                // <= 2^-11): within half a step (1.0001 covers f32 rounding of x * (1/d)) plus |q| <= 127
                // times the scale's rounding.
                const float step = r.d[b] * (1.0f + 1.0f / 2048);
                EXPECT_LE(std::fabs(r.d[b] * q - x[row * 256 + b * 32 + i]), 0.5f * step * 1.0001f + 127 * step / 2048)
                    << b << " " << i;
            }
            EXPECT_EQ(f16_to_f32(f32_to_f16(r.d[b])), r.d[b]) << "the scale is f16-exact, as llama.cpp's q8_0 activations";
            EXPECT_EQ(r.dsum[b], r.d[b] * static_cast<float>(s)) << b;
        }
    }
}

// Every table's activation quantizer writes the scalar one's bytes: grouped and plain tail blocks, a zero
// block, a block of exact ties (x * 127 / amax lands on k + 0.5, which rounds to even), tiny values.
TEST(quant, every_activation_quantizer_gives_the_scalar_bytes) {
    for (const int64_t n : {int64_t{32}, int64_t{96}, int64_t{256}, int64_t{2048 + 96}}) {
        auto x = test::random_gaussian(n, 11);
        for (int i = 32; i < 64 && i < n; ++i) x[static_cast<size_t>(i)] = 0.0f;
        if (n >= 96)
            for (int i = 64; i < 96; ++i) x[static_cast<size_t>(i)] = i == 64 ? 127.0f : static_cast<float>(i % 20) + 0.5f;
        if (n >= 256) x[200] = 1e-30f;
        const int64_t nb = n / 32;
        std::vector<int8_t> want_q(static_cast<size_t>(n));
        std::vector<float> want_d(static_cast<size_t>(nb)), want_s(static_cast<size_t>(nb));
        kernels_scalar().quantize_act(x.data(), n, want_q.data(), want_d.data(), want_s.data());
        for (const kernel_table* kt : tables()) {
            if (!kt->quantize_act) continue;
            std::vector<int8_t> q(static_cast<size_t>(n), 99);
            std::vector<float> d(static_cast<size_t>(nb), -1), s(static_cast<size_t>(nb), -1);
            kt->quantize_act(x.data(), n, q.data(), d.data(), s.data());
            EXPECT_EQ(q, want_q) << kt->isa << " n " << n;
            EXPECT_EQ(d, want_d) << kt->isa << " n " << n;
            EXPECT_EQ(s, want_s) << kt->isa << " n " << n;
        }
    }
}

// q4_0r / q8_0r hold q4_0's / q8_0's bytes regrouped: unpacking gives them back exactly, and the
// reference, reading the layout from its definition, finds the plain values in it.
TEST(quant, regrouped_types_keep_every_value) {
    const int64_t rows = 8, cols = 1024;
    const tensor f = tensor::from({rows, cols}, test::random_gaussian(rows * cols, 31));
    for (auto [plain_t, grouped_t] : {std::pair{dtype::q4_0, dtype::q4_0r}, std::pair{dtype::q8_0, dtype::q8_0r}}) {
        const tensor plain = convert(f, plain_t);
        const tensor packed = convert(f, grouped_t);
        const tensor back = regrouped_as(packed, plain_t);
        EXPECT_EQ(std::memcmp(plain.raw(), back.raw(), plain.bytes()), 0) << dtype_name(grouped_t);
        EXPECT_NE(std::memcmp(plain.raw(), packed.raw(), plain.bytes()), 0) << "regrouped means another order";
        const auto want = ref::dequantize(plain_t, plain.raw(), rows * cols);
        EXPECT_EQ(ref::dequantize_matrix(grouped_t, packed.raw(), rows, cols), want) << dtype_name(grouped_t);
        const tensor wide = to_f32(packed);
        EXPECT_EQ(std::vector<float>(wide.f32().begin(), wide.f32().end()), want) << dtype_name(grouped_t);
    }
}

TEST(quant, matrices_are_regrouped_only_where_the_kernel_reads_them_faster) {
    auto make = [](dtype t, int64_t rows, int64_t cols) {
        return convert(tensor::from({rows, cols}, test::random_gaussian(rows * cols, 32)), t);
    };
    for (auto [plain_t, grouped_t] : {std::pair{dtype::q4_0, dtype::q4_0r}, std::pair{dtype::q8_0, dtype::q8_0r}}) {
        const bool kernel = (plain_t == dtype::q4_0 ? kernels_best().rows_q4_0r : kernels_best().rows_q8_0r) != nullptr;
        const tensor w = make(plain_t, 8, 1024);
        auto r = repacked_for_matvec(w);
        ASSERT_EQ(r.has_value(), kernel) << kernels_best().isa << " " << dtype_name(plain_t);
        if (r) {
            EXPECT_EQ(r->type(), grouped_t);
            EXPECT_EQ(r->bytes(), w.bytes());
            EXPECT_EQ(to_f32(*r).f32()[777], to_f32(w).f32()[777]);
        }
        EXPECT_FALSE(repacked_for_matvec(make(plain_t, 8, 96))) << "rows that are not whole 512-element stretches stay";
        EXPECT_FALSE(repacked_for_matvec(make(plain_t, 6, 512))) << "a row count that is not a multiple of 4 stays";
    }
    EXPECT_FALSE(repacked_for_matvec(make(dtype::f16, 8, 512)));
}

// The dot kernels: every ISA against the double reference on dequantized weights and the true activations.
struct dot_case { const char* name; dtype type; int64_t n_rows, k; };
const dot_case k_dot_cases[] = {
    {"q8_0 one block", dtype::q8_0, 3, 32},       {"q8_0 odd blocks", dtype::q8_0, 7, 96},
    {"q8_0 prime", dtype::q8_0, 37, 13 * 32},     {"q8_0 llm", dtype::q8_0, 5, 4096},
    {"q4_0 one block", dtype::q4_0, 3, 32},       {"q4_0 odd blocks", dtype::q4_0, 7, 160},
    {"q4_0 prime", dtype::q4_0, 37, 13 * 32},     {"q4_0 llm", dtype::q4_0, 5, 4096},
    {"f16 tiny", dtype::f16, 2, 1},               {"f16 odd", dtype::f16, 7, 37},
    {"f16 ffn_down", dtype::f16, 64, 172},        {"f16 prime", dtype::f16, 3, 263},
    {"bf16 odd", dtype::bf16, 7, 31},             {"bf16 llm", dtype::bf16, 3, 4096},
    {"q4_0r one band", dtype::q4_0r, 4, 512},     {"q4_0r ffn_down", dtype::q4_0r, 12, 5632},
    {"q4_0r llm", dtype::q4_0r, 8, 2048},
    {"q8_0r one band", dtype::q8_0r, 4, 512},     {"q8_0r ffn_down", dtype::q8_0r, 12, 5632},
    {"q8_0r llm", dtype::q8_0r, 8, 2048},
};

TEST(kernels, every_isa_matches_the_reference) {
    for (const auto* kt : tables()) {
        for (const auto& c : k_dot_cases) {
            // Regrouped types exist only where their kernels do: loaders keep the plain ones for this ISA.
            if ((c.type == dtype::q4_0r && !kt->rows_q4_0r) || (c.type == dtype::q8_0r && !kt->rows_q8_0r)) continue;
            const auto wf = test::random_gaussian(c.n_rows * c.k, 21, 0.5f);
            const auto x = test::random_gaussian(c.k, 22);
            tensor w = convert(tensor::from({c.n_rows, c.k}, wf), c.type);
            const auto wd = ref::dequantize_matrix(c.type, w.raw(), c.n_rows, c.k);  // what the kernel should see
            std::vector<float> y(static_cast<size_t>(c.n_rows));
            q8_act xq;
            const bool quant = dtype_is_quantized(c.type);
            if (quant) quantize_act_q8(x.data(), 1, c.k, xq);
            auto* wp = static_cast<const std::byte*>(w.raw());
            switch (c.type) {
                case dtype::q8_0: kt->rows_q8_0(wp, w.row_bytes(), c.n_rows, xq.row(0), c.k, y.data()); break;
                case dtype::q4_0: kt->rows_q4_0(wp, w.row_bytes(), c.n_rows, xq.row(0), c.k, y.data()); break;
                case dtype::q4_0r: kt->rows_q4_0r(wp, w.row_bytes(), c.n_rows, xq.row(0), c.k, y.data()); break;
                case dtype::q8_0r: kt->rows_q8_0r(wp, w.row_bytes(), c.n_rows, xq.row(0), c.k, y.data()); break;
                case dtype::f16: kt->rows_f16(wp, w.row_bytes(), c.n_rows, x.data(), c.k, y.data()); break;
                case dtype::bf16: kt->rows_bf16(wp, w.row_bytes(), c.n_rows, x.data(), c.k, y.data()); break;
                case dtype::f32: break;
            }
            for (int64_t r = 0; r < c.n_rows; ++r) {
                double want = 0, mag = 0, act_err = 0;
                for (int64_t j = 0; j < c.k; ++j) {
                    want += static_cast<double>(wd[r * c.k + j]) * x[j];
                    mag += std::fabs(static_cast<double>(wd[r * c.k + j]) * x[j]);
                    // Quantizing an activation moves it by at most half its block's step.
                    if (quant) act_err += std::fabs(wd[r * c.k + j]) * 0.5 * xq.d[j / 32];
                }
                // f32 accumulation of k products: at most k * eps_f32 * sum|w x| (a rigorous bound); the
                // integer block sums are exact.
                const double tol = act_err + c.k * 0x1p-24 * mag + 1e-30;
                EXPECT_NEAR(y[r], want, tol) << kt->isa << " / " << c.name << " row " << r;
            }
        }
    }
}

// SiLU (times u) in every table against SiLU in double: lengths that leave every tail, and the ends where exp
// overflows or vanishes. Within 3 ulp of the exact value: the scalar one is within 2.4 (libm's exp and one
// divide), and the vector ones were measured within 2.4 over every f32 in [-100, 100].
TEST(kernels, every_silu_matches_the_exact_one) {
    std::vector<float> g = test::random_gaussian(61, 12, 6.0f);
    const float ends[] = {-1e4f, -100.0f, -88.5f, -87.2f, -20.0f, -1e-30f, 0.0f, 1e-30f, 20.0f, 88.5f, 100.0f, 1e4f};
    g.insert(g.end(), std::begin(ends), std::end(ends));
    const std::vector<float> u = test::random_gaussian(g.size(), 13);
    for (const kernel_table* kt : tables()) {
        for (const bool times_u : {false, true})
            for (size_t n : {size_t{1}, size_t{7}, size_t{17}, g.size()}) {
                std::vector<float> y(n, -1.0f);
                kt->silu_mul(g.data(), times_u ? u.data() : nullptr, y.data(), static_cast<int64_t>(n));
                for (size_t i = 0; i < n; ++i) {
                    const double v = g[i], s = v / (1.0 + std::exp(-v));
                    const double want = times_u ? s * u[i] : s;
                    const float wf = static_cast<float>(want);
                    const double ulp = std::fabs(std::nextafter(wf, INFINITY) - wf);
                    // Far below 0 an exp clamped at e^88 gives v * 6e-39 where the exact is smaller.
                    const double tol = v < -80 ? 1e-38 * std::fabs(v) * (times_u ? std::fabs(u[i]) : 1.0) : 3 * ulp;
                    EXPECT_NEAR(y[i], want, tol) << kt->isa << (times_u ? " silu * u" : " silu") << " at " << g[i];
                }
            }
    }
}

// One query group's attention in every table against the same in double: query counts around the vector
// kernels' 8 / 16 lanes and their 4-row tiles, head sizes around their chunks (1 to 128), key counts around
// their 4-key steps, and K / V rows farther apart than d as in the cache. Inputs N(0, 1): each output is a
// weighted mean of v, its f32 error about sqrt(n_kv) u |v| plus the scores' d-term dots (1e-6 here); 1e-5
// is ten times that. A key too many or too few moves an output by ~|v| / n_kv >= 4e-3, a query row's
// probabilities in another's lane by far more.
TEST(kernels, every_attend_matches_the_exact_one) {
    for (const kernel_table* kt : tables())
        for (const int n_q : {1, 3, 8, 13, 21})
            for (const int d : {1, 7, 16, 33, 64, 128})
                for (const int n_kv : {1, 3, 6, 263}) {
                    const int64_t stride = 2 * d + 3;
                    const auto q = test::random_gaussian(static_cast<size_t>(n_q * d), 21);
                    const auto k = test::random_gaussian(static_cast<size_t>(n_kv * stride), 22);
                    const auto v = test::random_gaussian(static_cast<size_t>(n_kv * stride), 23);
                    const float scale = 1.0f / std::sqrt(static_cast<float>(d));
                    std::vector<float> y(static_cast<size_t>(n_q * d), NAN), scratch(attend_scratch_floats(n_kv, d));
                    kt->attend(q.data(), n_q, k.data(), v.data(), stride, n_kv, d, scale, y.data(), scratch.data());
                    for (int r = 0; r < n_q; ++r) {
                        std::vector<double> p(static_cast<size_t>(n_kv));
                        for (int j = 0; j < n_kv; ++j) {
                            double a = 0;
                            for (int i = 0; i < d; ++i) a += double{q[r * d + i]} * k[j * stride + i];
                            p[j] = a * scale;
                        }
                        const double mx = *std::max_element(p.begin(), p.end());
                        double sum = 0;
                        for (double& e : p) sum += (e = std::exp(e - mx));
                        for (int i = 0; i < d; ++i) {
                            double want = 0;
                            for (int j = 0; j < n_kv; ++j) want += p[j] / sum * v[j * stride + i];
                            EXPECT_NEAR(y[r * d + i], want, 1e-5)
                                << kt->isa << " n_q " << n_q << " d " << d << " n_kv " << n_kv << " row " << r << " i " << i;
                        }
                    }
                }
}

TEST(kernels, best_table_is_the_widest_the_cpu_has) {
    const auto t = tables();
    EXPECT_EQ(kernels_best().isa, t.back()->isa);
}

}  // namespace
}  // namespace mm
