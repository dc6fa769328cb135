// AVX2 + FMA + F16C kernels: one quant block per 256-bit register. Called only after cpu_features_detect().
#include <immintrin.h>

#include <algorithm>
#include <cmath>

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

// q4_0r / q8_0r (dtype.h): a four-row band read front to back, each 512-element stretch's four rows side by
// side, sharing the activation loads. One register holds a pair of blocks (2i, 2i + 1); pair (j, p), blocks
// 4j + 2p and 4j + 2p + 1, meets the activations' first halves at xq + 128j + 32p and their second halves 64
// bytes on. Two rounds of hadd turn four pairs' lanes into one sum per block, and taking the pairs j = 0..3 at
// p = 0, then at p = 1, puts those sums in the order the stretch's scales are stored (k_q4_0r_lane_block).
// Integer sums are exact, so results differ from the plain kernels only in the order of f32 additions.

// Four pairs (j = 0..3 at p) -> the eight block sums [first blocks of the four pairs | their second blocks].
// q4_0: each pair's sixteen int16 lanes (eight per block, each four products of at most 15 * 127) take two
// rounds of hadd in int16 (sixteen products, at most 30480, still in range) and one madd to int32.
inline __m256 four_q4_0r(const block_q4_0r& w, const int8_t* xq, int p) {
    const __m256i m = _mm256_set1_epi8(0x0f);
    auto pair = [&](int j) {
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.qs[4 * j + 2 * p]));
        const int8_t* x = xq + 128 * j + 32 * p;
        const __m256i lo = _mm256_maddubs_epi16(_mm256_and_si256(v, m), _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x)));
        const __m256i hi = _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(v, 4), m),
                                                _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + 64)));
        return _mm256_add_epi16(lo, hi);
    };
    const __m256i h = _mm256_hadd_epi16(_mm256_hadd_epi16(pair(0), pair(1)), _mm256_hadd_epi16(pair(2), pair(3)));
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(h, _mm256_set1_epi16(1)));
}

// q8_0: a half's products reach 2 * 127 * 128 in int16, so each pair goes to int32 first and hadd works there.
inline __m256 four_q8_0r(const block_q8_0r& w, const int8_t* xq, int p) {
    auto pair = [&](int j) {
        const int8_t* x = xq + 128 * j + 32 * p;
        auto half = [&](int h) {
            // Stored offset-binary (dtype.h); maddubs would saturate on 255 * 127 pairs, so back to signed.
            const __m256i wq = _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.qs[j][h][2 * p])),
                                                _mm256_set1_epi8(static_cast<char>(0x80)));
            return dot_u8_s8(_mm256_sign_epi8(wq, wq),
                             _mm256_sign_epi8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + 64 * h)), wq));
        };
        return _mm256_add_epi32(half(0), half(1));
    };
    return _mm256_cvtepi32_ps(_mm256_hadd_epi32(_mm256_hadd_epi32(pair(0), pair(1)), _mm256_hadd_epi32(pair(2), pair(3))));
}

// x's sixteen per-block values (scales, or d * sum) in the stored scales' lane order: {0, 4, 8, 12, 1, 5, 9,
// 13} and {2, 6, 10, 14, 3, 7, 11, 15}.
inline void lane_order(const float* v, __m256& first, __m256& second) {
    const __m256 a = _mm256_loadu_ps(v), b = _mm256_loadu_ps(v + 8);
    const __m256i i0 = _mm256_setr_epi32(0, 4, 0, 4, 1, 5, 1, 5), i1 = _mm256_setr_epi32(2, 6, 2, 6, 3, 7, 3, 7);
    first = _mm256_blend_ps(_mm256_permutevar8x32_ps(a, i0), _mm256_permutevar8x32_ps(b, i0), 0xcc);
    second = _mm256_blend_ps(_mm256_permutevar8x32_ps(a, i1), _mm256_permutevar8x32_ps(b, i1), 0xcc);
}

constexpr int64_t k_band_lead = 4096;  // bytes a band fetches ahead, as the AVX-512 one

