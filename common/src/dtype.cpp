#include "common/dtype.h"

namespace mm {

std::string_view dtype_name(dtype t) {
    switch (t) {
        case dtype::f32: return "f32";
        case dtype::f16: return "f16";
        case dtype::bf16: return "bf16";
        case dtype::q8_0: return "q8_0";
        case dtype::q4_0: return "q4_0";
        case dtype::q4_0r: return "q4_0r";
        case dtype::q8_0r: return "q8_0r";
    }
    return "?";
}

std::optional<dtype> dtype_from_name(std::string_view name) {
    for (dtype t : {dtype::f32, dtype::f16, dtype::bf16, dtype::q8_0, dtype::q4_0})
        if (dtype_name(t) == name) return t;
    return std::nullopt;
}

int dtype_block_size(dtype t) { return dtype_is_quantized(t) ? k_qk : 1; }

size_t dtype_block_bytes(dtype t) {
    switch (t) {
        case dtype::f32: return 4;
        case dtype::f16:
        case dtype::bf16: return 2;
        case dtype::q8_0:
        case dtype::q8_0r: return sizeof(block_q8_0);
        case dtype::q4_0:
        case dtype::q4_0r: return sizeof(block_q4_0);  // per 32-element block, as a row's size counts
    }
    return 0;
}

bool dtype_is_quantized(dtype t) { return t != dtype::f32 && t != dtype::f16 && t != dtype::bf16; }

}  // namespace mm
