// llama_decode: one forward step of a llama model over a batch of sequences. Each sequence brings the
// tokens that follow its cached positions (a whole prompt when it is prefilling, one token when it is
// decoding); the matrix products run once over every token of every sequence, attention per sequence
// against its own cache slot. This is what lets requests decode together and join or leave between steps.
// Thread safety: none; one caller at a time per kv_cache. The pool parallelises inside each op.
#pragma once

#include <cstdint>
#include <span>

#include "common/status.h"
#include "common/tensor.h"
#include "common/thread_pool.h"
#include "text/kv_cache.h"
#include "text/llama_model.h"

namespace mm::text {

struct decode_seq {
    int slot = 0;                      // kv_cache slot; positions [0, pos0) must already be filled
    int pos0 = 0;                      // position of tokens[0]
    std::span<const int32_t> tokens;   // at least one
    bool all_logits = false;           // logits for every token (scoring), else only the last one's
};

// Writes the requested logits into logits[n_out, n_vocab], sequences in order (all_logits ones contribute
// tokens.size() rows, the others one row), and fills each slot's cache at the new positions.
// invalid_argument for a token id out of range, a slot out of range, or positions past the cache.
status llama_decode(thread_pool& pool, const llama_model& m, kv_cache& cache, std::span<const decode_seq> batch,
                    tensor& logits);

// Rows of logits a batch produces.
int64_t llama_decode_rows(std::span<const decode_seq> batch);

}  // namespace mm::text
