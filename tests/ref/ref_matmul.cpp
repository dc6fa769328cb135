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
        } else if (t == dtype::q4_0 || t == dtype::q4_0r) {
            // q4_0: a 2-byte f16 scale, then 16 bytes whose low nibbles are elements 0..15, high 16..31.
            // q4_0r: groups of 16 blocks, 288 bytes: the 16 blocks' quant bytes, then their scales, block
            // 4j + k's at slot 4k + j.
            const uint8_t* qs = p + b * 18 + 2;
            const uint8_t* sc = p + b * 18;
            if (t == dtype::q4_0r) {
                const int64_t g = b / 16, i = b % 16;
                qs = p + g * 288 + i * 16;
                sc = p + g * 288 + 256 + 2 * (4 * (i % 4) + i / 4);
            }
            const double d = half_value(static_cast<uint16_t>(sc[0] | (sc[1] << 8)));
            for (int i = 0; i < 16; ++i) {
                out[b * 32 + i] = static_cast<float>(d * ((qs[i] & 0xf) - 8));
                out[b * 32 + 16 + i] = static_cast<float>(d * ((qs[i] >> 4) - 8));
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

}  // namespace mm::ref
