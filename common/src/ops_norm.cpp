// softmax, layer_norm, rms_norm over the last dim; group_norm over channel groups of an image.
// Statistics are summed in double: a 4096-wide row summed in f32 drifts by ~sqrt(n)·eps, and the second
// (variance) pass over (x - mean) avoids the cancellation of E[x²] - E[x]². Every pass reads x[i] before it
// writes y[i] and no later pass reads x again after y was written, so y may alias x.
#include <algorithm>
#include <cmath>
#include <limits>

#include "common/ops.h"
#include "common/status.h"

namespace mm::ops {
namespace {

// Rows below this many elements are grouped so that a chunk is worth handing to a thread.
constexpr int64_t k_min_chunk_elements = 8192;

int64_t rows_per_chunk(int64_t cols) { return std::max<int64_t>(1, k_min_chunk_elements / std::max<int64_t>(1, cols)); }

void check_f32(const tensor& x, const tensor& y) {
    MM_ASSERT(x.type() == dtype::f32 && y.type() == dtype::f32);
    MM_ASSERT(y.shape() == x.shape());
}

// A per-element parameter (norm weight or bias): null, or n f32 values.
const float* param_or_null(const tensor* p, int64_t n) {
    if (!p) return nullptr;
    MM_ASSERT(p->type() == dtype::f32 && p->elements() == n);
    return p->data<float>();
}

struct moments {
    double mean;
    double inv_std;  // 1 / sqrt(var + eps)
};

moments mean_and_inv_std(const float* x, int64_t n, float eps) {
    double sum = 0.0;
    for (int64_t i = 0; i < n; ++i) sum += x[i];
    const double mean = sum / static_cast<double>(n);
    double sq = 0.0;
    for (int64_t i = 0; i < n; ++i) {
        const double d = x[i] - mean;
        sq += d * d;
    }
    return {mean, 1.0 / std::sqrt(sq / static_cast<double>(n) + eps)};
}

// sum x[i]^2 in double over eight interleaved partial sums, combined in a fixed order: one running sum is
// a chain of dependent adds (2.7 us for a 2048-wide row, the decode step's norm), eight are vector lanes.
double sum_of_squares(const float* x, int64_t n) {
    double part[8] = {};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; ++j) part[j] += static_cast<double>(x[i + j]) * x[i + j];
    for (; i < n; ++i) part[0] += static_cast<double>(x[i]) * x[i];
    return ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
}

}  // namespace

void softmax(thread_pool& pool, const tensor& x, tensor& y) {
    check_f32(x, y);
    const int64_t cols = x.cols();
    pool.parallel_for(
        x.rows(),
        [&](int64_t r0, int64_t r1) {
            for (int64_t r = r0; r < r1; ++r) {
                const float* xr = x.data<float>() + r * cols;
                float* yr = y.data<float>() + r * cols;
                float mx = -std::numeric_limits<float>::infinity();
                for (int64_t i = 0; i < cols; ++i) mx = std::max(mx, xr[i]);
                double sum = 0.0;
                for (int64_t i = 0; i < cols; ++i) {
                    const float e = std::exp(xr[i] - mx);  // max subtracted: no overflow, largest term is 1
                    yr[i] = e;
                    sum += e;
                }
                const float inv = static_cast<float>(1.0 / sum);
                for (int64_t i = 0; i < cols; ++i) yr[i] *= inv;
            }
        },
        rows_per_chunk(cols));
}

void layer_norm(thread_pool& pool, const tensor& x, const tensor* weight, const tensor* bias, float eps, tensor& y) {
    check_f32(x, y);
    const int64_t cols = x.cols();
    const float* w = param_or_null(weight, cols);
    const float* b = param_or_null(bias, cols);
    pool.parallel_for(
        x.rows(),
        [&](int64_t r0, int64_t r1) {
            for (int64_t r = r0; r < r1; ++r) {
                const float* xr = x.data<float>() + r * cols;
                float* yr = y.data<float>() + r * cols;
                const moments m = mean_and_inv_std(xr, cols, eps);
                for (int64_t i = 0; i < cols; ++i) {
                    double v = (xr[i] - m.mean) * m.inv_std;
                    if (w) v *= w[i];
                    if (b) v += b[i];
                    yr[i] = static_cast<float>(v);
                }
            }
        },
        rows_per_chunk(cols));
}

void rms_norm(thread_pool& pool, const tensor& x, const tensor* weight, float eps, tensor& y) {
    check_f32(x, y);
    const int64_t cols = x.cols();
    const float* w = param_or_null(weight, cols);
    pool.parallel_for(
        x.rows(),
        [&](int64_t r0, int64_t r1) {
            for (int64_t r = r0; r < r1; ++r) {
                const float* xr = x.data<float>() + r * cols;
                float* yr = y.data<float>() + r * cols;
                const double inv_rms = 1.0 / std::sqrt(sum_of_squares(xr, cols) / static_cast<double>(cols) + eps);
                // In f32, as llama.cpp scales: three roundings (< 2 u), where double here cost a decode step's
                // norm as much again as its statistics.
                const auto s = static_cast<float>(inv_rms);
                if (w)
                    for (int64_t i = 0; i < cols; ++i) yr[i] = xr[i] * s * w[i];
                else
                    for (int64_t i = 0; i < cols; ++i) yr[i] = xr[i] * s;
            }
        },
        rows_per_chunk(cols));
}

void group_norm(thread_pool& pool, const tensor& x, int n_groups, const tensor* weight, const tensor* bias, float eps,
                tensor& y) {
    check_f32(x, y);
    MM_ASSERT(x.n_dims() == 3 || x.n_dims() == 4);
    const bool batched = x.n_dims() == 4;
    const int64_t n = batched ? x.dim(0) : 1;
    const int64_t c = x.dim(batched ? 1 : 0);
    const int64_t hw = x.elements() / (n * c);
    MM_ASSERT(n_groups > 0 && c % n_groups == 0);
    const int64_t c_group = c / n_groups;
    const float* w = param_or_null(weight, c);
    const float* b = param_or_null(bias, c);
    // One work item per (image, group); a group's channels are contiguous: [c_group, h, w].
    pool.parallel_for(
        n * n_groups,
        [&](int64_t g0, int64_t g1) {
            for (int64_t g = g0; g < g1; ++g) {
                const int64_t offset = g * c_group * hw;
                const float* xg = x.data<float>() + offset;
                float* yg = y.data<float>() + offset;
                const moments m = mean_and_inv_std(xg, c_group * hw, eps);
                for (int64_t ch = 0; ch < c_group; ++ch) {
                    const int64_t channel = (g % n_groups) * c_group + ch;
                    const double wc = w ? w[channel] : 1.0;
                    const double bc = b ? b[channel] : 0.0;
                    for (int64_t i = ch * hw; i < (ch + 1) * hw; ++i)
                        yg[i] = static_cast<float>((xg[i] - m.mean) * m.inv_std * wc + bc);
                }
            }
        },
        /*min_chunk=*/1);
}

}  // namespace mm::ops
