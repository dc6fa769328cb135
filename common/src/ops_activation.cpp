// GELU (tanh and erf forms), SiLU and SwiGLU, elementwise over the whole tensor. y may alias an input.
#include <cmath>

#include "common/kernels.h"
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

namespace {

// SiLU (times u where given) through this CPU's kernel, in chunks across the pool.
void silu_times(thread_pool& pool, const tensor& g, const tensor* u, tensor& y) {
    MM_ASSERT(g.type() == dtype::f32 && y.type() == dtype::f32 && y.shape() == g.shape());
    MM_ASSERT(!u || (u->type() == dtype::f32 && u->shape() == g.shape()));
    static const auto kernel = kernels_best().silu_mul ? kernels_best().silu_mul : kernels_scalar().silu_mul;
    const float* gp = g.data<float>();
    const float* up = u ? u->data<float>() : nullptr;
    float* yp = y.data<float>();
    pool.parallel_for(
        g.elements(), [&](int64_t i0, int64_t i1) { kernel(gp + i0, up ? up + i0 : nullptr, yp + i0, i1 - i0); },
        k_min_chunk_elements);
}

}  // namespace

void silu(thread_pool& pool, const tensor& x, tensor& y) { silu_times(pool, x, nullptr, y); }

void swiglu(thread_pool& pool, const tensor& gate, const tensor& up, tensor& y) { silu_times(pool, gate, &up, y); }

}  // namespace mm::ops
