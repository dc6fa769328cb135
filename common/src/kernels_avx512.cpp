// AVX-512 (F/BW/VL/DQ + VNNI) kernels. Compiled with those flags; called only after cpu_features_detect().
// Quant blocks go four to a register (one half of each per 128-bit lane); int8 products sum exactly in
// int32 (vpdpbusd), sixteen blocks' sums meet in one register, and only their scale multiply is in f32.
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "common/kernels.h"

namespace mm {
namespace {

// Four 16-byte pieces in one register, 128-bit lane k from p[k].
inline __m512i load4x16(const void* p0, const void* p1, const void* p2, const void* p3) {
    __m512i v = _mm512_castsi128_si512(_mm_loadu_si128(static_cast<const __m128i*>(p0)));
    v = _mm512_inserti32x4(v, _mm_loadu_si128(static_cast<const __m128i*>(p1)), 1);
    v = _mm512_inserti32x4(v, _mm_loadu_si128(static_cast<const __m128i*>(p2)), 2);
    return _mm512_inserti32x4(v, _mm_loadu_si128(static_cast<const __m128i*>(p3)), 3);
}

// Signed x signed int8 dot via vpdpbusd (unsigned x signed): |w| times x with w's sign moved onto x.
inline __m512i dot_s8(__m512i acc, __m512i w, __m512i x) {
    const __m512i sx = _mm512_mask_sub_epi8(x, _mm512_movepi8_mask(w), _mm512_setzero_si512(), x);
    return _mm512_dpbusd_epi32(acc, _mm512_abs_epi8(w), sx);
}

// Integer dot of one four-block group with the activations: 128-bit lane k holds block k's four partial sums.
inline __m512i group_q8_0(const block_q8_0* w, const int8_t* xq) {
    const __m512i lo = load4x16(w[0].qs, w[1].qs, w[2].qs, w[3].qs);
    const __m512i hi = load4x16(w[0].qs + 16, w[1].qs + 16, w[2].qs + 16, w[3].qs + 16);
    return dot_s8(dot_s8(_mm512_setzero_si512(), lo, _mm512_loadu_si512(xq)), hi, _mm512_loadu_si512(xq + 64));
}

// q4_0 nibbles are unsigned (0..15), so vpdpbusd takes them as they are; the -8 is folded in by the caller.
inline __m512i group_q4_0(const block_q4_0* w, const int8_t* xq) {
    const __m512i v = load4x16(w[0].qs, w[1].qs, w[2].qs, w[3].qs);
    const __m512i m = _mm512_set1_epi8(0x0f);
    const __m512i lo = _mm512_and_si512(v, m), hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), m);
    return _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, _mm512_loadu_si512(xq)), hi,
                               _mm512_loadu_si512(xq + 64));
}

// Four groups' partial sums -> one sum per block, lane 4k + j holding block 4j + k of the sixteen.
inline __m512i sum_groups(__m512i r0, __m512i r1, __m512i r2, __m512i r3) {
    const __m512i u01 = _mm512_add_epi32(_mm512_unpacklo_epi32(r0, r1), _mm512_unpackhi_epi32(r0, r1));
    const __m512i u23 = _mm512_add_epi32(_mm512_unpacklo_epi32(r2, r3), _mm512_unpackhi_epi32(r2, r3));
    return _mm512_add_epi32(_mm512_unpacklo_epi64(u01, u23), _mm512_unpackhi_epi64(u01, u23));
}

// Block index within the sixteen for each lane of sum_groups' result.
inline __m512i lane_blocks() { return _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15); }

