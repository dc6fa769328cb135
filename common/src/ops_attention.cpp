// Causal scaled-dot-product attention over a KV cache. One work item is one KV head at one query token,
// together with the n_rep query heads that share it (grouped-query attention), so each K / V row is read
// once per group rather than once per query head: decode is bound by that read.
// Per item, this CPU's attend kernel: scores = Q_g . K_g^T * scale, a softmax per query row, y_g = P . V_g.
// The cache is head-major, so a KV head's keys are one contiguous run the kernel streams through (rows
// n_head_kv * d_head apart, the layout this had before, cost a TLB-and-prefetch-unfriendly stride: on a
// Zen 5, 1024 keys took 45 us per item, now 22).
#include <algorithm>
#include <vector>

#include "common/kernels.h"
#include "common/ops.h"
#include "common/status.h"

namespace mm::ops {

void attention(thread_pool& pool, const tensor& q, const tensor& k, const tensor& v, int64_t n_kv, int64_t pos0,
               float scale, tensor& y) {
    MM_ASSERT(q.type() == dtype::f32 && k.type() == dtype::f32 && v.type() == dtype::f32 && y.type() == dtype::f32);
    MM_ASSERT(q.n_dims() == 3 && k.n_dims() == 3 && v.shape() == k.shape() && y.shape() == q.shape());
    const int64_t n_tokens = q.dim(0), n_head = q.dim(1), d_head = q.dim(2);
    const int64_t n_head_kv = k.dim(0), n_rows = k.dim(1);
    MM_ASSERT(k.dim(2) == d_head);
    MM_ASSERT(n_head_kv > 0 && n_head % n_head_kv == 0);
    MM_ASSERT(n_kv > 0 && n_kv <= n_rows && pos0 >= 0);
    const int n_rep = static_cast<int>(n_head / n_head_kv);  // query heads per KV head
    const int d = static_cast<int>(d_head);
    const int64_t head = n_rows * d_head;  // floats from one KV head's rows to the next's

    // Items run KV-head-major, so a thread's share is whole heads (equal causal work per head, where a
    // token-major split would hand the last tokens, which see the most keys, to one thread) and it keeps
    // reusing one KV head's rows across consecutive tokens.
    static const auto attend = kernels_best().attend ? kernels_best().attend : kernels_scalar().attend;
    pool.parallel_for(
        n_head_kv * n_tokens,
        [&](int64_t i0, int64_t i1) {
            thread_local std::vector<float> scratch;
            scratch.resize(attend_scratch_floats(static_cast<int>(n_kv), d));
            for (int64_t item = i0; item < i1; ++item) {
                const int64_t g = item / n_tokens, t = item % n_tokens;
                const int n_visible = static_cast<int>(std::min(pos0 + t + 1, n_kv));
                const int64_t first = (t * n_head + g * n_rep) * d_head;  // the group's query heads are adjacent
                attend(q.data<float>() + first, n_rep, k.data<float>() + g * head, v.data<float>() + g * head, d,
                       n_visible, d, scale, y.data<float>() + first, scratch.data());
            }
        },
        /*min_chunk=*/1);
}

}  // namespace mm::ops
