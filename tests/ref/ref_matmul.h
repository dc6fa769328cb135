// Scalar references for matmul and the quant formats: nested loops, double accumulators.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "common/dtype.h"

namespace mm::ref {

// y[m, n] = x[m, k] · w[n, k]ᵀ, all f32 values, summed in double.
std::vector<float> matmul(std::span<const float> x, std::span<const float> w, int64_t m, int64_t k, int64_t n);

// GGUF's q8_0 / q4_0 blocks decoded straight from the format's definition (independent of common/).
std::vector<float> dequantize(dtype t, const void* data, int64_t n);
// A [rows, cols] matrix in any dtype, including q4_0r / q8_0r, whose rows are interleaved.
std::vector<float> dequantize_matrix(dtype t, const void* data, int64_t rows, int64_t cols);

}  // namespace mm::ref