// The sixteen blocks' f16 scales in sum_groups' lane order, picked out of 64-byte loads of the blocks
// (word shuffles are far cheaper than a gather). Lane 4k + j wants block k of group j.
inline __m512 scales_q4_0(const block_q4_0* w, int n_groups) {
    // A q4_0 group is 72 bytes; its four scales sit at words 0, 9, 18, 27 of a 64-byte load at its start.
    const __m512i z = _mm512_setzero_si512();
    const __m512i g0 = _mm512_loadu_si512(w);
    const __m512i g1 = n_groups > 1 ? _mm512_loadu_si512(w + 4) : z;
    const __m512i g2 = n_groups > 2 ? _mm512_loadu_si512(w + 8) : z;
    const __m512i g3 = n_groups > 3 ? _mm512_loadu_si512(w + 12) : z;
    // Lanes of groups 0 / 2 read the first register (word 9k), lanes of groups 1 / 3 the second (32 + 9k).
    const __m512i idx = _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                         59, 27, 59, 27, 50, 18, 50, 18, 41, 9, 41, 9, 32, 0, 32, 0);
    const __m512i t01 = _mm512_permutex2var_epi16(g0, idx, g1);
    const __m512i t23 = _mm512_permutex2var_epi16(g2, idx, g3);
    const __m512i d = _mm512_mask_blend_epi16(0xCCCC, t01, t23);  // lanes of groups 2, 3 from t23
    return _mm512_cvtph_ps(_mm512_castsi512_si256(d));
}

inline __m512 scales_q8_0(const block_q8_0* w, int n_groups) {
    // A q8_0 group is 136 bytes: a 64-byte load at block 0 holds the scales of blocks 0, 1 (words 0, 17), one
    // at block 2 those of blocks 2, 3. The same word pick serves every group; blends then take each group's lanes.
    const __m512i idx = _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                         49, 49, 49, 49, 32, 32, 32, 32, 17, 17, 17, 17, 0, 0, 0, 0);
    auto group = [&](int j) {
        return _mm512_permutex2var_epi16(_mm512_loadu_si512(w + 4 * j), idx, _mm512_loadu_si512(w + 4 * j + 2));
    };
    __m512i d = group(0);
    if (n_groups > 1) d = _mm512_mask_blend_epi16(0x2222, d, group(1));
    if (n_groups > 2) d = _mm512_mask_blend_epi16(0x4444, d, group(2));
    if (n_groups > 3) d = _mm512_mask_blend_epi16(0x8888, d, group(3));
    return _mm512_cvtph_ps(_mm512_castsi512_si256(d));
}

// Up to sixteen blocks (n_groups full groups) starting at block i, scaled and summed into f32 lanes, plus the
// q4_0 offset term d_w * dsum in *corr when asked. Lanes of missing groups come out 0.
template <class B, __m512i (*group)(const B*, const int8_t*), __m512 (*scales)(const B*, int)>
inline __m512 sixteen(const B* w, q8_act_row x, int64_t i, int n_groups, __m512 acc, __m512* corr) {
    const __m512i zero = _mm512_setzero_si512();
    const __m512i r0 = group(w + i, x.qs + i * k_qk);
    const __m512i r1 = n_groups > 1 ? group(w + i + 4, x.qs + (i + 4) * k_qk) : zero;
    const __m512i r2 = n_groups > 2 ? group(w + i + 8, x.qs + (i + 8) * k_qk) : zero;
    const __m512i r3 = n_groups > 3 ? group(w + i + 12, x.qs + (i + 12) * k_qk) : zero;
    const __m512i sums = sum_groups(r0, r1, r2, r3);

    const __m512i blk = lane_blocks();
    const __m512 dw = scales(w + i, n_groups);
    const __mmask16 loaded = static_cast<__mmask16>((1u << (4 * n_groups)) - 1);
    const __m512 xd = _mm512_permutexvar_ps(blk, _mm512_maskz_loadu_ps(loaded, x.d + i));
    if (corr) *corr = _mm512_fmadd_ps(dw, _mm512_permutexvar_ps(blk, _mm512_maskz_loadu_ps(loaded, x.dsum + i)), *corr);
    return _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums), _mm512_mul_ps(dw, xd), acc);
}

