// Plain C++ kernels: the fallback for CPUs without AVX2, and what the vector kernels are tested against.
#include <algorithm>
#include <cmath>

#include "common/fp16.h"
#include "common/kernels.h"

namespace mm {
namespace {

void rows_q8_0(const std::byte* w, size_t row_bytes, int64_t n_rows, q8_act_row x, int64_t n, float* y) {
    for (int64_t r = 0; r < n_rows; ++r) {
        auto* b = reinterpret_cast<const block_q8_0*>(w + r * row_bytes);
        float acc = 0.0f;
        for (int64_t i = 0; i < n / k_qk; ++i) {
            int32_t s = 0;
            for (int j = 0; j < k_qk; ++j) s += b[i].qs[j] * x.qs[q8_act_index(x.n_blocks, i, j)];
            acc += f16_to_f32(b[i].d) * x.d[i] * static_cast<float>(s);
        }
        y[r] = acc;
    }
}

void rows_q4_0(const std::byte* w, size_t row_bytes, int64_t n_rows, q8_act_row x, int64_t n, float* y) {
    for (int64_t r = 0; r < n_rows; ++r) {
        auto* b = reinterpret_cast<const block_q4_0*>(w + r * row_bytes);
        float acc = 0.0f;
        for (int64_t i = 0; i < n / k_qk; ++i) {
            int32_t s = 0;
            for (int j = 0; j < k_qk / 2; ++j)
                s += ((b[i].qs[j] & 0x0f) - 8) * x.qs[q8_act_index(x.n_blocks, i, j)] +
                     ((b[i].qs[j] >> 4) - 8) * x.qs[q8_act_index(x.n_blocks, i, j + k_qk / 2)];
            acc += f16_to_f32(b[i].d) * x.d[i] * static_cast<float>(s);
        }
        y[r] = acc;
    }
}

template <float (*to_f32)(uint16_t)>
void rows_half(const std::byte* w, size_t row_bytes, int64_t n_rows, const float* x, int64_t n, float* y) {
    for (int64_t r = 0; r < n_rows; ++r) {
        auto* h = reinterpret_cast<const uint16_t*>(w + r * row_bytes);
        float acc = 0.0f;
        for (int64_t i = 0; i < n; ++i) acc += to_f32(h[i]) * x[i];
        y[r] = acc;
    }
}

void quantize_act(const float* x, int64_t n, int8_t* qs, float* d, float* dsum) {
    const int64_t nb = n / k_qk;
    for (int64_t b = 0; b < nb; ++b, x += k_qk) {
        float amax = 0.0f;
        for (int i = 0; i < k_qk; ++i) amax = std::max(amax, std::fabs(x[i]));
        const float step = amax / 127.0f;
        const float id = step != 0.0f ? 127.0f / amax : 0.0f;
        int32_t sum = 0;
        for (int i = 0; i < k_qk; ++i) {
            const auto q = static_cast<int8_t>(std::nearbyint(x[i] * id));
            qs[q8_act_index(nb, b, i)] = q;
            sum += q;
        }
        // The scale is kept at f16 precision, as a q8_0 block stores it (and as llama.cpp quantizes
        // activations), while the values were rounded with the exact one.
        d[b] = f16_to_f32(f32_to_f16(step));
        dsum[b] = d[b] * static_cast<float>(sum);  // sum itself is exact in f32 (|sum| <= 32 * 127)
    }
}

void silu_mul(const float* g, const float* u, float* y, int64_t n) {
    // exp(-v) overflows to inf for v < -88, which gives the right limit (-0) rather than a NaN.
    for (int64_t i = 0; i < n; ++i) {
        const float s = g[i] / (1.0f + std::exp(-g[i]));
        y[i] = u ? s * u[i] : s;
    }
}

// Scores, a softmax with its sum in double, then the probability-weighted mean of v, row by row.
void attend(const float* q, int n_q, const float* k, const float* v, int64_t kv_stride, int n_kv, int d, float scale,
            float* y, float* scratch) {
    for (int r = 0; r < n_q; ++r) {
        const float* qr = q + static_cast<int64_t>(r) * d;
        float* s = scratch;
        float mx = -INFINITY;
        for (int j = 0; j < n_kv; ++j) {
            const float* kj = k + j * kv_stride;
            float a = 0.0f;
            for (int i = 0; i < d; ++i) a += qr[i] * kj[i];
            s[j] = a * scale;
            mx = std::max(mx, s[j]);
        }
        double sum = 0.0;
        for (int j = 0; j < n_kv; ++j) sum += (s[j] = std::exp(s[j] - mx));
        const float inv = static_cast<float>(1.0 / sum);
        float* yr = y + static_cast<int64_t>(r) * d;
        std::fill(yr, yr + d, 0.0f);
        for (int j = 0; j < n_kv; ++j) {
            const float p = s[j] * inv;
            const float* vj = v + j * kv_stride;
            for (int i = 0; i < d; ++i) yr[i] += p * vj[i];
        }
    }
}

const kernel_table k_scalar{
    .isa = "scalar",
    .rows_q8_0 = rows_q8_0,
    .rows_q4_0 = rows_q4_0,
    .rows_f16 = rows_half<f16_to_f32>,
    .rows_bf16 = rows_half<bf16_to_f32>,
    .quantize_act = quantize_act,
    .silu_mul = silu_mul,
    .attend = attend,
};

}  // namespace

const kernel_table& kernels_scalar() { return k_scalar; }

}  // namespace mm
