// Reference quantizers for GGUF's q8_0 / q4_0 blocks (round to nearest, as llama.cpp's *_ref functions
// define them, so our files and theirs agree), and their dequantizers. n is a multiple of 32.
#pragma once

#include <cstdint>

#include "common/dtype.h"

namespace mm {

void quantize_row_q8_0(const float* x, block_q8_0* y, int64_t n);
void quantize_row_q4_0(const float* x, block_q4_0* y, int64_t n);
void dequantize_row_q8_0(const block_q8_0* x, float* y, int64_t n);
void dequantize_row_q4_0(const block_q4_0* x, float* y, int64_t n);

// q4_0 <-> q4_0r and q8_0 <-> q8_0r for a whole [rows, cols] matrix (rows a multiple of 4, cols of 512):
// the same bytes in another order.
void repack_q4_0r(const block_q4_0* x, block_q4_0r* y, int64_t rows, int64_t cols);
void unpack_q4_0r(const block_q4_0r* x, block_q4_0* y, int64_t rows, int64_t cols);
void repack_q8_0r(const block_q8_0* x, block_q8_0r* y, int64_t rows, int64_t cols);
void unpack_q8_0r(const block_q8_0r* x, block_q8_0* y, int64_t rows, int64_t cols);

}  // namespace mm