float row_q8_0(const block_q8_0* w, q8_act_row x, int64_t nb) {
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    const int64_t grouped = nb / 4 * 4;
    int64_t i = 0;
    for (; i + 32 <= grouped; i += 32) {
        acc0 = sixteen<block_q8_0, group_q8_0, scales_q8_0>(w, x, i, 4, acc0, nullptr);
        acc1 = sixteen<block_q8_0, group_q8_0, scales_q8_0>(w, x, i + 16, 4, acc1, nullptr);
    }
    while (i < grouped) {
        const int g = static_cast<int>(std::min<int64_t>(4, (grouped - i) / 4));
        acc0 = sixteen<block_q8_0, group_q8_0, scales_q8_0>(w, x, i, g, acc0, nullptr);
        i += 4 * g;
    }
    float tail = 0.0f;  // up to three plain blocks
    for (; i < nb; ++i) {
        int32_t s = 0;
        for (int j = 0; j < k_qk; ++j) s += w[i].qs[j] * x.qs[i * k_qk + j];
        tail += _cvtsh_ss(w[i].d) * x.d[i] * static_cast<float>(s);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1)) + tail;
}

float row_q4_0(const block_q4_0* w, q8_act_row x, int64_t nb) {
    // sum over blocks of d_w * d_x * (sum(nib * x) - 8 * sum(x)): the second term is `corr`.
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps(), corr = _mm512_setzero_ps();
    const int64_t grouped = nb / 4 * 4;
    int64_t i = 0;
    for (; i + 32 <= grouped; i += 32) {
        acc0 = sixteen<block_q4_0, group_q4_0, scales_q4_0>(w, x, i, 4, acc0, &corr);
        acc1 = sixteen<block_q4_0, group_q4_0, scales_q4_0>(w, x, i + 16, 4, acc1, &corr);
    }
    while (i < grouped) {
        const int g = static_cast<int>(std::min<int64_t>(4, (grouped - i) / 4));
        acc0 = sixteen<block_q4_0, group_q4_0, scales_q4_0>(w, x, i, g, acc0, &corr);
        i += 4 * g;
    }
    float tail = 0.0f;
    for (; i < nb; ++i) {
        int32_t s = 0;
        for (int j = 0; j < k_qk / 2; ++j)
            s += ((w[i].qs[j] & 0x0f) - 8) * x.qs[i * k_qk + j] + ((w[i].qs[j] >> 4) - 8) * x.qs[i * k_qk + j + 16];
        tail += _cvtsh_ss(w[i].d) * x.d[i] * static_cast<float>(s);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1)) - 8.0f * _mm512_reduce_add_ps(corr) + tail;
}

void rows_q8_0(const std::byte* w, size_t row_bytes, int64_t n_rows, q8_act_row x, int64_t n, float* y) {
    for (int64_t r = 0; r < n_rows; ++r) y[r] = row_q8_0(reinterpret_cast<const block_q8_0*>(w + r * row_bytes), x, n / k_qk);
}

void rows_q4_0(const std::byte* w, size_t row_bytes, int64_t n_rows, q8_act_row x, int64_t n, float* y) {
    for (int64_t r = 0; r < n_rows; ++r) y[r] = row_q4_0(reinterpret_cast<const block_q4_0*>(w + r * row_bytes), x, n / k_qk);
}

// q4_0r / q8_0r: sixteen blocks' quants in plain loads and their scales in one, already in sum_groups' lane
// order; a four-row band's rows share the activation loads and meet in one reduction each at the end. Both
// hold unsigned quants (q4_0's nibbles, q8_0r's offset-binary bytes), so vpdpbusd takes them as they are and
// each block's offset (8 or 128 times sum(x)) comes off in its own FMA. The integer sums are exact, so
// results differ from the plain kernels only in the order and grouping of their f32 operations.
struct band_acts {
    __m512 xd, xoff;  // the sixteen blocks' activation scales and offset * d * sum(qs), in lane order
};

// Sixteen blocks' unsigned quants, four blocks' first and second halves per register.
struct sixteen_quants {
    __m512i lo[4], hi[4];
};

