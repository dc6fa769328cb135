#include "text/kv_cache.h"

namespace mm::text {

size_t kv_cache::bytes_for(const llama_hparams& hp, int n_slots, int n_ctx) {
    return static_cast<size_t>(hp.n_layer) * n_slots * 2 * n_ctx * hp.kv_dim() * sizeof(float);
}

kv_cache::kv_cache(const llama_hparams& hp, int n_slots, int n_ctx)
    : n_slots_(n_slots),
      n_ctx_(n_ctx),
      n_head_kv_(hp.n_head_kv),
      d_head_(hp.d_head()),
      data_(tensor::zeros(dtype::f32, {hp.n_layer, n_slots, 2, static_cast<int64_t>(n_ctx) * hp.kv_dim()})) {}

}  // namespace mm::text
