// Weights regrouped at load time into the layout this CPU's matvec kernels read fastest: q4_0 / q8_0
// matrices of whole 512-element rows, four at a time, become q4_0r / q8_0r where kernels for them exist
// (AVX-512 and AVX2).
#pragma once

#include <optional>

#include "common/tensor.h"

namespace mm {

// A regrouped, owned copy of w when that is faster to multiply by; nullopt when w is best as it is.
std::optional<tensor> repacked_for_matvec(const tensor& w);

}  // namespace mm