inline sixteen_quants quants_q4_0r(const block_q4_0r& w) {
    const __m512i m = _mm512_set1_epi8(0x0f);
    sixteen_quants q;
    for (int j = 0; j < 4; ++j) {
        const __m512i v = _mm512_loadu_si512(w.qs[4 * j]);
        q.lo[j] = _mm512_and_si512(v, m);
        q.hi[j] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m);
    }
    return q;
}

inline sixteen_quants quants_q8_0r(const block_q8_0r& w) {
    sixteen_quants q;
    for (int j = 0; j < 4; ++j) {
        q.lo[j] = _mm512_loadu_si512(w.qs[j][0]);
        q.hi[j] = _mm512_loadu_si512(w.qs[j][1]);
    }
    return q;
}

// The sixteen blocks' integer dot products with one activation row, in sum_groups' lane order.
inline __m512i sums_of(const sixteen_quants& q, const int8_t* xq) {
    auto group = [&](int j) {
        return _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), q.lo[j], _mm512_loadu_si512(xq + 128 * j)),
                                   q.hi[j], _mm512_loadu_si512(xq + 128 * j + 64));
    };
    return sum_groups(group(0), group(1), group(2), group(3));
}

inline band_acts acts_at(const q8_act_row& x, int64_t b0, __m512i blk, __m512 off) {
    return {_mm512_permutexvar_ps(blk, _mm512_loadu_ps(x.d + b0)),
            _mm512_mul_ps(off, _mm512_permutexvar_ps(blk, _mm512_loadu_ps(x.dsum + b0)))};
}

// acc + sum over the sixteen blocks of d_w * (d_x * sums - offset * d_x * sum(x)).
inline __m512 sixteen_regrouped(__m512 dw, const sixteen_quants& q, const int8_t* xq, const band_acts& a, __m512 acc) {
    return _mm512_fmadd_ps(dw, _mm512_fmsub_ps(a.xd, _mm512_cvtepi32_ps(sums_of(q, xq)), a.xoff), acc);
}

template <class B>
inline __m512 scales_of(const B& w) { return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.d))); }

// A horizontal sum with extracts, not casts: gcc 12's cast intrinsics (inside _mm512_reduce_add_ps too) trip
// its own -Wuninitialized when inlined here.
inline float hsum(__m512 v) {
    const __m256 s8 = _mm256_add_ps(_mm512_extractf32x8_ps(v, 0), _mm512_extractf32x8_ps(v, 1));
    __m128 s4 = _mm_add_ps(_mm256_extractf128_ps(s8, 0), _mm256_extractf128_ps(s8, 1));
    s4 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    return _mm_cvtss_f32(_mm_add_ss(s4, _mm_movehdup_ps(s4)));
}

// How far ahead of its reads a band asks for its bytes: 4 KB measured best on Zen 5 and on Ice Lake (there,
// in decode: 2 KB lost 3-5 %, 6 KB was level, no prefetch lost 8-10 %, to L2 only 5 %).
constexpr int64_t k_band_lead = 4096;

