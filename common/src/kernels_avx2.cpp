// AVX2 + FMA + F16C kernels: one quant block per 256-bit register. Called only after cpu_features_detect().
#include <immintrin.h>

#include "common/kernels.h"

namespace mm {
namespace {

inline float f16_scalar(uint16_t h) { return _cvtsh_ss(h); }

inline float hsum(__m256 v) {
    const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)));
}

// u8 x s8 products summed to 8 int32 lanes; pairs sum in int16 without overflow (2 * 127 * 127 < 32767).
inline __m256i dot_u8_s8(__m256i u, __m256i s) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

// Block b of the activations as one register, whether it sits in a four-block group or plain.
inline __m256i load_x(q8_act_row x, int64_t b) {
    const int8_t* lo = x.qs + q8_act_index(x.n_blocks, b, 0);
    const int8_t* hi = x.qs + q8_act_index(x.n_blocks, b, 16);
    return _mm256_loadu2_m128i(reinterpret_cast<const __m128i*>(hi), reinterpret_cast<const __m128i*>(lo));
}

float row_q8_0(const block_q8_0* w, q8_act_row x, int64_t nb) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t i = 0;
    auto one = [&](int64_t b, __m256& acc) {
        const __m256i wq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[b].qs));
        const __m256i xq = load_x(x, b);
        const __m256i p = dot_u8_s8(_mm256_sign_epi8(wq, wq), _mm256_sign_epi8(xq, wq));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(f16_scalar(w[b].d) * x.d[b]), acc);
    };
    for (; i + 2 <= nb; i += 2) {
        one(i, acc0);
        one(i + 1, acc1);
    }
    if (i < nb) one(i, acc0);
    return hsum(_mm256_add_ps(acc0, acc1));
}

float row_q4_0(const block_q4_0* w, q8_act_row x, int64_t nb) {
    __m256 acc = _mm256_setzero_ps();
    float corr = 0.0f;  // the nibbles' +8 offset, folded in per block (see kernels_avx512.cpp)
    for (int64_t b = 0; b < nb; ++b) {
        const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w[b].qs));
        const __m128i m = _mm_set1_epi8(0x0f);
        const __m256i nib = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(v, 4), m), _mm_and_si128(v, m));
        const __m256i xq = load_x(x, b);
        const float dw = f16_scalar(w[b].d);
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot_u8_s8(nib, xq)), _mm256_set1_ps(dw * x.d[b]), acc);
        corr += dw * x.dsum[b];
    }
    return hsum(acc) - 8.0f * corr;
}

void rows_q8_0(const std::byte* w, size_t row_bytes, int64_t n_rows, q8_act_row x, int64_t n, float* y) {
    for (int64_t r = 0; r < n_rows; ++r) y[r] = row_q8_0(reinterpret_cast<const block_q8_0*>(w + r * row_bytes), x, n / k_qk);
}

void rows_q4_0(const std::byte* w, size_t row_bytes, int64_t n_rows, q8_act_row x, int64_t n, float* y) {
    for (int64_t r = 0; r < n_rows; ++r) y[r] = row_q4_0(reinterpret_cast<const block_q4_0*>(w + r * row_bytes), x, n / k_qk);
}

inline __m256 load_f16(const uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
inline __m256 load_bf16(const uint16_t* p) {
    const __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
}
inline float f16_one(uint16_t h) { return _cvtsh_ss(h); }
inline float bf16_one(uint16_t h) { return _mm_cvtss_f32(_mm_castsi128_ps(_mm_cvtsi32_si128(static_cast<int>(h) << 16))); }

template <__m256 (*load)(const uint16_t*), float (*one)(uint16_t)>
void rows_half(const std::byte* w, size_t row_bytes, int64_t n_rows, const float* x, int64_t n, float* y) {
    for (int64_t r = 0; r < n_rows; ++r) {
        auto* h = reinterpret_cast<const uint16_t*>(w + r * row_bytes);
        __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
        int64_t i = 0;
        for (; i + 16 <= n; i += 16) {
            acc0 = _mm256_fmadd_ps(load(h + i), _mm256_loadu_ps(x + i), acc0);
            acc1 = _mm256_fmadd_ps(load(h + i + 8), _mm256_loadu_ps(x + i + 8), acc1);
        }
        float tail = 0.0f;
        for (; i < n; ++i) tail += one(h[i]) * x[i];
        y[r] = hsum(_mm256_add_ps(acc0, acc1)) + tail;
    }
}

const kernel_table k_avx2{
    .isa = "avx2",
    .rows_q8_0 = rows_q8_0,
    .rows_q4_0 = rows_q4_0,
    .rows_f16 = rows_half<load_f16, f16_one>,
    .rows_bf16 = rows_half<load_bf16, bf16_one>,
};

}  // namespace

const kernel_table* kernels_avx2() {
    const cpu_features f = cpu_features_detect();
    return f.avx2 && f.fma && f.f16c ? &k_avx2 : nullptr;
}

}  // namespace mm
