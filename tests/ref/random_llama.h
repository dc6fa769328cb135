// random_llama: writes a llama GGUF with random weights in the real format, for tests and benchmarks that need
// a model larger than the shared ones (no real weights of that size may be committed). The vocabulary
// (every tokenizer.* key) is copied from a real GGUF, so the file tokenizes like that model.
#pragma once

#include <cstdint>
#include <filesystem>

#include "common/gguf.h"
#include "common/status.h"
#include "common/tensor.h"

namespace mm::test {

struct random_llama_shape {
    int n_embd = 256;
    int n_layer = 4;
    int n_head = 8;
    int n_head_kv = 4;
    int n_ff = 768;
    int n_ctx = 2048;
    dtype weights = dtype::f32;  // matrices; norms stay f32
    uint32_t seed = 1;
    bool rope_freqs = false;  // add Llama 3.1's per-frequency RoPE factors tensor (all 1)
};

// n_vocab comes from vocab_source's tokenizer.ggml.tokens. Weights ~ N(0, 1/sqrt(n_in)) so activations
// stay O(1) through the layers.
status write_random_llama(const std::filesystem::path& path, const random_llama_shape& s, const gguf_file& vocab_source);

}  // namespace mm::test
