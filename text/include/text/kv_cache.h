// kv_cache: keys and values of every layer for a fixed number of sequence slots, each holding up to n_ctx
// positions. A slot's rows are contiguous per layer ([n_ctx, kv_dim] f32), which is the layout the
// attention op reads; the whole cache is allocated once, when the stage starts, so its size is planned
// (and checked against the memory budget) before any request arrives.
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
    int kv_dim() const { return kv_dim_; }
    // Rows [0, n_ctx) of one slot's keys or values in one layer.
    float* k(int slot, int layer) { return base(slot, layer, 0); }
    float* v(int slot, int layer) { return base(slot, layer, 1); }

private:
    float* base(int slot, int layer, int which) {
        const size_t per_slot = static_cast<size_t>(n_ctx_) * kv_dim_;
        return data_.data<float>() + ((static_cast<size_t>(layer) * n_slots_ + slot) * 2 + which) * per_slot;
    }
    int n_slots_, n_ctx_, kv_dim_;
    tensor data_;  // [n_layer, n_slots, 2, n_ctx, kv_dim]
};

}  // namespace mm::text