// One four-row band against A activation rows (x[0..A), row a's results at y + a * y_stride): its bytes are
// read front to back, each stretch's four rows side by side, and each stretch's quants are unpacked once for
// all A rows. Each (row, weight row) result goes through the same operations whatever A is, so prefill's A = 2
// gives bit for bit what decode's A = 1 does (matmul_mode::rowwise). `offset` is the quants' unsigned offset
// (q4_0's 8, q8_0r's 128). On Ice Lake, in L2, per core: q4_0r 76 -> 81 GMAC/s with A = 2 (the nibble
// unpacking shared); A = 4 spilled registers and lost 10 %; q8_0r, with nothing to unpack, gained nothing.
template <int A, class B, sixteen_quants (*quants)(const B&)>
void band(const B* w, const q8_act_row* x, int64_t ng, float offset, float* y, int64_t y_stride) {
    const __m512i blk = lane_blocks();
    const __m512 off = _mm512_set1_ps(offset);
    __m512 acc[k_q4_0r_rows][A] = {};
    for (int64_t g = 0; g < ng; ++g) {
        const int64_t b0 = g * k_q4_0r_blocks;
        band_acts a[A];
        for (int i = 0; i < A; ++i) a[i] = acts_at(x[i], b0, blk, off);
        // k_band_lead ahead: measured level with or ahead of the plain kernels from DRAM (bench_runtime), where
        // the hardware prefetcher alone left q8_0r 10-20 % behind. Past the band's end it is only a hint.
        constexpr int64_t stride = k_q4_0r_rows * sizeof(B), lead = (k_band_lead + stride - 1) / stride;
        const char* ahead = reinterpret_cast<const char*>(w + (g + lead) * k_q4_0r_rows);
        for (size_t at = 0; at < k_q4_0r_rows * sizeof(B); at += 64) _mm_prefetch(ahead + at, _MM_HINT_T0);
#pragma GCC unroll 4
        for (int r = 0; r < k_q4_0r_rows; ++r) {
            const B& wr = w[g * k_q4_0r_rows + r];
            const sixteen_quants q = quants(wr);
            const __m512 dw = scales_of(wr);
            for (int i = 0; i < A; ++i) acc[r][i] = sixteen_regrouped(dw, q, x[i].qs + b0 * k_qk, a[i], acc[r][i]);
        }
    }
    for (int i = 0; i < A; ++i)
#pragma GCC unroll 4
        for (int r = 0; r < k_q4_0r_rows; ++r) y[i * y_stride + r] = hsum(acc[r][i]);
}

// w is the first of n_rows rows (a multiple of 4, at a band's start); row_bytes is a row's share of a band.
template <int A, class B, sixteen_quants (*quants)(const B&), int offset>
void rows_regrouped_n(const std::byte* w, size_t row_bytes, int64_t n_rows, const q8_act_row* x, int64_t n, float* y,
                      int64_t y_stride) {
    const int64_t ng = n / (k_qk * k_q4_0r_blocks);
    // The bands fetch ahead of themselves, so only a call's first k_band_lead bytes would wait on DRAM one
    // miss at a time: ask for them now (decode calls this cold some 90 times a token; +2 % measured).
    for (int64_t at = 0; at < k_band_lead; at += 64) _mm_prefetch(reinterpret_cast<const char*>(w) + at, _MM_HINT_T0);
    for (int64_t r = 0; r + k_q4_0r_rows <= n_rows; r += k_q4_0r_rows)
        band<A, B, quants>(reinterpret_cast<const B*>(w + r * row_bytes), x, ng, static_cast<float>(offset), y + r, y_stride);
}

template <class B, sixteen_quants (*quants)(const B&), int offset>
void rows_regrouped(const std::byte* w, size_t row_bytes, int64_t n_rows, q8_act_row x, int64_t n, float* y) {
    rows_regrouped_n<1, B, quants, offset>(w, row_bytes, n_rows, &x, n, y, 0);
}

inline __m512 load_f16(const uint16_t* p, __mmask16 m) { return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p)); }
inline __m512 load_bf16(const uint16_t* p, __mmask16 m) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p)), 16));
}

template <__m512 (*load)(const uint16_t*, __mmask16)>
void rows_half(const std::byte* w, size_t row_bytes, int64_t n_rows, const float* x, int64_t n, float* y) {
    for (int64_t r = 0; r < n_rows; ++r) {
        auto* h = reinterpret_cast<const uint16_t*>(w + r * row_bytes);
        __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
        int64_t i = 0;
        for (; i + 32 <= n; i += 32) {
            acc0 = _mm512_fmadd_ps(load(h + i, 0xffff), _mm512_loadu_ps(x + i), acc0);
            acc1 = _mm512_fmadd_ps(load(h + i + 16, 0xffff), _mm512_loadu_ps(x + i + 16), acc1);
        }
        for (; i < n; i += 16) {
            const __mmask16 m = n - i >= 16 ? 0xffff : static_cast<__mmask16>((1u << (n - i)) - 1);
            acc0 = _mm512_fmadd_ps(load(h + i, m), _mm512_maskz_loadu_ps(m, x + i), acc0);
        }
        y[r] = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
    }
}

