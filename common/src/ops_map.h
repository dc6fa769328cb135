// Shared by the elementwise ops: how finely memory-bound work is split, and y[i] = fn(x[i]) over a tensor.
#pragma once

#include <algorithm>
#include <cstdint>

#include "common/status.h"
#include "common/tensor.h"
#include "common/thread_pool.h"

namespace mm::ops {

// Memory-bound work: below this many elements a chunk costs more to hand to a thread than to run.
constexpr int64_t k_min_chunk_elements = 16384;

// Rows per chunk for row-wise work over rows of `cols` elements.
inline int64_t rows_per_chunk(int64_t cols) {
    return std::max<int64_t>(1, k_min_chunk_elements / std::max<int64_t>(1, cols));
}

// y[i] = fn(x[i]) over every element; y may alias x.
template <class Fn>
void unary_map(thread_pool& pool, const tensor& x, tensor& y, Fn fn) {
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

}  // namespace mm::ops
