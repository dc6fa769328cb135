// text_engine: queue -> slot -> batched steps. One thread owns the KV cache and runs every step; the pool
// parallelises inside each op.
#include "text/text_engine.h"

#include <algorithm>
#include <cstring>
#include <span>

#include "common/log.h"
#include "text/kv_cache.h"
#include "text/llama_decode.h"
#include "text/stop_filter.h"

namespace mm::text {

namespace {

// A queued prompt waits for a running one's prefill only where they share at least this many tokens.
constexpr size_t k_min_wait = 8;

std::vector<std::string> pieces_of(const tokenizer& t) {
    std::vector<std::string> out;
    for (int32_t i = 0; i < t.n_vocab(); ++i) out.push_back(t.piece(i));
    return out;
}

}  // namespace

const char* finish_reason_name(finish_reason r) {
    switch (r) {
        case finish_reason::stop: return "stop";
        case finish_reason::length: return "length";
        case finish_reason::cancelled: return "cancelled";
    }
    return "stop";
}

struct text_engine::sequence {
    generate_request req;
    on_token_fn on_token;
    on_done_fn on_done;
    sampler samp;
    stop_filter filter;
    std::optional<json_recognizer> shape;  // constrained output: where the document stands
    std::vector<bool> allowed;
    bool closed_early = false;  // the token budget cut the document short (it still parses)
    int slot = -1;
    int pos = 0;                  // cache positions filled
    std::vector<int32_t> tokens;  // prompt + generated, for penalties
    size_t fed = 0;               // tokens already in the cache
    int generated = 0;
    int max_new = 0;              // generation budget after clamping to the context
    generate_result out;

