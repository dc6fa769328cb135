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

}  // namespace mm
