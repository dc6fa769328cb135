// GELU (tanh and erf forms) and SiLU, elementwise over the whole tensor. y may alias x.
#include <cmath>

#include "common/ops.h"
#include "common/status.h"
#include "ops_map.h"

namespace mm::ops {

void gelu_tanh(thread_pool& pool, const tensor& x, tensor& y) {
    constexpr float k_sqrt_2_over_pi = 0.7978845608028654f;
    unary_map(pool, x, y, [](float v) {
        return 0.5f * v * (1.0f + std::tanh(k_sqrt_2_over_pi * (v + 0.044715f * v * v * v)));
    });
}

void gelu_erf(thread_pool& pool, const tensor& x, tensor& y) {
    constexpr float k_inv_sqrt_2 = 0.7071067811865476f;
    unary_map(pool, x, y, [](float v) { return 0.5f * v * (1.0f + std::erf(v * k_inv_sqrt_2)); });
}

void silu(thread_pool& pool, const tensor& x, tensor& y) {
    // exp(-v) overflows to inf for v < -88, which gives the right limit (-0) rather than a NaN.
    unary_map(pool, x, y, [](float v) { return v / (1.0f + std::exp(-v)); });
}

}  // namespace mm::ops