// `offset` is q4_0's -8 per quant (0 for q8_0): each block adds dw * (xd * sum - offset * x's d * sum(qs)).
template <class B, __m256 (*four)(const B&, const int8_t*, int), int offset>
void band(const B* w, q8_act_row x, int64_t ng, float* y) {
    __m256 acc[k_q4_0r_rows] = {};
    for (int64_t g = 0; g < ng; ++g) {
        const int64_t b0 = g * k_q4_0r_blocks;
        __m256 xd0, xd1, xs0, xs1;
        lane_order(x.d + b0, xd0, xd1);
        lane_order(x.dsum + b0, xs0, xs1);
        const __m256 off = _mm256_set1_ps(-static_cast<float>(offset));
        xs0 = _mm256_mul_ps(xs0, off);
        xs1 = _mm256_mul_ps(xs1, off);
        const int8_t* xq = x.qs + b0 * k_qk;
        // About 4 KB ahead, as the AVX-512 band reads (kernels_avx512.cpp); past the end it is only a hint.
        constexpr int64_t stride = k_q4_0r_rows * sizeof(B), lead = (k_band_lead + stride - 1) / stride;
        const char* ahead = reinterpret_cast<const char*>(w + (g + lead) * k_q4_0r_rows);
        for (size_t at = 0; at < k_q4_0r_rows * sizeof(B); at += 64) _mm_prefetch(ahead + at, _MM_HINT_T0);
#pragma GCC unroll 4
        for (int r = 0; r < k_q4_0r_rows; ++r) {
            const B& wr = w[g * k_q4_0r_rows + r];
            const __m256 s0 = four(wr, xq, 0), s1 = four(wr, xq, 1);
            const __m256 d0 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(wr.d)));
            const __m256 d1 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(wr.d + 8)));
            acc[r] = _mm256_fmadd_ps(d0, _mm256_fmadd_ps(xd0, s0, xs0), acc[r]);
            acc[r] = _mm256_fmadd_ps(d1, _mm256_fmadd_ps(xd1, s1, xs1), acc[r]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < k_q4_0r_rows; ++r) y[r] = hsum(acc[r]);
}

// w is the first of n_rows rows (a multiple of 4, at a band's start); row_bytes is a row's share of a band.
template <class B, __m256 (*four)(const B&, const int8_t*, int), int offset>
void rows_regrouped(const std::byte* w, size_t row_bytes, int64_t n_rows, q8_act_row x, int64_t n, float* y) {
    const int64_t ng = n / (k_qk * k_q4_0r_blocks);
    // As the AVX-512 one: a call's first k_band_lead bytes asked for up front.
    for (int64_t at = 0; at < k_band_lead; at += 64) _mm_prefetch(reinterpret_cast<const char*>(w) + at, _MM_HINT_T0);
    for (int64_t r = 0; r + k_q4_0r_rows <= n_rows; r += k_q4_0r_rows)
        band<B, four, offset>(reinterpret_cast<const B*>(w + r * row_bytes), x, ng, y + r);
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

inline float hmax(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    return _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
}

// quantize_act_q8's row, bit for bit the scalar one's, as the AVX-512 one is (kernels_avx512.cpp): the same
// IEEE max, divide and multiply, vcvtps2dq's round to nearest even, the same f16 narrowing of the scale.
void quantize_act(const float* x, int64_t n, int8_t* qs, float* d, float* dsum) {
    const int64_t nb = n / k_qk;
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int64_t b = 0; b < nb; ++b, x += k_qk) {
        __m256 v[4];
        for (int i = 0; i < 4; ++i) v[i] = _mm256_loadu_ps(x + 8 * i);
        const __m256 a01 = _mm256_max_ps(_mm256_andnot_ps(sign, v[0]), _mm256_andnot_ps(sign, v[1]));
        const __m256 a23 = _mm256_max_ps(_mm256_andnot_ps(sign, v[2]), _mm256_andnot_ps(sign, v[3]));
        const float amax = hmax(_mm256_max_ps(a01, a23));
        const float step = amax / 127.0f;
        const __m256 id = _mm256_set1_ps(step != 0.0f ? 127.0f / amax : 0.0f);
        __m256i q[4];
        for (int i = 0; i < 4; ++i) q[i] = _mm256_cvtps_epi32(_mm256_mul_ps(v[i], id));
        // Packing works within 128-bit lanes; the permute puts the 4-byte runs back in element order.
        const __m256i bytes = _mm256_permutevar8x32_epi32(
            _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3])),
            _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        int8_t* first = qs + q8_act_index(nb, b, 0);
        int8_t* second = qs + q8_act_index(nb, b, 16);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(first), _mm256_castsi256_si128(bytes));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(second), _mm256_extracti128_si256(bytes, 1));
        const __m256i s4 = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
        __m128i s = _mm_add_epi32(_mm256_castsi256_si128(s4), _mm256_extracti128_si256(s4, 1));
        s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
        s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
        d[b] = _cvtsh_ss(_cvtss_sh(step, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        dsum[b] = d[b] * static_cast<float>(_mm_cvtsi128_si32(s));
    }
}

