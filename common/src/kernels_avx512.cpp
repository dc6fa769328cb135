// AVX-512 (F/BW/VL/DQ + VNNI) kernels. Compiled with those flags; called only after cpu_features_detect().
// Two quant blocks fill one 512-bit register; int8 products sum exactly in int32 (vpdpbusd), and only the
// per-block scale multiply is in f32.
#include <immintrin.h>

#include "common/kernels.h"

namespace mm {
namespace {

// Two blocks' f16 scales -> [d0 x 8, d1 x 8] f32, times the activations' scales.
inline __m512 pair_scales(uint16_t h0, uint16_t h1, float x0, float x1) {
    const __m128 d = _mm_cvtph_ps(_mm_cvtsi32_si128(static_cast<int>(h0 | (static_cast<uint32_t>(h1) << 16))));
    const __m128 s = _mm_mul_ps(d, _mm_setr_ps(x0, x1, 0.0f, 0.0f));
    const __m512i idx = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
    return _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(s));
}

inline __m512i load_pair(const void* a, const void* b) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(static_cast<const __m256i*>(a))),
                              _mm256_loadu_si256(static_cast<const __m256i*>(b)), 1);
}

// Signed x signed int8 dot via vpdpbusd (unsigned x signed): |w| times x with w's sign moved onto x.
inline __m512i dot_s8_pair(__m512i w, __m512i x) {
    const __mmask64 neg = _mm512_movepi8_mask(w);
    const __m512i sx = _mm512_mask_sub_epi8(x, neg, _mm512_setzero_si512(), x);
    return _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_abs_epi8(w), sx);
}

float row_q8_0(const block_q8_0* w, const block_q8_act* x, int64_t nb) {
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 4 <= nb; i += 4) {
        const __m512i p0 = dot_s8_pair(load_pair(w[i].qs, w[i + 1].qs), load_pair(x[i].qs, x[i + 1].qs));
        const __m512i p1 = dot_s8_pair(load_pair(w[i + 2].qs, w[i + 3].qs), load_pair(x[i + 2].qs, x[i + 3].qs));
        acc0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p0), pair_scales(w[i].d, w[i + 1].d, x[i].d, x[i + 1].d), acc0);
        acc1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p1), pair_scales(w[i + 2].d, w[i + 3].d, x[i + 2].d, x[i + 3].d), acc1);
    }
    for (; i + 2 <= nb; i += 2) {
        const __m512i p = dot_s8_pair(load_pair(w[i].qs, w[i + 1].qs), load_pair(x[i].qs, x[i + 1].qs));
        acc0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), pair_scales(w[i].d, w[i + 1].d, x[i].d, x[i + 1].d), acc0);
    }
    float tail = 0.0f;
    if (i < nb) {  // one block left: pair it with itself and keep the low half
        const __m512i p = dot_s8_pair(load_pair(w[i].qs, w[i].qs), load_pair(x[i].qs, x[i].qs));
        const __m512 s = pair_scales(w[i].d, 0, x[i].d, 0.0f);
        tail = _mm512_reduce_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(p), s));
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1)) + tail;
}

// Two q4_0 blocks -> 64 unsigned nibbles laid out as the activations are: [b0 lo, b0 hi, b1 lo, b1 hi].
inline __m512i unpack_q4_pair(const block_q4_0& a, const block_q4_0& b) {
    const __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a.qs))),
                                              _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.qs)), 1);
    const __m512i both = _mm512_inserti64x4(_mm512_castsi256_si512(v), _mm256_srli_epi16(v, 4), 1);  // [a lo, b lo, a hi, b hi]
    const __m512i nib = _mm512_and_si512(both, _mm512_set1_epi8(0x0f));
    return _mm512_shuffle_i64x2(nib, nib, _MM_SHUFFLE(3, 1, 2, 0));
}

float row_q4_0(const block_q4_0* w, const block_q8_act* x, int64_t nb) {
    // Nibbles are unsigned (0..15) so vpdpbusd takes them as they are; the -8 offset is folded in per block
    // as -8 * d_w * d_x * sum(x.qs), accumulated separately in `corr`.
    __m512 acc = _mm512_setzero_ps();
    float corr = 0.0f;
    int64_t i = 0;
    for (; i + 2 <= nb; i += 2) {
        const __m512i p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), unpack_q4_pair(w[i], w[i + 1]),
                                              load_pair(x[i].qs, x[i + 1].qs));
        const __m512 s = pair_scales(w[i].d, w[i + 1].d, x[i].d, x[i + 1].d);
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), s, acc);
        corr += s[0] * static_cast<float>(x[i].sum) + s[8] * static_cast<float>(x[i + 1].sum);
    }
    if (i < nb) {
        const __m512i p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), unpack_q4_pair(w[i], w[i]), load_pair(x[i].qs, x[i].qs));
        const __m512 s = pair_scales(w[i].d, 0, x[i].d, 0.0f);
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), s, acc);
        corr += s[0] * static_cast<float>(x[i].sum);
    }
    return _mm512_reduce_add_ps(acc) - 8.0f * corr;
}

void rows_q8_0(const std::byte* w, size_t row_bytes, int64_t n_rows, const block_q8_act* x, int64_t n, float* y) {
    for (int64_t r = 0; r < n_rows; ++r) y[r] = row_q8_0(reinterpret_cast<const block_q8_0*>(w + r * row_bytes), x, n / k_qk);
}

void rows_q4_0(const std::byte* w, size_t row_bytes, int64_t n_rows, const block_q8_act* x, int64_t n, float* y) {
    for (int64_t r = 0; r < n_rows; ++r) y[r] = row_q4_0(reinterpret_cast<const block_q4_0*>(w + r * row_bytes), x, n / k_qk);
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

const kernel_table k_avx512{
    .isa = "avx512",
    .rows_q8_0 = rows_q8_0,
    .rows_q4_0 = rows_q4_0,
    .rows_f16 = rows_half<load_f16>,
    .rows_bf16 = rows_half<load_bf16>,
};

}  // namespace

const kernel_table* kernels_avx512() {
    const cpu_features f = cpu_features_detect();
    const bool ok = f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq && f.avx512vnni && f.f16c && f.fma;
    return ok ? &k_avx512 : nullptr;
}

}  // namespace mm