inline float hmax(__m512 v) {  // as hsum, with extracts
    const __m256 m8 = _mm256_max_ps(_mm512_extractf32x8_ps(v, 0), _mm512_extractf32x8_ps(v, 1));
    __m128 m4 = _mm_max_ps(_mm256_extractf128_ps(m8, 0), _mm256_extractf128_ps(m8, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    return _mm_cvtss_f32(_mm_max_ss(m4, _mm_movehdup_ps(m4)));
}

// quantize_act_q8's row, bit for bit the scalar one's: max |x| and the products are the same IEEE
// operations, vcvtps2dq rounds to nearest even as nearbyint does, and the scale's f16 rounding is the same
// round-to-nearest-even narrowing.
void quantize_act(const float* x, int64_t n, int8_t* qs, float* d, float* dsum) {
    const int64_t nb = n / k_qk;
    const __m512 sign = _mm512_set1_ps(-0.0f);
    for (int64_t b = 0; b < nb; ++b, x += k_qk) {
        const __m512 lo = _mm512_loadu_ps(x), hi = _mm512_loadu_ps(x + 16);
        const float amax = hmax(_mm512_max_ps(_mm512_andnot_ps(sign, lo), _mm512_andnot_ps(sign, hi)));
        const float step = amax / 127.0f;
        const __m512 id = _mm512_set1_ps(step != 0.0f ? 127.0f / amax : 0.0f);
        const __m512i qlo = _mm512_cvtps_epi32(_mm512_mul_ps(lo, id)), qhi = _mm512_cvtps_epi32(_mm512_mul_ps(hi, id));
        // Halves go where q8_act_index puts them (four-block groups hold their first halves, then their second).
        int8_t* first = qs + q8_act_index(nb, b, 0);
        int8_t* second = qs + q8_act_index(nb, b, 16);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(first), _mm512_cvtepi32_epi8(qlo));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(second), _mm512_cvtepi32_epi8(qhi));
        // Small integers (|sum| <= 32 * 127): exact in f32 whatever the order of the additions.
        const auto sum = static_cast<int32_t>(hsum(_mm512_cvtepi32_ps(_mm512_add_epi32(qlo, qhi))));
        d[b] = _cvtsh_ss(_cvtss_sh(step, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        dsum[b] = d[b] * static_cast<float>(sum);
    }
}

// e^x as kernels_avx2.cpp forms it (same reduction and series), with 2^n applied by scalef.
inline __m512 exp_ps(__m512 x) {
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606820309417232e-6f), r);
    __m512 p = _mm512_set1_ps(1.0f / 5040);
    for (const float c : {1.0f / 720, 1.0f / 120, 1.0f / 24, 1.0f / 6, 0.5f, 1.0f, 1.0f})
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
    return _mm512_scalef_ps(p, n);
}

// As the AVX2 one, the tail under a mask.
void silu_mul(const float* g, const float* u, float* y, int64_t n) {
    const __m512 one = _mm512_set1_ps(1.0f), lo = _mm512_set1_ps(-87.0f), hi = _mm512_set1_ps(88.0f);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? 0xffff : static_cast<__mmask16>((1u << (n - i)) - 1);
        const __m512 v = _mm512_maskz_loadu_ps(m, g + i);
        const __m512 e = exp_ps(_mm512_min_ps(_mm512_max_ps(_mm512_sub_ps(_mm512_setzero_ps(), v), lo), hi));
        const __m512 s = _mm512_div_ps(v, _mm512_add_ps(one, e));
        _mm512_mask_storeu_ps(y + i, m, u ? _mm512_mul_ps(s, _mm512_maskz_loadu_ps(m, u + i)) : s);
    }
}

