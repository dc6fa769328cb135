#include "ref/ref_matmul.h"

#include <cmath>
#include <cstring>

namespace mm::ref {
namespace {

// IEEE half -> float from the bit layout: sign, 5-bit exponent (bias 15), 10-bit mantissa.
double half_value(uint16_t h) {
    const int sign = h >> 15 ? -1 : 1;
    const int exp = (h >> 10) & 0x1f;
    const int mant = h & 0x3ff;
    if (exp == 0) return sign * std::ldexp(mant, -24);
    if (exp == 31) return mant ? NAN : sign * INFINITY;
    return sign * std::ldexp(1024 + mant, exp - 25);
}

}  // namespace

std::vector<float> matmul(std::span<const float> x, std::span<const float> w, int64_t m, int64_t k, int64_t n) {
    std::vector<float> y(static_cast<size_t>(m * n));
    for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) {
            double acc = 0.0;
            for (int64_t l = 0; l < k; ++l) acc += static_cast<double>(x[i * k + l]) * w[j * k + l];
            y[i * n + j] = static_cast<float>(acc);
        }
    return y;
}

std::vector<float> dequantize(dtype t, const void* data, int64_t n) {
    std::vector<float> out(static_cast<size_t>(n));
    auto* p = static_cast<const uint8_t*>(data);
    for (int64_t b = 0; b < n / 32; ++b) {
        if (t == dtype::q8_0) {  // 2-byte f16 scale, 32 int8
            const uint8_t* blk = p + b * 34;
            const double d = half_value(static_cast<uint16_t>(blk[0] | (blk[1] << 8)));
            for (int i = 0; i < 32; ++i) out[b * 32 + i] = static_cast<float>(d * static_cast<int8_t>(blk[2 + i]));
        } else if (t == dtype::q4_0) {  // 2-byte f16 scale, 16 bytes: low nibbles are 0..15, high 16..31
            const uint8_t* blk = p + b * 18;
            const double d = half_value(static_cast<uint16_t>(blk[0] | (blk[1] << 8)));
            for (int i = 0; i < 16; ++i) {
                out[b * 32 + i] = static_cast<float>(d * ((blk[2 + i] & 0xf) - 8));
                out[b * 32 + 16 + i] = static_cast<float>(d * ((blk[2 + i] >> 4) - 8));
            }
        }
    }
    if (t == dtype::f16 || t == dtype::bf16) {
        auto* h = static_cast<const uint16_t*>(data);
        for (int64_t i = 0; i < n; ++i) {
            if (t == dtype::f16) {
                out[i] = static_cast<float>(half_value(h[i]));
            } else {
                const uint32_t bits = static_cast<uint32_t>(h[i]) << 16;
                std::memcpy(&out[i], &bits, 4);
            }
        }
    } else if (t == dtype::f32) {
        std::memcpy(out.data(), data, static_cast<size_t>(n) * 4);
    }
    return out;
}

std::vector<float> dequantize_matrix(dtype t, const void* data, int64_t rows, int64_t cols) {
    if (t != dtype::q4_0r && t != dtype::q8_0r) return dequantize(t, data, rows * cols);
    // Read from the definitions: bands of 4 rows; in a band, per 512-element stretch, each row's piece side
    // by side: 16 blocks' quants, then their f16 scales, block 4j + k's at slot 4k + j. q4_0r quants: each
    // block's 16 bytes in turn (low nibbles elements 0..15, high 16..31); q8_0r: four-block groups, each
    // the four blocks' elements 0..15, then their elements 16..31, every byte q + 128.
    const bool q4 = t == dtype::q4_0r;
    const int64_t piece_bytes = q4 ? 288 : 544, quant_bytes = q4 ? 256 : 512;
    std::vector<float> out(static_cast<size_t>(rows * cols));
    auto* p = static_cast<const uint8_t*>(data);
    const int64_t stretches = cols / 512;
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t b = 0; b < cols / 32; ++b) {
            const int64_t g = b / 16, i = b % 16;
            const uint8_t* piece = p + ((r / 4) * 4 * stretches + g * 4 + r % 4) * piece_bytes;
            const uint8_t* sc = piece + quant_bytes + 2 * (4 * (i % 4) + i / 4);
            const double d = half_value(static_cast<uint16_t>(sc[0] | (sc[1] << 8)));
            float* o = out.data() + r * cols + b * 32;
            for (int e = 0; e < 16; ++e) {
                if (q4) {
                    const uint8_t v = piece[i * 16 + e];
                    o[e] = static_cast<float>(d * ((v & 0xf) - 8));
                    o[16 + e] = static_cast<float>(d * ((v >> 4) - 8));
                } else {
                    const uint8_t* grp = piece + (i / 4) * 128 + (i % 4) * 16;
                    o[e] = static_cast<float>(d * (grp[e] - 128));  // stored q + 128
                    o[16 + e] = static_cast<float>(d * (grp[64 + e] - 128));
                }
            }
        }
    return out;
}

}  // namespace mm::ref
