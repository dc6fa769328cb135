// permute, concat, upsample_nearest: pure data movement, split over output rows. y never aliases x here.
#include <algorithm>
#include <cstring>

#include "common/ops.h"
#include "common/status.h"
#include "ops_map.h"

namespace mm::ops {

void permute(thread_pool& pool, const tensor& x, std::array<int, 4> perm, tensor& y) {
    MM_ASSERT(x.type() == dtype::f32 && y.type() == dtype::f32);
    const int nd = x.n_dims();
    MM_ASSERT(nd >= 1 && y.n_dims() == nd && x.raw() != y.raw());
    std::array<int64_t, k_max_dims> x_stride{};  // row-major strides of x
    x_stride[nd - 1] = 1;
    for (int i = nd - 2; i >= 0; --i) x_stride[i] = x_stride[i + 1] * x.dim(i + 1);

    // y padded to 4 dims at the front (size 1, stride 0); src_stride[i]: x step per step of y's dim i.
    std::array<int64_t, 4> y_dim{1, 1, 1, 1}, src_stride{0, 0, 0, 0};
    unsigned seen = 0;
    for (int i = 0; i < nd; ++i) {
        const int from = perm[i];
        MM_ASSERT(from >= 0 && from < nd && !(seen & (1u << from)));
        seen |= 1u << from;
        MM_ASSERT(y.dim(i) == x.dim(from));
        y_dim[4 - nd + i] = y.dim(i);
        src_stride[4 - nd + i] = x_stride[from];
    }

    const int64_t cols = y_dim[3];
    const float* xp = x.data<float>();
    float* yp = y.data<float>();
    pool.parallel_for(
        y_dim[0] * y_dim[1] * y_dim[2],
        [&](int64_t r0, int64_t r1) {
            for (int64_t r = r0; r < r1; ++r) {
                const int64_t i2 = r % y_dim[2], i1 = r / y_dim[2] % y_dim[1], i0 = r / (y_dim[2] * y_dim[1]);
                const float* src = xp + i0 * src_stride[0] + i1 * src_stride[1] + i2 * src_stride[2];
                float* dst = yp + r * cols;
                if (src_stride[3] == 1) {
                    std::memcpy(dst, src, static_cast<size_t>(cols) * sizeof(float));
                } else {
                    for (int64_t i = 0; i < cols; ++i) dst[i] = src[i * src_stride[3]];
                }
            }
        },
        rows_per_chunk(cols));
}

void concat(thread_pool& pool, const tensor& a, const tensor& b, int axis, tensor& y) {
    MM_ASSERT(a.type() == dtype::f32 && b.type() == dtype::f32 && y.type() == dtype::f32);
    const int nd = a.n_dims();
    MM_ASSERT(b.n_dims() == nd && y.n_dims() == nd && axis >= 0 && axis < nd);
    for (int i = 0; i < nd; ++i) {
        if (i == axis) {
            MM_ASSERT(y.dim(i) == a.dim(i) + b.dim(i));
        } else {
            MM_ASSERT(a.dim(i) == b.dim(i) && y.dim(i) == a.dim(i));
        }
    }
    // Viewed as [outer, dim(axis) * inner], each output row is a row of a followed by a row of b.
    int64_t outer = 1, inner = 1;
    for (int i = 0; i < axis; ++i) outer *= a.dim(i);
    for (int i = axis + 1; i < nd; ++i) inner *= a.dim(i);
    const int64_t a_cols = a.dim(axis) * inner, b_cols = b.dim(axis) * inner;
    pool.parallel_for(
        outer,
        [&](int64_t r0, int64_t r1) {
            for (int64_t r = r0; r < r1; ++r) {
                float* dst = y.data<float>() + r * (a_cols + b_cols);
                std::memcpy(dst, a.data<float>() + r * a_cols, static_cast<size_t>(a_cols) * sizeof(float));
                std::memcpy(dst + a_cols, b.data<float>() + r * b_cols, static_cast<size_t>(b_cols) * sizeof(float));
            }
        },
        rows_per_chunk(a_cols + b_cols));
}

void upsample_nearest(thread_pool& pool, const tensor& x, int factor, tensor& y) {
    MM_ASSERT(x.type() == dtype::f32 && y.type() == dtype::f32);
    const int nd = x.n_dims();
    MM_ASSERT(nd >= 2 && y.n_dims() == nd && factor >= 1);
    for (int i = 0; i < nd - 2; ++i) MM_ASSERT(y.dim(i) == x.dim(i));
    const int64_t h = x.dim(nd - 2), w = x.dim(nd - 1);
    MM_ASSERT(y.dim(nd - 2) == h * factor && y.dim(nd - 1) == w * factor);
    const int64_t out_h = h * factor, out_w = w * factor;
    pool.parallel_for(
        y.rows(),
        [&](int64_t r0, int64_t r1) {
            for (int64_t r = r0; r < r1; ++r) {
                const int64_t plane = r / out_h, oy = r % out_h;
                const float* src = x.data<float>() + (plane * h + oy / factor) * w;
                float* dst = y.data<float>() + r * out_w;
                for (int64_t ox = 0; ox < out_w; ++ox) dst[ox] = src[ox / factor];
            }
        },
        rows_per_chunk(out_w));
}

}  // namespace mm::ops