// e^x for |x| <= 88: x = n ln 2 + r with n = round(x / ln 2) and |r| <= ln 2 / 2 (ln 2 in a high part exact
// in 16 bits, so n * high is exact, and a low part); e^r by its Taylor series to degree 7, whose truncation is
// below 7e-9 relative there; 2^n built in the exponent field.
inline __m256 exp_ps(__m256 x) {
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693145751953125f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.428606820309417232e-6f), r);
    __m256 p = _mm256_set1_ps(1.0f / 5040);
    for (const float c : {1.0f / 720, 1.0f / 120, 1.0f / 24, 1.0f / 6, 0.5f, 1.0f, 1.0f})
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
    const __m256i pow2n = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(pow2n));
}

// exp's argument is clamped to [-87, 88]: past those ends 1 + e^-v is 1, giving v, or so large that the result
// is v * 6e-39 where the exact one is smaller still. Measured over every f32 in [-100, 100] against SiLU in
// double: within 2.4 ulp, as the scalar one with the libm exp.
void silu_mul(const float* g, const float* u, float* y, int64_t n) {
    const __m256 one = _mm256_set1_ps(1.0f), lo = _mm256_set1_ps(-87.0f), hi = _mm256_set1_ps(88.0f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_loadu_ps(g + i);
        const __m256 e = exp_ps(_mm256_min_ps(_mm256_max_ps(_mm256_sub_ps(_mm256_setzero_ps(), v), lo), hi));
        const __m256 s = _mm256_div_ps(v, _mm256_add_ps(one, e));
        _mm256_storeu_ps(y + i, u ? _mm256_mul_ps(s, _mm256_loadu_ps(u + i)) : s);
    }
    if (i < n) kernels_scalar().silu_mul(g + i, u ? u + i : nullptr, y + i, n - i);
}

// The lanes of the first `left` floats (all eight when left >= 8), for maskload / maskstore.
inline __m256i first_lanes(int left) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(left), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// Hints for n rows (none when n <= 0) of d floats, stride floats apart.
inline void prefetch_rows(const float* p, int64_t stride, int n, int d) {
    for (int r = 0; r < n; ++r)
        for (int i = 0; i < d; i += 16) _mm_prefetch(reinterpret_cast<const char*>(p + r * stride + i), _MM_HINT_T0);
}

// As the AVX-512 attend_values, with 8-float chunks: rows lane0 .. lane0 + 3, C chunks from c0.
template <int C>
void attend_values(const float* pt, int lane0, int n_rows, const float* v, int64_t kv_stride, int n_kv, int c0, int d,
                   const float* inv, float* y) {
    __m256 acc[4][C] = {};
    __m256i m[C];
    for (int c = 0; c < C; ++c) m[c] = first_lanes(d - c0 - 8 * c);
    for (int j = 0; j < n_kv; ++j) {
        const float* vj = v + j * kv_stride + c0;
        __m256 vv[C];
        for (int c = 0; c < C; ++c) vv[c] = _mm256_maskload_ps(vj + 8 * c, m[c]);
        const float* p = pt + 8 * j + lane0;
        for (int r = 0; r < 4; ++r) {
            const __m256 b = _mm256_broadcast_ss(p + r);
            for (int c = 0; c < C; ++c) acc[r][c] = _mm256_fmadd_ps(b, vv[c], acc[r][c]);
        }
    }
    for (int r = 0; r < 4; ++r)  // a fixed count (and a test inside) keeps acc in registers
        if (r < n_rows)
            for (int c = 0; c < C; ++c)
                _mm256_maskstore_ps(y + static_cast<int64_t>(r) * d + c0 + 8 * c, m[c],
                                    _mm256_mul_ps(acc[r][c], _mm256_set1_ps(inv[lane0 + r])));
}