// Hints for n rows (none when n <= 0) of d floats, stride floats apart.
inline void prefetch_rows(const float* p, int64_t stride, int n, int d) {
    for (int r = 0; r < n; ++r)
        for (int i = 0; i < d; i += 16) _mm_prefetch(reinterpret_cast<const char*>(p + r * stride + i), _MM_HINT_T0);
}

// attend's last step for rows lane0 .. lane0 + 3 of the group and C 16-float chunks of the head from c0:
// y[r][c] = inv[r] * sum_j p[j][r] v[j][c], the rows' probabilities broadcast from their lanes of pt.
template <int C>
void attend_values(const float* pt, int lane0, int n_rows, const float* v, int64_t kv_stride, int n_kv, int c0, int d,
                   const float* inv, float* y) {
    __m512 acc[4][C] = {};
    __mmask16 m[C];
    for (int c = 0; c < C; ++c) {
        const int left = d - c0 - 16 * c;
        m[c] = left >= 16 ? 0xffff : static_cast<__mmask16>((1u << left) - 1);
    }
    for (int j = 0; j < n_kv; ++j) {
        const float* vj = v + j * kv_stride + c0;
        __m512 vv[C];
        for (int c = 0; c < C; ++c) vv[c] = _mm512_maskz_loadu_ps(m[c], vj + 16 * c);
        const float* p = pt + 16 * j + lane0;
        for (int r = 0; r < 4; ++r) {
            const __m512 b = _mm512_set1_ps(p[r]);
            for (int c = 0; c < C; ++c) acc[r][c] = _mm512_fmadd_ps(b, vv[c], acc[r][c]);
        }
    }
    for (int r = 0; r < 4; ++r)  // a fixed count (and a test inside) keeps acc in registers
        if (r < n_rows)
            for (int c = 0; c < C; ++c)
                _mm512_mask_storeu_ps(y + static_cast<int64_t>(r) * d + c0 + 16 * c, m[c],
                                      _mm512_mul_ps(acc[r][c], _mm512_set1_ps(inv[lane0 + r])));
}