    sequence(generate_request r, on_token_fn t, on_done_fn d)
        : req(std::move(r)), on_token(std::move(t)), on_done(std::move(d)), samp(req.sampling), filter(req.stop) {
        if (req.constraint) shape.emplace(req.constraint);
    }
    void finish(finish_reason why) {
        out.text += filter.flush();
        out.reason = why;
        out.completion_tokens = generated;
        on_done(std::move(out));
    }
};

text_engine::text_engine(std::shared_ptr<const llama_model> model, std::shared_ptr<const tokenizer> vocab,
                         thread_pool& pool, engine_params p)
    : model_(std::move(model)), vocab_(std::move(vocab)), trie_(pieces_of(*vocab_)), pool_(pool), p_(p) {
    thread_ = std::thread([this] { loop(); });
}

text_engine::~text_engine() {
    {
        std::lock_guard lock(mu_);
        stopping_ = true;
    }
    cv_.notify_all();
    thread_.join();
}

int text_engine::queued() const {
    std::lock_guard lock(mu_);
    return static_cast<int>(queue_.size());
}

int text_engine::running() const {
    std::lock_guard lock(mu_);
    return running_;
}

status text_engine::submit(generate_request req, on_token_fn on_token, on_done_fn on_done) {
    std::vector<generate_job> one;
    one.push_back({std::move(req), std::move(on_token), std::move(on_done)});
    return submit_all(std::move(one));
}

status text_engine::submit_all(std::vector<generate_job> jobs) {
    if (jobs.empty()) return status(errc::invalid_argument, "no requests to queue");
    if (static_cast<int>(jobs.size()) > p_.max_queue)
        return status(errc::invalid_argument, std::to_string(jobs.size()) + " requests at once are more than the queue holds (" +
                                                  std::to_string(p_.max_queue) + ")");
    std::vector<std::unique_ptr<sequence>> made;
    for (auto& j : jobs) {
        generate_request& req = j.req;
        if (req.prompt.empty()) return status(errc::invalid_argument, "the prompt is empty");
        for (int32_t t : req.prompt)
            if (t < 0 || t >= model_->hp.n_vocab)
                return status(errc::invalid_argument, "prompt token " + std::to_string(t) + " is not in the vocabulary");
        MM_TRY(validate(req.sampling, model_->hp.n_vocab));
        if (req.max_tokens < 0) return status(errc::invalid_argument, "max_tokens must be >= 0");
        if (req.stop.size() > 4) return status(errc::invalid_argument, "at most 4 stop sequences");
        if (req.top_logprobs > 20) return status(errc::invalid_argument, "top_logprobs must be between 0 and 20");
        const int n_prompt = static_cast<int>(req.prompt.size());
        if (n_prompt >= p_.n_ctx || (req.max_tokens > 0 && n_prompt + req.max_tokens > p_.n_ctx))
            return status(errc::context_length_exceeded,
                          "This model's maximum context length is " + std::to_string(p_.n_ctx) + " tokens. However, you requested " +
                              std::to_string(n_prompt + std::max(req.max_tokens, 1)) + " tokens (" + std::to_string(n_prompt) +
                              " in the prompt, " + std::to_string(std::max(req.max_tokens, 1)) +
                              " for the completion). Please reduce the prompt or max_tokens.");
        auto seq = std::make_unique<sequence>(std::move(req), std::move(j.on_token), std::move(j.on_done));
        seq->tokens = seq->req.prompt;
        seq->max_new = seq->req.max_tokens > 0 ? seq->req.max_tokens : p_.n_ctx - n_prompt;
        seq->out.prompt_tokens = n_prompt;
        made.push_back(std::move(seq));
    }
    {
        std::lock_guard lock(mu_);
        if (stopping_) return status(errc::cancelled, "the text stage is shutting down");
        if (static_cast<int>(queue_.size() + made.size()) > p_.max_queue)
            return status(errc::queue_full, "the text stage's queue is full (" + std::to_string(p_.max_queue) +
                                                " waiting); retry shortly");
        for (auto& seq : made) queue_.push_back(std::move(seq));
    }
    cv_.notify_one();
    return ok_status();
}

void text_engine::loop() {
    kv_cache cache(model_->hp, p_.n_parallel, p_.n_ctx);
    std::vector<std::unique_ptr<sequence>> running;
    std::vector<bool> slot_used(static_cast<size_t>(p_.n_parallel), false);
    // The tokens whose keys and values each free slot still holds, from positions 0 on. A new sequence takes
    // the free slot that shares the longest prefix with its prompt and starts after it: a chat's next turn
    // computes only what is new. Rows are computed alike whatever the batch (llama_decode), so the reused
    // entries are the ones recomputing would give.
    std::vector<std::vector<int32_t>> held(static_cast<size_t>(p_.n_parallel));
    auto release = [&](sequence& s) {
        slot_used[static_cast<size_t>(s.slot)] = false;
        held[static_cast<size_t>(s.slot)].assign(s.tokens.begin(), s.tokens.begin() + s.pos);
    };
    auto shared = [](std::span<const int32_t> a, std::span<const int32_t> b) {
        const size_t n = std::min(a.size(), b.size());
        return static_cast<size_t>(std::mismatch(a.begin(), a.begin() + static_cast<long>(n), b.begin()).first - a.begin());
    };
    // What slot i's rows hold now: a running sequence's fed tokens, or what a free slot kept.
    auto holds = [&](int i) -> std::span<const int32_t> {
        if (!slot_used[static_cast<size_t>(i)]) return held[static_cast<size_t>(i)];
        for (const auto& r : running)
            if (r->slot == i) return std::span<const int32_t>(r->tokens).first(static_cast<size_t>(r->pos));
        return {};
    };
    // Rows take_slot copies between slots: made after the queue's lock is let go (up to tens of MB, which
    // submitters should not wait on), in the order taken, before the step that reads them.
    struct row_copy {
        int from, to;
        size_t first, end;  // positions
    };
    std::vector<row_copy> copies;
    auto copy_rows = [&] {
        const size_t row = static_cast<size_t>(cache.d_head());
        for (const row_copy& c : copies)
            pool_.parallel_for(model_->hp.n_layer, [&](int64_t l0, int64_t l1) {
                const size_t n = (c.end - c.first) * row * sizeof(float);
                for (auto l = static_cast<int>(l0); l < l1; ++l)
                    for (int g = 0; g < cache.n_head_kv(); ++g) {  // each KV head's run of rows
                        const size_t at = g * cache.head_stride() + c.first * row;
                        std::memcpy(cache.k(c.to, l) + at, cache.k(c.from, l) + at, n);
                        std::memcpy(cache.v(c.to, l) + at, cache.v(c.from, l) + at, n);
                    }
            });
        copies.clear();
    };
    auto take_slot = [&](sequence& s) {
        size_t best_len = 0;
        int best = -1;
        for (int i = 0; i < p_.n_parallel; ++i) {
            if (slot_used[static_cast<size_t>(i)]) continue;
            const auto& h = held[static_cast<size_t>(i)];
            const size_t same = shared(h, s.tokens);
            // Ties go to the slot holding least, so an idle slot is taken before a long history is overwritten.
            if (best < 0 || same > best_len || (same == best_len && h.size() < held[static_cast<size_t>(best)].size()))
                best = i, best_len = same;
        }
        // At least the prompt's last token is fed, for the logits of the first new one.
        size_t reuse = std::min(best_len, s.tokens.size() - 1);
        // Another slot, busy or free, may hold more of this prompt (n choices of one prompt, one system prompt
        // for many users): its rows are copied, not recomputed. They are the same numbers either way, as above.
        int from = -1;
        size_t from_len = reuse;
        for (int i = 0; i < p_.n_parallel; ++i)
            if (i != best)
                if (const size_t same = std::min(shared(holds(i), s.tokens), s.tokens.size() - 1); same > from_len)
                    from = i, from_len = same;
        if (from >= 0) {
            copies.push_back({from, best, reuse, from_len});
            reuse = from_len;
        }
        s.slot = best;
        slot_used[static_cast<size_t>(best)] = true;
        held[static_cast<size_t>(best)].clear();  // rewritten from `reuse` on
        s.fed = reuse;
        s.pos = static_cast<int>(reuse);
        s.out.cached_tokens = static_cast<int>(reuse);
    };
    for (;;) {
        std::vector<std::unique_ptr<sequence>> gave_up;  // cancelled while queued
        {
            std::unique_lock lock(mu_);
            cv_.wait(lock, [&] { return stopping_ || !queue_.empty() || !running.empty(); });
            if (stopping_) {
                for (auto& s : queue_) running.push_back(std::move(s));
                queue_.clear();
                running_ = 0;
                lock.unlock();
                for (auto& s : running) s->finish(finish_reason::cancelled);
                return;
            }
            // A request cancelled while it waits leaves the queue now, not when a slot frees: its place (and
            // its budget hold, upstream) goes back at once.
            for (auto it = queue_.begin(); it != queue_.end();) {
                if ((*it)->req.cancel.stopped()) {
                    gave_up.push_back(std::move(*it));
                    it = queue_.erase(it);
                } else {
                    ++it;
                }
            }
            // Requests join between steps, in arrival order, while slots are free. One whose prompt begins with
            // what a running sequence is still prefilling waits until that one has fed the shared part, then
            // copies it (take_slot): its first token a step later, at one prefill's cost, not two.
            auto waits = [&](const sequence& s) {
                for (const auto& r : running) {
                    const size_t same = std::min(shared(r->tokens, s.tokens), s.tokens.size() - 1);
                    if (r->fed < r->tokens.size() && same >= k_min_wait && same > static_cast<size_t>(r->pos)) return true;
                }
                return false;
            };
            for (auto it = queue_.begin(); it != queue_.end() && static_cast<int>(running.size()) < p_.n_parallel;) {
                if (waits(**it)) {
                    ++it;
                    continue;
                }
                take_slot(**it);
                running.push_back(std::move(*it));
                it = queue_.erase(it);
            }
            running_ = static_cast<int>(running.size());
        }
        copy_rows();
        // Cancelled ones leave before the step, so a disconnect costs at most the step in flight.
        std::vector<std::unique_ptr<sequence>> still;
        std::vector<std::pair<std::unique_ptr<sequence>, finish_reason>> finished;
        for (auto& s : gave_up) finished.emplace_back(std::move(s), finish_reason::cancelled);
        for (auto& s : running) {
            if (s->req.cancel.stopped()) {
                release(*s);
                finished.emplace_back(std::move(s), finish_reason::cancelled);
            } else {
                still.push_back(std::move(s));
            }
        }
        running.swap(still);
        // The counts are right before anyone hears that a sequence ended.
        auto settle = [&] {
            {
                std::lock_guard lock(mu_);
                running_ = static_cast<int>(running.size());
            }
            for (auto& [s, why] : finished) s->finish(why);
            finished.clear();
        };
        settle();
        if (running.empty()) continue;

        // One decode step: prefilling sequences feed a chunk of their prompt, the others their last token.
        std::vector<decode_seq> batch;
        for (auto& s : running) {
            const size_t n = std::min<size_t>(s->tokens.size() - s->fed, static_cast<size_t>(p_.prefill_chunk));
            batch.push_back({.slot = s->slot, .pos0 = s->pos, .tokens = std::span<const int32_t>(s->tokens).subspan(s->fed, n)});
        }
        const int64_t V = model_->hp.n_vocab;
        tensor logits = tensor::zeros(dtype::f32, {static_cast<int64_t>(batch.size()), V});
        if (status st = llama_decode(pool_, *model_, cache, batch, logits); !st) {
            log_error("text_decode_failed", {{"error", st.to_string()}});
            for (auto& s : running) {
                slot_used[static_cast<size_t>(s->slot)] = false;
                held[static_cast<size_t>(s->slot)].clear();  // what the step left there is unknown
                s->on_done(st);
            }
            running.clear();
            continue;
        }

        still.clear();
        for (size_t b = 0; b < running.size(); ++b) {
            auto& s = running[b];
            s->fed += batch[b].tokens.size();
            s->pos += static_cast<int>(batch[b].tokens.size());
            if (s->fed < s->tokens.size()) {  // more prompt to feed: no token yet
                still.push_back(std::move(s));
                continue;
            }
            std::span<float> row(logits.data<float>() + static_cast<int64_t>(b) * V, static_cast<size_t>(V));
            generated_token g;
            const std::vector<bool>* mask = nullptr;
            if (s->shape) {
                s->allowed.resize(static_cast<size_t>(V));
                // Near the end of the token budget only tokens that leave the document closable in the tokens
                // still left (one byte each, at worst) are allowed, so even a length finish parses.
                const size_t left = static_cast<size_t>(std::min(s->max_new - s->generated, p_.n_ctx - s->pos + 1));
                const size_t need = s->shape->closing().size();
                const bool tight = left <= need + s->shape->closing_reach();
                if (tight && trie_.mask(*s->shape, s->allowed, std::max(left, need) - 1) > 0) s->closed_early = true;
                if (!tight || std::find(s->allowed.begin(), s->allowed.end(), true) == s->allowed.end())
                    trie_.mask(*s->shape, s->allowed);  // no budget, or a vocabulary without the closing bytes
                mask = &s->allowed;
            }
            if (mask && std::find(mask->begin(), mask->end(), true) == mask->end()) {
                // The vocabulary cannot continue the document (it cannot happen with byte tokens): stop here.
                release(*s);
                finished.emplace_back(std::move(s), finish_reason::length);
                continue;
            }
            if (s->req.top_logprobs >= 0) {
                // The model's distribution, before sampling changes the row.
                g.top = top_logprobs(row, s->req.top_logprobs);
                std::vector<float> raw(row.begin(), row.end());
                g.id = s->samp.sample(row, s->tokens, mask);
                g.logprob = logprob_of(raw, g.id);
            } else {
                g.id = s->samp.sample(row, s->tokens, mask);
            }
            if (s->shape) (void)s->shape->feed(vocab_->piece(g.id));  // allowed by the mask, so it fits
            const bool eog = vocab_->is_eog(g.id) && !s->req.ignore_eos;
            if (!eog) {
                ++s->generated;
                s->tokens.push_back(g.id);
                g.text = s->filter.push(vocab_->piece(g.id));
                s->out.text += g.text;
                s->on_token(g);
            }
            std::optional<finish_reason> done;
            if (s->shape && s->shape->complete()) done = s->closed_early ? finish_reason::length : finish_reason::stop;
            else if (eog || s->filter.stopped()) done = finish_reason::stop;
            else if (s->generated >= s->max_new || s->pos >= p_.n_ctx) done = finish_reason::length;
            if (done) {
                release(*s);
                finished.emplace_back(std::move(s), *done);
            } else {
                still.push_back(std::move(s));
            }
        }
        running.swap(still);
        settle();
    }
}

}  // namespace mm::text
