// kv_cache: keys and values of every layer for a fixed number of sequence slots, each holding up to n_ctx
// positions. A slot's keys (and values) in one layer are [n_head_kv, n_ctx, d_head] f32, head-major, the
// layout the attention op reads: each KV head's rows are one contiguous run. The whole cache is allocated
// once, when the stage starts, so its size is planned (and checked against the memory budget) before any
// request arrives.
// Thread safety: none; the text stage's scheduler owns it and gives each slot to one sequence at a time.
#pragma once

#include <cstddef>
#include <vector>

#include "common/tensor.h"
#include "text/llama_model.h"

namespace mm::text {

class kv_cache {
public:
    kv_cache(const llama_hparams& hp, int n_slots, int n_ctx);

    // Bytes a cache of this shape takes, for planning before allocating.
    static size_t bytes_for(const llama_hparams& hp, int n_slots, int n_ctx);

    int n_slots() const { return n_slots_; }
    int n_ctx() const { return n_ctx_; }
    int n_head_kv() const { return n_head_kv_; }
    int d_head() const { return d_head_; }
    // Floats from one KV head's rows to the next's.
    size_t head_stride() const { return static_cast<size_t>(n_ctx_) * d_head_; }
    // One slot's keys or values in one layer, [n_head_kv, n_ctx, d_head].
    float* k(int slot, int layer) { return base(slot, layer, 0); }
    float* v(int slot, int layer) { return base(slot, layer, 1); }

private:
    float* base(int slot, int layer, int which) {
        const size_t per_slot = head_stride() * n_head_kv_;
        return data_.data<float>() + ((static_cast<size_t>(layer) * n_slots_ + slot) * 2 + which) * per_slot;
    }
    int n_slots_, n_ctx_, n_head_kv_, d_head_;
    tensor data_;  // [n_layer, n_slots, 2, n_head_kv, n_ctx, d_head]
};

}  // namespace mm::text
