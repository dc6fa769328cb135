// llama_model: a llama-family decoder's shape and weights, loaded from GGUF (llama.cpp's tensor names) or
// from a llama2.c checkpoint. Weights stay in the mapped file and are used in place (f32, f16, bf16, q8_0,
// q4_0), so a model costs its file's pages, shared by every sequence; llama_for_matvec trades the q4_0
// matrices for regrouped copies where this CPU multiplies those faster.
// Thread safety: immutable after loading; share it freely.
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/gguf.h"
#include "common/ops.h"
#include "common/progress.h"
#include "common/status.h"
#include "common/tensor.h"

namespace mm::text {

struct llama_hparams {
    int n_vocab = 0;
    int n_embd = 0;
    int n_layer = 0;
    int n_head = 0;
    int n_head_kv = 0;
    int n_ff = 0;
    int n_ctx_train = 0;  // what the file says it was trained for; the serving context is configured
    float rms_eps = 1e-5f;
    ops::rope_params rope{};
    int d_head() const { return n_embd / n_head; }
    int kv_dim() const { return d_head() * n_head_kv; }
};
status validate(const llama_hparams& h);

struct llama_layer {
    tensor attn_norm, wq, wk, wv, wo;       // norms [n_embd]; projections [n_out, n_in]
    tensor ffn_norm, w_gate, w_up, w_down;  // gate / up [n_ff, n_embd]; down [n_embd, n_ff]
};

class llama_model {
public:
    llama_hparams hp;
    tensor tok_embd;     // [n_vocab, n_embd]
    tensor output_norm;  // [n_embd]
    tensor output;       // [n_vocab, n_embd]; the embedding itself when the classifier is tied
    std::vector<llama_layer> layers;
    std::string name;    // general.name, or the file's stem
    std::shared_ptr<const void> keep_alive;  // the mapping the tensors point into

    // Bytes of weights a decode step reads (every matrix once): the bandwidth bound on tokens/s.
    size_t weight_bytes() const;
};

// Loads a GGUF with general.architecture "llama". Every tensor's presence, dtype and shape is checked
// against the hyper-parameters; errc::corrupt_file / errc::unsupported name what is wrong.
result<std::shared_ptr<const llama_model>> llama_load_gguf(const gguf_file& file);

// The same model with its matrices in the layout this CPU multiplies fastest (common/repack.h): regrouped
// copies where that pays, views of m's tensors elsewhere; the result keeps m alive. on_replaced is called
// with each of m's tensors once its copy is made (m's own bytes are not read again).
std::shared_ptr<const llama_model> llama_for_matvec(std::shared_ptr<const llama_model> m,
                                                   const std::function<void(const tensor&)>& on_replaced = {});

// Loads a llama2.c checkpoint: a 7 x int32 header (dim, hidden_dim, n_layers, n_heads, n_kv_heads,
// vocab_size, seq_len; a negative vocab_size means an untied classifier follows), then f32 weights.
result<std::shared_ptr<const llama_model>> llama_load_llama2c(const std::filesystem::path& path);

}  // namespace mm::text
