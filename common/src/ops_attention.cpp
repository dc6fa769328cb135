// Causal scaled-dot-product attention over a KV cache. One work item is one KV head at one query token,
// together with the n_rep query heads that share it (grouped-query attention), so each K / V row is read
// once per group rather than once per query head: decode is bound by that read.
// Per item: scores[n_rep, n_visible] = Q_g · K_gᵀ * scale, softmax per row in place, y_g = P · V_g.
// A KV head's rows sit n_head_kv * d_head apart in the cache, which BLAS takes as the leading dimension,
// so nothing is gathered; the only scratch is n_rep rows of scores per thread.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "common/ops.h"
#include "common/status.h"

namespace mm::ops {
namespace {

// Softmax of a row in place: max subtracted, sum in double.
void softmax_row(float* s, int n) {
    const float mx = *std::max_element(s, s + n);
    double sum = 0.0;
    for (int j = 0; j < n; ++j) {
        s[j] = std::exp(s[j] - mx);
        sum += s[j];
    }
    const float inv = static_cast<float>(1.0 / sum);
    for (int j = 0; j < n; ++j) s[j] *= inv;
}

}  // namespace

void attention(thread_pool& pool, const tensor& q, const tensor& k, const tensor& v, int64_t pos0, float scale,
               tensor& y) {
    MM_ASSERT(q.type() == dtype::f32 && k.type() == dtype::f32 && v.type() == dtype::f32 && y.type() == dtype::f32);
    MM_ASSERT(q.n_dims() == 3 && k.n_dims() == 3 && v.shape() == k.shape() && y.shape() == q.shape());
    const int64_t n_tokens = q.dim(0), n_head = q.dim(1), d_head = q.dim(2);
    const int64_t n_kv = k.dim(0), n_head_kv = k.dim(1);
    MM_ASSERT(k.dim(2) == d_head);
    MM_ASSERT(n_head_kv > 0 && n_head % n_head_kv == 0);
    MM_ASSERT(n_kv > 0 && pos0 >= 0);
    const int n_rep = static_cast<int>(n_head / n_head_kv);  // query heads per KV head
    const int d = static_cast<int>(d_head);
    const int kv_stride = static_cast<int>(n_head_kv * d_head);

    // Items run KV-head-major, so a thread's share is whole heads (equal causal work per head, where a
    // token-major split would hand the last tokens, which see the most keys, to one thread) and it keeps
    // reusing one KV head's rows across consecutive tokens.
    pool.parallel_for(
        n_head_kv * n_tokens,
        [&](int64_t i0, int64_t i1) {
            thread_local std::vector<float> scores;  // [n_rep, n_visible]
            scores.resize(static_cast<size_t>(n_rep * n_kv));
            for (int64_t item = i0; item < i1; ++item) {
                const int64_t g = item / n_tokens, t = item % n_tokens;
                const int n_visible = static_cast<int>(std::min(pos0 + t + 1, n_kv));
                const int64_t first = (t * n_head + g * n_rep) * d_head;  // the group's query heads are adjacent
                const float* qg = q.data<float>() + first;                // [n_rep, d_head]
                float* yg = y.data<float>() + first;                      // [n_rep, d_head]
                const float* kg = k.data<float>() + g * d_head;           // [n_visible, d_head], rows kv_stride apart
                const float* vg = v.data<float>() + g * d_head;
                float* s = scores.data();
                if (n_rep == 1) {  // sgemv: OpenBLAS's sgemm pays for packing even with one row
                    cblas_sgemv(CblasRowMajor, CblasNoTrans, n_visible, d, scale, kg, kv_stride, qg, 1, 0.0f, s, 1);
                    softmax_row(s, n_visible);
                    cblas_sgemv(CblasRowMajor, CblasTrans, n_visible, d, 1.0f, vg, kv_stride, s, 1, 0.0f, yg, 1);
                    continue;
                }
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n_rep, n_visible, d, scale, qg, d, kg, kv_stride,
                            0.0f, s, n_visible);
                for (int r = 0; r < n_rep; ++r) softmax_row(s + static_cast<int64_t>(r) * n_visible, n_visible);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n_rep, d, n_visible, 1.0f, s, n_visible, vg,
                            kv_stride, 0.0f, yg, d);
            }
        },
        /*min_chunk=*/1);
}

}  // namespace mm::ops
