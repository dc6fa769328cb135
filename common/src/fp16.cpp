#include "common/fp16.h"

namespace mm {

float f16_to_f32(uint16_t h) {
    const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    if (exp == 0x1f) return f32_from_bits(sign | 0x7f800000u | (mant << 13));  // inf / NaN
    if (exp == 0) {
        if (mant == 0) return f32_from_bits(sign);
        // Subnormal half: normalize into an f32 exponent.
        int e = -1;
        do { mant <<= 1; ++e; } while (!(mant & 0x400));
        mant &= 0x3ff;
        exp = static_cast<uint32_t>(127 - 15 - e);
        return f32_from_bits(sign | (exp << 23) | (mant << 13));
    }
    return f32_from_bits(sign | ((exp + 127 - 15) << 23) | (mant << 13));
}

uint16_t f32_to_f16(float f) {
    const uint32_t u = f32_to_bits(f);
    const uint32_t sign = (u >> 16) & 0x8000;
    const uint32_t abs = u & 0x7fffffffu;
    if (abs > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00);  // NaN
    if (abs >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00);  // rounds to inf
    if (abs < 0x38800000u) {
        // Result is subnormal (or zero): shift the mantissa with its implicit bit, round to nearest even.
        if (abs < 0x33000000u) return static_cast<uint16_t>(sign);
        const uint32_t e = abs >> 23;
        const uint32_t m = (abs & 0x7fffff) | 0x800000;
        const uint32_t shift = 126 - e;  // 14 - (e - 127) + 10 - 23 + ... : lands the value in 10 bits
        uint32_t r = m >> (shift);
        const uint32_t rem = m & ((1u << shift) - 1);
        const uint32_t half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1))) ++r;
        return static_cast<uint16_t>(sign | r);
    }
    uint32_t r = abs - 0x38000000u;  // rebias exponent 127 -> 15 (112 << 23)
    r += 0xfff + ((r >> 13) & 1);     // round to nearest even on the 13 dropped bits
    return static_cast<uint16_t>(sign | (r >> 13));
}

}  // namespace mm