// Sixteen query rows at a time down the lanes: a score is d FMAs of a broadcast key element with the rows'
// (scaled) query elements, eight keys at once; the softmax then runs on whole vectors, its sum in double.
void attend(const float* q, int n_q, const float* k, const float* v, int64_t kv_stride, int n_kv, int d, float scale,
            float* y, float* scratch) {
    float* qt = scratch;           // [d, 16]
    float* pt = scratch + 16 * d;  // [n_kv, 16]: scores, then e^(score - max)
    for (int r0 = 0; r0 < n_q; r0 += 16) {
        const int nr = std::min(16, n_q - r0);
        const float* qg = q + static_cast<int64_t>(r0) * d;
        for (int i = 0; i < d; ++i)
            for (int r = 0; r < 16; ++r) qt[16 * i + r] = r < nr ? qg[static_cast<int64_t>(r) * d + i] * scale : 0.0f;
        __m512 mx = _mm512_set1_ps(-INFINITY);
        int j = 0;
        if (r0 == 0) {  // the rows the loop below does not fetch ahead
            prefetch_rows(k, kv_stride, std::min(32, n_kv), d);
            prefetch_rows(v, kv_stride, std::min(32, n_kv), d);
        }
        for (; j + 8 <= n_kv; j += 8) {
            // The cache rows come from DRAM (decode's weight stream has evicted them): fetch K and V rows
            // 32 keys ahead, which keeps the FMAs, not the memory latency, the limit.
            prefetch_rows(k + (j + 32) * kv_stride, kv_stride, std::min(8, n_kv - j - 32), d);
            prefetch_rows(v + (j + 32) * kv_stride, kv_stride, std::min(8, n_kv - j - 32), d);
            const float* kj = k + j * kv_stride;
            // Eight keys' chains, so FMA latency (4 cycles, 2 issued per cycle) is covered.
            __m512 a[8];
            for (__m512& x : a) x = _mm512_setzero_ps();
            for (int i = 0; i < d; ++i) {
                const __m512 qi = _mm512_loadu_ps(qt + 16 * i);
                for (int u = 0; u < 8; ++u) a[u] = _mm512_fmadd_ps(_mm512_set1_ps(kj[u * kv_stride + i]), qi, a[u]);
            }
            for (int u = 0; u < 8; ++u) {
                _mm512_storeu_ps(pt + 16 * (j + u), a[u]);
                mx = _mm512_max_ps(mx, a[u]);
            }
        }
        for (; j < n_kv; ++j) {
            const float* kj = k + j * kv_stride;
            __m512 a = _mm512_setzero_ps();
            for (int i = 0; i < d; ++i) a = _mm512_fmadd_ps(_mm512_set1_ps(kj[i]), _mm512_loadu_ps(qt + 16 * i), a);
            _mm512_storeu_ps(pt + 16 * j, a);
            mx = _mm512_max_ps(mx, a);
        }
        // Scores at or below the max: clamped at -87, where e^x (1.6e-38) is nothing beside the max's 1.
        __m512d sum_lo = _mm512_setzero_pd(), sum_hi = sum_lo;
        for (j = 0; j < n_kv; ++j) {
            const __m512 e = exp_ps(_mm512_max_ps(_mm512_sub_ps(_mm512_loadu_ps(pt + 16 * j), mx), _mm512_set1_ps(-87.0f)));
            _mm512_storeu_ps(pt + 16 * j, e);
            sum_lo = _mm512_add_pd(sum_lo, _mm512_cvtps_pd(_mm512_extractf32x8_ps(e, 0)));
            sum_hi = _mm512_add_pd(sum_hi, _mm512_cvtps_pd(_mm512_extractf32x8_ps(e, 1)));
        }
        alignas(64) float inv[16];
        _mm256_store_ps(inv, _mm512_cvtpd_ps(_mm512_div_pd(_mm512_set1_pd(1.0), sum_lo)));
        _mm256_store_ps(inv + 8, _mm512_cvtpd_ps(_mm512_div_pd(_mm512_set1_pd(1.0), sum_hi)));
        float* yg = y + static_cast<int64_t>(r0) * d;
        for (int r = 0; r < nr; r += 4)
            for (int c0 = 0; c0 < d; c0 += 64) {
                float* yr = yg + static_cast<int64_t>(r) * d;
                const int rows = std::min(4, nr - r);
                switch (std::min(4, (d - c0 + 15) / 16)) {
                    case 1: attend_values<1>(pt, r, rows, v, kv_stride, n_kv, c0, d, inv, yr); break;
                    case 2: attend_values<2>(pt, r, rows, v, kv_stride, n_kv, c0, d, inv, yr); break;
                    case 3: attend_values<3>(pt, r, rows, v, kv_stride, n_kv, c0, d, inv, yr); break;
                    default: attend_values<4>(pt, r, rows, v, kv_stride, n_kv, c0, d, inv, yr); break;
                }
            }
    }
}

const kernel_table k_avx512{
    .isa = "avx512",
    .rows_q8_0 = rows_q8_0,
    .rows_q4_0 = rows_q4_0,
    .rows_f16 = rows_half<load_f16>,
    .rows_bf16 = rows_half<load_bf16>,
    .rows_q4_0r = rows_regrouped<block_q4_0r, quants_q4_0r, 8>,
    .rows_q8_0r = rows_regrouped<block_q8_0r, quants_q8_0r, 128>,
    .rows2_q4_0r = rows_regrouped_n<2, block_q4_0r, quants_q4_0r, 8>,
    .quantize_act = quantize_act,
    .silu_mul = silu_mul,
    .attend = attend,
};

}  // namespace

const kernel_table* kernels_avx512() {
    const cpu_features f = cpu_features_detect();
    const bool ok = f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq && f.avx512vnni && f.f16c && f.fma;
    return ok ? &k_avx512 : nullptr;
}

}  // namespace mm
