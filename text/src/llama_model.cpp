// llama_model: loading from GGUF and from llama2.c checkpoints, with every shape checked before use.
#include "text/llama_model.h"

#include <cstring>

#include "common/mapped_file.h"
#include "common/repack.h"

namespace mm::text {
namespace {

status corrupt(const std::string& what) { return status(errc::corrupt_file, what); }

bool weight_dtype(dtype t) {
    return t == dtype::f32 || t == dtype::f16 || t == dtype::bf16 || t == dtype::q8_0 || t == dtype::q4_0;
}

// A view of a GGUF tensor after checking its shape (and, for norms, that it is f32).
result<tensor> take(const gguf_file& f, const std::string& name, shape_t want, bool f32_only) {
    const gguf_tensor_info* info = f.find_tensor(name);
    if (!info) return corrupt("tensor '" + name + "' is missing");
    if (!(info->shape == want))
        return corrupt("tensor '" + name + "' has shape " + info->shape.to_string() + ", expected " + want.to_string());
    if (f32_only ? info->type != dtype::f32 : !weight_dtype(info->type))
        return status(errc::unsupported,
                      "tensor '" + name + "' has type " + std::string(dtype_name(info->type)) +
                          (f32_only ? "; norms must be f32" : "; supported: f32, f16, bf16, q8_0, q4_0"));
    // The quantized kernels work on whole 32-element blocks of a row.
    if ((info->type == dtype::q8_0 || info->type == dtype::q4_0) && want.last() % 32 != 0)
        return corrupt("tensor '" + name + "' is block-quantized but its rows are not a multiple of 32");
    return f.view(*info);
}

result<int> positive_int(const gguf_file& f, const std::string& key, std::optional<int> fallback = std::nullopt) {
    auto v = fallback ? f.get_u32_or(key, static_cast<uint32_t>(*fallback)) : f.get_u32(key);
    if (!v) return v.error();
    if (*v == 0 || *v > (1u << 24)) return corrupt("'" + key + "' is " + std::to_string(*v) + ", out of range");
    return static_cast<int>(*v);
}

// Cheap arithmetic limits: a file cannot ask for more than this many elements per tensor.
constexpr int64_t k_max_elements = int64_t{1} << 34;

}  // namespace

status validate(const llama_hparams& h) {
    auto bad = [](const std::string& what) { return corrupt("llama hyper-parameters: " + what); };
    if (h.n_vocab <= 0 || h.n_embd <= 0 || h.n_layer <= 0 || h.n_head <= 0 || h.n_head_kv <= 0 || h.n_ff <= 0)
        return bad("every size must be positive");
    if (h.n_embd % h.n_head != 0) return bad("n_embd is not a multiple of n_head");
    if (h.n_head % h.n_head_kv != 0) return bad("n_head is not a multiple of n_head_kv");
    if (h.d_head() % 2 != 0) return bad("the head size must be even for RoPE");
    const int n_rot = h.rope.n_rot == 0 ? h.d_head() : h.rope.n_rot;
    if (n_rot <= 0 || n_rot > h.d_head() || n_rot % 2 != 0) return bad("rope dimension count out of range");
    if (!(h.rms_eps > 0.0f && h.rms_eps < 1.0f)) return bad("rms epsilon out of range");
    if (!(h.rope.freq_base > 0.0f) || !(h.rope.freq_scale > 0.0f)) return bad("rope frequencies must be positive");
    if (static_cast<int64_t>(h.n_vocab) * h.n_embd > k_max_elements ||
        static_cast<int64_t>(h.n_ff) * h.n_embd > k_max_elements)
        return bad("tensors too large");
    return ok_status();
}

size_t llama_model::weight_bytes() const {
    size_t n = output.bytes();
    for (const auto& l : layers)
        n += l.wq.bytes() + l.wk.bytes() + l.wv.bytes() + l.wo.bytes() + l.w_gate.bytes() + l.w_up.bytes() +
             l.w_down.bytes();
    return n;
}

std::shared_ptr<const llama_model> llama_for_matvec(std::shared_ptr<const llama_model> m,
                                                   const std::function<void(const tensor&)>& on_replaced) {
    auto out = std::make_shared<llama_model>();
    out->hp = m->hp;
    out->name = m->name;
    auto same = [](const tensor& t) { return tensor::view(t.type(), t.shape(), t.raw()); };
    auto fast = [&](const tensor& t) {
        auto r = repacked_for_matvec(t);
        if (!r) return same(t);
        // A tied classifier's bytes are the embedding's too, which stays in use.
        if (on_replaced && t.raw() != m->tok_embd.raw()) on_replaced(t);
        return std::move(*r);
    };
    out->tok_embd = same(m->tok_embd);  // rows are gathered, never multiplied
    out->output_norm = same(m->output_norm);
    out->output = fast(m->output);
    for (const auto& l : m->layers)
        out->layers.push_back({.attn_norm = same(l.attn_norm), .wq = fast(l.wq), .wk = fast(l.wk), .wv = fast(l.wv),
                               .wo = fast(l.wo), .ffn_norm = same(l.ffn_norm), .w_gate = fast(l.w_gate),
                               .w_up = fast(l.w_up), .w_down = fast(l.w_down)});
    out->keep_alive = std::shared_ptr<const void>(m, m.get());  // the views point into m's mapping
    return out;
}

result<std::shared_ptr<const llama_model>> llama_load_gguf(const gguf_file& f) {
    auto arch = f.get_string("general.architecture");
    if (!arch) return arch.error();
    if (*arch != "llama")
        return status(errc::unsupported, "architecture '" + std::string(*arch) + "' is not supported; only 'llama'");

    auto m = std::make_shared<llama_model>();
    llama_hparams& h = m->hp;
    MM_ASSIGN(h.n_embd, positive_int(f, "llama.embedding_length"));
    MM_ASSIGN(h.n_layer, positive_int(f, "llama.block_count"));
    MM_ASSIGN(h.n_head, positive_int(f, "llama.attention.head_count"));
    MM_ASSIGN(h.n_head_kv, positive_int(f, "llama.attention.head_count_kv", h.n_head));
    MM_ASSIGN(h.n_ff, positive_int(f, "llama.feed_forward_length"));
    MM_ASSIGN(h.n_ctx_train, positive_int(f, "llama.context_length", 2048));
    MM_ASSIGN(h.rms_eps, f.get_f32_or("llama.attention.layer_norm_rms_epsilon", 1e-5f));
    MM_ASSIGN(h.rope.freq_base, f.get_f32_or("llama.rope.freq_base", 10000.0f));
    if (h.n_embd % h.n_head != 0) return corrupt("llama.embedding_length is not a multiple of the head count");
    MM_ASSIGN(h.rope.n_rot, positive_int(f, "llama.rope.dimension_count", h.n_embd / h.n_head));
    h.rope.mode = ops::rope_mode::normal;  // llama.cpp's converter permutes Q and K for adjacent-pair rotation
    if (auto type = f.get_string("llama.rope.scaling.type"); type && *type == "linear") {
        MM_ASSIGN(const float factor, f.get_f32("llama.rope.scaling.factor"));
        if (!(factor >= 1.0f)) return corrupt("llama.rope.scaling.factor must be >= 1");
        h.rope.freq_scale = 1.0f / factor;
    } else if (type && *type != "none") {
        return status(errc::unsupported, "rope scaling '" + std::string(*type) + "' is not supported (none, linear)");
    }
    // Llama 3.1+ files scale RoPE per frequency with this tensor; computing without it would be silently wrong.
    if (f.find_tensor("rope_freqs.weight"))
        return status(errc::unsupported, "per-frequency RoPE factors (tensor 'rope_freqs.weight', Llama 3.1 and later) "
                                         "are not supported yet");
    const gguf_tensor_info* embd = f.find_tensor("token_embd.weight");
    if (!embd) return corrupt("tensor 'token_embd.weight' is missing");
    if (embd->shape.n != 2 || embd->shape[0] > (1 << 24)) return corrupt("token_embd.weight is not [n_vocab, n_embd]");
    h.n_vocab = static_cast<int>(embd->shape[0]);
    MM_TRY(validate(h));

    const int64_t e = h.n_embd, kv = h.kv_dim(), ff = h.n_ff;
    MM_ASSIGN(m->tok_embd, take(f, "token_embd.weight", {h.n_vocab, e}, false));
    MM_ASSIGN(m->output_norm, take(f, "output_norm.weight", {e}, true));
    if (f.find_tensor("output.weight")) {
        MM_ASSIGN(m->output, take(f, "output.weight", {h.n_vocab, e}, false));
    } else {
        m->output = tensor::view(m->tok_embd.type(), m->tok_embd.shape(), m->tok_embd.data<void>());
    }
    for (int i = 0; i < h.n_layer; ++i) {
        const std::string p = "blk." + std::to_string(i) + ".";
        llama_layer l;
        MM_ASSIGN(l.attn_norm, take(f, p + "attn_norm.weight", {e}, true));
        MM_ASSIGN(l.wq, take(f, p + "attn_q.weight", {e, e}, false));
        MM_ASSIGN(l.wk, take(f, p + "attn_k.weight", {kv, e}, false));
        MM_ASSIGN(l.wv, take(f, p + "attn_v.weight", {kv, e}, false));
        MM_ASSIGN(l.wo, take(f, p + "attn_output.weight", {e, e}, false));
        MM_ASSIGN(l.ffn_norm, take(f, p + "ffn_norm.weight", {e}, true));
        MM_ASSIGN(l.w_gate, take(f, p + "ffn_gate.weight", {ff, e}, false));
        MM_ASSIGN(l.w_up, take(f, p + "ffn_up.weight", {ff, e}, false));
        MM_ASSIGN(l.w_down, take(f, p + "ffn_down.weight", {e, ff}, false));
        m->layers.push_back(std::move(l));
    }
    auto name = f.get_string("general.name");
    m->name = name ? std::string(*name) : "llama";
    m->keep_alive = f.keep_alive();
    return std::shared_ptr<const llama_model>(std::move(m));
}

result<std::shared_ptr<const llama_model>> llama_load_llama2c(const std::filesystem::path& path) {
    auto opened = mapped_file::open(path);
    if (!opened) return opened.error();
    auto file = std::make_shared<mapped_file>(std::move(*opened));
    const std::span<const std::byte> bytes = file->bytes();
    const std::string where = "llama2.c checkpoint '" + path.filename().string() + "': ";

    int32_t hdr[7];
    if (bytes.size() < sizeof hdr) return corrupt(where + "shorter than its 28-byte header");
    std::memcpy(hdr, bytes.data(), sizeof hdr);
    auto m = std::make_shared<llama_model>();
    llama_hparams& h = m->hp;
    h.n_embd = hdr[0];
    h.n_ff = hdr[1];
    h.n_layer = hdr[2];
    h.n_head = hdr[3];
    h.n_head_kv = hdr[4];
    const bool tied = hdr[5] > 0;
    h.n_vocab = hdr[5] == INT32_MIN ? 0 : (tied ? hdr[5] : -hdr[5]);
    h.n_ctx_train = hdr[6];
    if (h.n_ctx_train <= 0 || h.n_ctx_train > (1 << 24)) return corrupt(where + "seq_len out of range");
    for (int v : {h.n_embd, h.n_ff, h.n_layer, h.n_head, h.n_head_kv})
        if (v <= 0 || v > (1 << 24)) return corrupt(where + "a header size is out of range");
    MM_TRY(validate(h));

    // Weights in file order, f32: embedding, per-layer groups (each stacked over layers), final norm, the
    // two RoPE tables run.c no longer reads, then the classifier when untied.
    const int64_t e = h.n_embd, kv = h.kv_dim(), ff = h.n_ff, L = h.n_layer, V = h.n_vocab;
    const int64_t d_half = h.d_head() / 2;
    size_t offset = sizeof hdr;
    auto next = [&](shape_t shape) -> result<tensor> {
        const size_t n = static_cast<size_t>(shape.elements()) * sizeof(float);
        if (offset > bytes.size() || bytes.size() - offset < n)
            return corrupt(where + "truncated: weights need more bytes than the file has");
        tensor t = tensor::view(dtype::f32, shape, bytes.data() + offset);
        offset += n;
        return t;
    };
    MM_ASSIGN(m->tok_embd, next({V, e}));
    m->layers.resize(static_cast<size_t>(L));
    auto per_layer = [&](tensor llama_layer::*field, shape_t one) -> status {
        for (auto& l : m->layers) {
            MM_ASSIGN(l.*field, next(one));
        }
        return ok_status();
    };
    MM_TRY(per_layer(&llama_layer::attn_norm, {e}));
    MM_TRY(per_layer(&llama_layer::wq, {e, e}));
    MM_TRY(per_layer(&llama_layer::wk, {kv, e}));
    MM_TRY(per_layer(&llama_layer::wv, {kv, e}));
    MM_TRY(per_layer(&llama_layer::wo, {e, e}));
    MM_TRY(per_layer(&llama_layer::ffn_norm, {e}));
    MM_TRY(per_layer(&llama_layer::w_gate, {ff, e}));
    MM_TRY(per_layer(&llama_layer::w_down, {e, ff}));
    MM_TRY(per_layer(&llama_layer::w_up, {ff, e}));
    MM_ASSIGN(m->output_norm, next({e}));
    for (const char* unused : {"freq_cis_real", "freq_cis_imag"}) {
        if (auto r = next({h.n_ctx_train, d_half}); !r) return r.error().context(unused);
    }
    if (tied) {
        m->output = tensor::view(dtype::f32, m->tok_embd.shape(), m->tok_embd.data<void>());
    } else {
        MM_ASSIGN(m->output, next({V, e}));
    }
    m->name = path.stem().string();
    m->keep_alive = file;
    return std::shared_ptr<const llama_model>(std::move(m));
}

}  // namespace mm::text
