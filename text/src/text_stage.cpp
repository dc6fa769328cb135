// text_stage: loading (format by magic, tokenizer beside the weights, chat format), warming the weights,
// and the engine behind a value-only interface.
#include "text/text_stage.h"

#include <cstring>
#include <fstream>
#include <unordered_set>

#include "common/gguf.h"
#include "common/log.h"
#include "common/mapped_file.h"
#include "text/kv_cache.h"
#include "text/llama_model.h"
#include "text/text_engine.h"
#include "text/tokenizer.h"

namespace mm::text {
namespace {

bool is_gguf(const std::filesystem::path& p) {
    char magic[4] = {};
    std::ifstream in(p, std::ios::binary);
    in.read(magic, 4);
    return in.gcount() == 4 && std::memcmp(magic, "GGUF", 4) == 0;
}

// Reads one byte per page of every weight, so the mapping is resident before the first request.
int64_t touch(const tensor& t) {
    const auto* p = static_cast<const volatile unsigned char*>(t.raw());
    int64_t sum = 0;
    for (size_t i = 0; i < t.bytes(); i += 4096) sum += p[i];
    return sum;
}

}  // namespace

struct text_stage::impl {
    std::string id;
    std::optional<gguf_file> file;
    std::shared_ptr<const llama_model> model;
    std::shared_ptr<const tokenizer> vocab;
    chat_format format = chat_format::chatml;
    int n_ctx = 0;
    int64_t memory = 0;
    std::unique_ptr<text_engine> engine;
};

text_stage::text_stage(std::unique_ptr<impl> p) : impl_(std::move(p)) {}
text_stage::~text_stage() = default;

result<std::unique_ptr<text_stage>> text_stage::load(const text_stage_params& p, thread_pool& pool,
                                                     const load_progress_fn& progress) {
    auto in = std::make_unique<impl>();
    in->id = p.id;
    const std::string where = "model '" + p.id + "' (" + p.path.string() + ")";
    std::optional<std::string> file_template;
    if (is_gguf(p.path)) {
        auto f = gguf_open(p.path);
        if (!f) return f.error().context(where);
        in->file.emplace(std::move(*f));
        auto m = llama_load_gguf(*in->file);
        if (!m) return m.error().context(where);
        in->model = *m;
        auto t = tokenizer::from_gguf(*in->file);
        if (!t) return t.error().context(where + ": tokenizer");
        in->vocab = std::make_shared<const tokenizer>(std::move(*t));
        if (auto tpl = in->file->get_string("tokenizer.chat_template")) file_template = std::string(*tpl);
    } else {
        if (p.tokenizer.empty())
            return status(errc::invalid_argument, where + ": a llama2.c checkpoint needs its \"tokenizer\" file in the config");
        auto m = llama_load_llama2c(p.path);
        if (!m) return m.error().context(where);
        in->model = *m;
        auto t = tokenizer::from_llama2c(p.tokenizer, in->model->hp.n_vocab);  // the file has no count of its own
        if (!t) return t.error().context(where + ": tokenizer");
        in->vocab = std::make_shared<const tokenizer>(std::move(*t));
    }
    if (in->vocab->n_vocab() != in->model->hp.n_vocab)
        return status(errc::corrupt_file, where + ": the tokenizer has " + std::to_string(in->vocab->n_vocab()) +
                                              " tokens, the model " + std::to_string(in->model->hp.n_vocab));
    // The chat format: the model's own template when recognised, else the configured one, else ChatML.
    if (auto f = file_template ? chat_format_detect(*file_template) : std::nullopt) {
        in->format = *f;
    } else if (p.chat_template) {
        auto f2 = chat_format_parse(*p.chat_template);
        if (!f2) return f2.error().context(where);
        in->format = *f2;
    }
    in->n_ctx = p.n_ctx > 0 ? p.n_ctx : std::min(in->model->hp.n_ctx_train, 4096);
    if (in->n_ctx > in->model->hp.n_ctx_train)
        log_warn("model_context_extended", {{"model", p.id}, {"n_ctx", in->n_ctx}, {"trained", in->model->hp.n_ctx_train}});

    // The memory plan, before anything is paged in or allocated.
    const llama_model& m = *in->model;
    std::vector<const tensor*> all{&m.tok_embd, &m.output_norm};
    if (m.output.raw() != m.tok_embd.raw()) all.push_back(&m.output);  // a tied classifier is the same bytes
    for (const auto& l : m.layers)
        for (const tensor* t : {&l.attn_norm, &l.wq, &l.wk, &l.wv, &l.wo, &l.ffn_norm, &l.w_gate, &l.w_up, &l.w_down})
            all.push_back(t);
    int64_t total = 0, done = 0, sink = 0;
    for (const tensor* t : all) total += static_cast<int64_t>(t->bytes());
    in->memory = total + static_cast<int64_t>(kv_cache::bytes_for(m.hp, p.n_parallel, in->n_ctx));
    if (p.memory_budget > 0 && in->memory > p.memory_budget)
        return status(errc::resource_exhausted,
                      where + ": needs " + std::to_string(in->memory >> 20) + " MiB (weights and a KV cache for " +
                          std::to_string(p.n_parallel) + " x " + std::to_string(in->n_ctx) + " positions), more than the " +
                          std::to_string(p.memory_budget >> 20) + " MiB left in limits.memory_bytes; lower n_ctx or n_parallel");

    // Regrouped copies where this CPU's kernels read another layout faster (q4_0 / q8_0 under AVX-512). Making
    // one reads its mapped pages once; they are not read again, so they leave the process at once.
    auto advance = [&](const tensor& t) {
        done += static_cast<int64_t>(t.bytes());
        if (progress) progress(done, total);
    };
    std::unordered_set<const void*> regrouped;
    in->model = llama_for_matvec(in->model, [&](const tensor& replaced) {
        regrouped.insert(replaced.raw());
        if (in->file && in->file->mapping())
            in->file->mapping()->drop_pages({static_cast<const std::byte*>(replaced.raw()), replaced.bytes()});
        advance(replaced);
    });
    // Page the rest in, so the first request does not fault on them.
    for (const tensor* t : all) {
        if (regrouped.count(t->raw())) continue;
        sink += touch(*t);
        advance(*t);
    }
    log_info("text_model_loaded", {{"model", p.id}, {"name", m.name}, {"layers", m.hp.n_layer}, {"n_embd", m.hp.n_embd},
                                   {"n_vocab", m.hp.n_vocab}, {"weights_bytes", total}, {"n_ctx", in->n_ctx},
                                   {"n_parallel", p.n_parallel},
                                   {"kv_cache_bytes", static_cast<int64_t>(kv_cache::bytes_for(m.hp, p.n_parallel, in->n_ctx))},
                                   {"chat_format", chat_format_name(in->format)}, {"touched", sink & 1}});
    in->engine = std::make_unique<text_engine>(in->model, in->vocab, pool,
                                               engine_params{.n_parallel = p.n_parallel, .n_ctx = in->n_ctx,
                                                             .max_queue = p.max_queue});
    return std::unique_ptr<text_stage>(new text_stage(std::move(in)));
}

const std::string& text_stage::id() const { return impl_->id; }
int text_stage::n_ctx() const { return impl_->n_ctx; }
int text_stage::n_vocab() const { return impl_->model->hp.n_vocab; }
int64_t text_stage::memory_bytes() const { return impl_->memory; }
chat_format text_stage::format() const { return impl_->format; }

std::vector<int32_t> text_stage::tokenize(std::string_view text, bool add_special, bool parse_special) const {
    return impl_->vocab->encode(text, add_special, parse_special);
}

result<std::vector<int32_t>> text_stage::chat_prompt(const std::vector<chat_message>& messages,
                                                     const chat_tools* tools) const {
    auto text = chat_render(impl_->format, messages, true, tools);
    if (!text) return text.error();
    return impl_->vocab->encode(*text, true, true);
}

std::string text_stage::piece(int32_t id) const { return impl_->vocab->piece(id); }

status text_stage::submit(generate_request req, on_token_fn on_token, on_done_fn on_done) {
    return impl_->engine->submit(std::move(req), std::move(on_token), std::move(on_done));
}

status text_stage::submit_all(std::vector<generate_job> jobs) { return impl_->engine->submit_all(std::move(jobs)); }

int text_stage::queued() const { return impl_->engine->queued(); }
int text_stage::running() const { return impl_->engine->running(); }
int text_stage::max_queue() const { return impl_->engine->params().max_queue; }

}  // namespace mm::text
