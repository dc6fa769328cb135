#include "common/quantize.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "common/fp16.h"
#include "common/kernels.h"
#include "common/status.h"

namespace mm {

void quantize_row_q8_0(const float* x, block_q8_0* y, int64_t n) {
    for (int64_t b = 0; b < n / k_qk; ++b, x += k_qk) {
        float amax = 0.0f;
        for (int i = 0; i < k_qk; ++i) amax = std::max(amax, std::fabs(x[i]));
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = f32_to_f16(d);
        for (int i = 0; i < k_qk; ++i) y[b].qs[i] = static_cast<int8_t>(std::lround(x[i] * id));
    }
}

void quantize_row_q4_0(const float* x, block_q4_0* y, int64_t n) {
    for (int64_t b = 0; b < n / k_qk; ++b, x += k_qk) {
        // The signed value of largest magnitude maps to -8, so the full range [-8, 7] is used.
        float amax = 0.0f, max = 0.0f;
        for (int i = 0; i < k_qk; ++i)
            if (std::fabs(x[i]) > amax) { amax = std::fabs(x[i]); max = x[i]; }
        const float d = max / -8.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = f32_to_f16(d);
        for (int j = 0; j < k_qk / 2; ++j) {
            const int lo = std::min(15, static_cast<int>(x[j] * id + 8.5f));
            const int hi = std::min(15, static_cast<int>(x[j + k_qk / 2] * id + 8.5f));
            y[b].qs[j] = static_cast<uint8_t>(lo | (hi << 4));
        }
    }
}

void dequantize_row_q8_0(const block_q8_0* x, float* y, int64_t n) {
    for (int64_t b = 0; b < n / k_qk; ++b) {
        const float d = f16_to_f32(x[b].d);
        for (int i = 0; i < k_qk; ++i) *y++ = d * x[b].qs[i];
    }
}

void dequantize_row_q4_0(const block_q4_0* x, float* y, int64_t n) {
    for (int64_t b = 0; b < n / k_qk; ++b, y += k_qk) {
        const float d = f16_to_f32(x[b].d);
        for (int j = 0; j < k_qk / 2; ++j) {
            y[j] = d * ((x[b].qs[j] & 0x0f) - 8);
            y[j + k_qk / 2] = d * ((x[b].qs[j] >> 4) - 8);
        }
    }
}

namespace {

// Where row r's stretch g (sixteen blocks) sits in a q4_0r matrix of ng stretches per row.
int64_t q4_0r_index(int64_t ng, int64_t r, int64_t g) {
    return (r / k_q4_0r_rows) * k_q4_0r_rows * ng + g * k_q4_0r_rows + r % k_q4_0r_rows;
}

void check_q4_0r_shape(int64_t rows, int64_t cols) {
    MM_ASSERT(rows % k_q4_0r_rows == 0 && cols % (k_qk * k_q4_0r_blocks) == 0);
}

}  // namespace

// Visits every (row, stretch): the plain blocks of the stretch and its regrouped block.
template <class P, class R, class F>
void each_stretch(P* plain, R* grouped, int64_t rows, int64_t cols, F f) {
    check_q4_0r_shape(rows, cols);
    const int64_t ng = cols / (k_qk * k_q4_0r_blocks);
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t g = 0; g < ng; ++g) f(plain + (r * ng + g) * k_q4_0r_blocks, grouped[q4_0r_index(ng, r, g)]);
}

void repack_q4_0r(const block_q4_0* x, block_q4_0r* y, int64_t rows, int64_t cols) {
    each_stretch(x, y, rows, cols, [](const block_q4_0* in, block_q4_0r& out) {
        for (int b = 0; b < k_q4_0r_blocks; ++b) std::memcpy(out.qs[b], in[b].qs, sizeof in[b].qs);
        for (int l = 0; l < k_q4_0r_blocks; ++l) out.d[l] = in[k_q4_0r_lane_block[l]].d;
    });
}

void unpack_q4_0r(const block_q4_0r* x, block_q4_0* y, int64_t rows, int64_t cols) {
    each_stretch(y, x, rows, cols, [](block_q4_0* out, const block_q4_0r& in) {
        for (int b = 0; b < k_q4_0r_blocks; ++b) std::memcpy(out[b].qs, in.qs[b], sizeof out[b].qs);
        for (int l = 0; l < k_q4_0r_blocks; ++l) out[k_q4_0r_lane_block[l]].d = in.d[l];
    });
}

void repack_q8_0r(const block_q8_0* x, block_q8_0r* y, int64_t rows, int64_t cols) {
    each_stretch(x, y, rows, cols, [](const block_q8_0* in, block_q8_0r& out) {
        for (int b = 0; b < k_q4_0r_blocks; ++b)
            for (int h = 0; h < 2; ++h)
                for (int i = 0; i < 16; ++i) out.qs[b / 4][h][b % 4][i] = static_cast<uint8_t>(in[b].qs[16 * h + i] + 128);
        for (int l = 0; l < k_q4_0r_blocks; ++l) out.d[l] = in[k_q4_0r_lane_block[l]].d;
    });
}

void unpack_q8_0r(const block_q8_0r* x, block_q8_0* y, int64_t rows, int64_t cols) {
    each_stretch(y, x, rows, cols, [](block_q8_0* out, const block_q8_0r& in) {
        for (int b = 0; b < k_q4_0r_blocks; ++b)
            for (int h = 0; h < 2; ++h)
                for (int i = 0; i < 16; ++i) out[b].qs[16 * h + i] = static_cast<int8_t>(in.qs[b / 4][h][b % 4][i] - 128);
        for (int l = 0; l < k_q4_0r_blocks; ++l) out[k_q4_0r_lane_block[l]].d = in.d[l];
    });
}

void quantize_act_q8(const float* x, int64_t m, int64_t n, q8_act& out) {
    const int64_t nb = n / k_qk;
    out.n = n;
    out.qs.resize(static_cast<size_t>(m * n));
    out.d.resize(static_cast<size_t>(m * nb));
    out.dsum.resize(static_cast<size_t>(m * nb));
    static const auto row = kernels_best().quantize_act ? kernels_best().quantize_act : kernels_scalar().quantize_act;
    for (int64_t r = 0; r < m; ++r) row(x + r * n, n, out.qs.data() + r * n, out.d.data() + r * nb, out.dsum.data() + r * nb);
}

}  // namespace mm
