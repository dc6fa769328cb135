// add / mul / scale: one pass over rows. b either matches a's shape or is one row broadcast over a's rows
// (a bias, a norm weight). y may alias a: each element is read before it is written.
#include <algorithm>

#include "common/ops.h"
#include "common/status.h"
#include "ops_map.h"

namespace mm::ops {
namespace {

template <class Op>
void binary_op(thread_pool& pool, const tensor& a, const tensor& b, tensor& y, Op op) {
    MM_ASSERT(a.type() == dtype::f32 && b.type() == dtype::f32 && y.type() == dtype::f32);
    MM_ASSERT(y.shape() == a.shape());
    const bool broadcast = !(b.shape() == a.shape());
    MM_ASSERT(!broadcast || b.elements() == a.cols());
    const int64_t cols = a.cols();
    const float* ap = a.data<float>();
    const float* bp = b.data<float>();
    float* yp = y.data<float>();
    pool.parallel_for(
        a.rows(),
        [&](int64_t r0, int64_t r1) {
            for (int64_t r = r0; r < r1; ++r) {
                const float* ar = ap + r * cols;
                const float* br = broadcast ? bp : bp + r * cols;
                float* yr = yp + r * cols;
                for (int64_t i = 0; i < cols; ++i) yr[i] = op(ar[i], br[i]);
            }
        },
        rows_per_chunk(cols));
}

}  // namespace

void add(thread_pool& pool, const tensor& a, const tensor& b, tensor& y) {
    binary_op(pool, a, b, y, [](float u, float v) { return u + v; });
}

void mul(thread_pool& pool, const tensor& a, const tensor& b, tensor& y) {
    binary_op(pool, a, b, y, [](float u, float v) { return u * v; });
}

void scale(thread_pool& pool, const tensor& x, float s, tensor& y) {
    unary_map(pool, x, y, [s](float v) { return v * s; });
}

}  // namespace mm::ops
