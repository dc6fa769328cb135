// GELU (tanh and erf forms) and SiLU, elementwise over the whole tensor. y may alias x.
#include <cmath>

#include "common/ops.h"
#include "common/status.h"

namespace mm::ops {
namespace {

// Memory-bound work: below this many elements a chunk costs more to hand to a thread than to run.
constexpr int64_t k_min_chunk_elements = 16384;

template <class Fn>
void unary_op(thread_pool& pool, const tensor& x, tensor& y, Fn fn) {
    MM_ASSERT(x.type() == dtype::f32 && y.type() == dtype::f32);
    MM_ASSERT(y.shape() == x.shape());
    const float* xp = x.data<float>();
    float* yp = y.data<float>();
    pool.parallel_for(
        x.elements(),
        [&](int64_t i0, int64_t i1) {
            for (int64_t i = i0; i < i1; ++i) yp[i] = fn(xp[i]);
        },
        k_min_chunk_elements);
}

}  // namespace

void gelu_tanh(thread_pool& pool, const tensor& x, tensor& y) {
    constexpr float k_sqrt_2_over_pi = 0.7978845608028654f;
    unary_op(pool, x, y, [](float v) {
        return 0.5f * v * (1.0f + std::tanh(k_sqrt_2_over_pi * (v + 0.044715f * v * v * v)));
    });
}

void gelu_erf(thread_pool& pool, const tensor& x, tensor& y) {
    constexpr float k_inv_sqrt_2 = 0.7071067811865476f;
    unary_op(pool, x, y, [](float v) { return 0.5f * v * (1.0f + std::erf(v * k_inv_sqrt_2)); });
}

void silu(thread_pool& pool, const tensor& x, tensor& y) {
    // exp(-v) overflows to inf for v < -88, which gives the right limit (-0) rather than a NaN.
    unary_op(pool, x, y, [](float v) { return v / (1.0f + std::exp(-v)); });
}

}  // namespace mm::ops
