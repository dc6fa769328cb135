// The dot-product kernels behind matmul, one table per instruction set, picked at run time.
// Exposed so tests can check every variant the CPU has against the scalar one.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/dtype.h"

namespace mm {

// Activations quantized on the fly for the q8_0 / q4_0 kernels: like q8_0, but with an f32 scale (no f16
// rounding of the activation's scale) and the sum of qs, which q4_0's kernel uses to fold its -8 offset.
struct block_q8_act {
    float d;
    int32_t sum;
    int8_t qs[k_qk];
};
static_assert(sizeof(block_q8_act) == 40);

void quantize_act_q8(const float* x, block_q8_act* y, int64_t n);  // n a multiple of 32

// y[r] = dot(weight row r, x) for r in [0, n_rows). Weight rows are row_bytes apart.
struct kernel_table {
    std::string_view isa;  // "scalar", "avx2", "avx512"
    void (*rows_q8_0)(const std::byte* w, size_t row_bytes, int64_t n_rows, const block_q8_act* x, int64_t n, float* y);
    void (*rows_q4_0)(const std::byte* w, size_t row_bytes, int64_t n_rows, const block_q8_act* x, int64_t n, float* y);
    void (*rows_f16)(const std::byte* w, size_t row_bytes, int64_t n_rows, const float* x, int64_t n, float* y);
    void (*rows_bf16)(const std::byte* w, size_t row_bytes, int64_t n_rows, const float* x, int64_t n, float* y);
};

const kernel_table& kernels_scalar();
const kernel_table* kernels_avx2();    // null when this CPU lacks AVX2 + FMA + F16C
const kernel_table* kernels_avx512();  // null when this CPU lacks AVX-512 F/BW/VL/DQ/VNNI
// The best table for this CPU; MM_ISA-independent: picked once from cpu_features().
const kernel_table& kernels_best();

struct cpu_features {
    bool avx2 = false, fma = false, f16c = false;
    bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false, avx512vnni = false;
};
cpu_features cpu_features_detect();

}  // namespace mm