// As the AVX-512 attend, eight query rows at a time down the lanes; scratch as attend_scratch_floats sizes it.
void attend(const float* q, int n_q, const float* k, const float* v, int64_t kv_stride, int n_kv, int d, float scale,
            float* y, float* scratch) {
    float* qt = scratch;          // [d, 8]
    float* pt = scratch + 8 * d;  // [n_kv, 8]
    for (int r0 = 0; r0 < n_q; r0 += 8) {
        const int nr = std::min(8, n_q - r0);
        const float* qg = q + static_cast<int64_t>(r0) * d;
        for (int i = 0; i < d; ++i)
            for (int r = 0; r < 8; ++r) qt[8 * i + r] = r < nr ? qg[static_cast<int64_t>(r) * d + i] * scale : 0.0f;
        __m256 mx = _mm256_set1_ps(-INFINITY);
        int j = 0;
        if (r0 == 0) {  // the rows the loop below does not fetch ahead
            prefetch_rows(k, kv_stride, std::min(32, n_kv), d);
            prefetch_rows(v, kv_stride, std::min(32, n_kv), d);
        }
        for (; j + 8 <= n_kv; j += 8) {
            prefetch_rows(k + (j + 32) * kv_stride, kv_stride, std::min(8, n_kv - j - 32), d);
            prefetch_rows(v + (j + 32) * kv_stride, kv_stride, std::min(8, n_kv - j - 32), d);
            const float* kj = k + j * kv_stride;
            __m256 a[8];
            for (__m256& x : a) x = _mm256_setzero_ps();
            for (int i = 0; i < d; ++i) {
                const __m256 qi = _mm256_loadu_ps(qt + 8 * i);
                for (int u = 0; u < 8; ++u) a[u] = _mm256_fmadd_ps(_mm256_broadcast_ss(kj + u * kv_stride + i), qi, a[u]);
            }
            for (int u = 0; u < 8; ++u) {
                _mm256_storeu_ps(pt + 8 * (j + u), a[u]);
                mx = _mm256_max_ps(mx, a[u]);
            }
        }
        for (; j < n_kv; ++j) {
            const float* kj = k + j * kv_stride;
            __m256 a = _mm256_setzero_ps();
            for (int i = 0; i < d; ++i) a = _mm256_fmadd_ps(_mm256_broadcast_ss(kj + i), _mm256_loadu_ps(qt + 8 * i), a);
            _mm256_storeu_ps(pt + 8 * j, a);
            mx = _mm256_max_ps(mx, a);
        }
        __m256d sum_lo = _mm256_setzero_pd(), sum_hi = sum_lo;
        for (j = 0; j < n_kv; ++j) {
            const __m256 e = exp_ps(_mm256_max_ps(_mm256_sub_ps(_mm256_loadu_ps(pt + 8 * j), mx), _mm256_set1_ps(-87.0f)));
            _mm256_storeu_ps(pt + 8 * j, e);
            sum_lo = _mm256_add_pd(sum_lo, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
            sum_hi = _mm256_add_pd(sum_hi, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
        }
        alignas(32) float inv[8];
        _mm_store_ps(inv, _mm256_cvtpd_ps(_mm256_div_pd(_mm256_set1_pd(1.0), sum_lo)));
        _mm_store_ps(inv + 4, _mm256_cvtpd_ps(_mm256_div_pd(_mm256_set1_pd(1.0), sum_hi)));
        float* yg = y + static_cast<int64_t>(r0) * d;
        for (int r = 0; r < nr; r += 4)
            for (int c0 = 0; c0 < d; c0 += 16) {
                float* yr = yg + static_cast<int64_t>(r) * d;
                const int rows = std::min(4, nr - r);
                if (d - c0 > 8) attend_values<2>(pt, r, rows, v, kv_stride, n_kv, c0, d, inv, yr);
                else attend_values<1>(pt, r, rows, v, kv_stride, n_kv, c0, d, inv, yr);
            }
    }
}

const kernel_table k_avx2{
    .isa = "avx2",
    .rows_q8_0 = rows_q8_0,
    .rows_q4_0 = rows_q4_0,
    .rows_f16 = rows_half<load_f16, f16_one>,
    .rows_bf16 = rows_half<load_bf16, bf16_one>,
    .rows_q4_0r = rows_regrouped<block_q4_0r, four_q4_0r, 8>,
    .rows_q8_0r = rows_regrouped<block_q8_0r, four_q8_0r, 0>,
    .quantize_act = quantize_act,
    .silu_mul = silu_mul,
    .attend = attend,
};

}  // namespace

const kernel_table* kernels_avx2() {
    const cpu_features f = cpu_features_detect();
    return f.avx2 && f.fma && f.f16c ? &k_avx2 : nullptr;
}

}  // namespace mm
