// text_stage: one loaded LLM behind the API's chat and completion routes. It owns the model, its tokenizer
// and the engine (KV cache, continuous batching), and speaks only plain values: text, token ids and
// generation requests. The HTTP layer uses this header alone, so it never sees a tensor.
// Thread safety: thread-safe after load().
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "common/thread_pool.h"
#include "text/chat_template.h"
#include "text/generation.h"

namespace mm::text {

struct text_stage_params {
    std::string id;                       // the model name clients send
    std::filesystem::path path;           // a llama GGUF, or a llama2.c checkpoint (.bin)
    std::filesystem::path tokenizer{};    // llama2.c only: its tokenizer .bin
    int n_parallel = 4;                   // sequences decoding together
    int n_ctx = 0;                        // positions per sequence; 0: the model's own, at most 4096
    int max_queue = 16;                   // waiting requests before queue_full
    std::optional<std::string> chat_template{};  // family used when the model names none (default chatml)
    int64_t memory_budget = 0;            // bytes this model may take (weights + KV cache); 0: unchecked
};

// Load progress: bytes of weights paged in so far, of total.
using load_progress_fn = std::function<void(int64_t done, int64_t total)>;

class text_stage {
public:
    // Maps the model, checks every tensor, reads the weights once (so the first request finds them in
    // memory), builds the tokenizer and starts the engine. corrupt_file / unsupported / io_error say why not;
    // resource_exhausted when weights and KV cache would exceed the memory budget (checked before either
    // is touched or allocated).
    static result<std::unique_ptr<text_stage>> load(const text_stage_params& p, thread_pool& pool,
                                                    const load_progress_fn& progress = {});
    ~text_stage();

    const std::string& id() const;
    int n_ctx() const;
    int n_vocab() const;
    int64_t memory_bytes() const;  // weights + KV cache
    chat_format format() const;  // the model's own chat family, or the configured fallback

    // Token ids for text; add_special adds BOS as the vocabulary asks, parse_special reads control-token
    // spellings ("<|im_end|>") as those tokens.
    std::vector<int32_t> tokenize(std::string_view text, bool add_special, bool parse_special) const;
    // The prompt of a chat, with the tools it may call: rendered in the model's format, tokenized with
    // control tokens recognised.
    result<std::vector<int32_t>> chat_prompt(const std::vector<chat_message>& messages,
                                             const chat_tools* tools = nullptr) const;
    std::string piece(int32_t id) const;  // the bytes a token decodes to

    // See text_engine::submit: refused at once (context_length_exceeded, queue_full, invalid_argument), or
    // on_token per token and on_done once, on the engine's thread.
    status submit(generate_request req, on_token_fn on_token, on_done_fn on_done);
    status submit_all(std::vector<generate_job> jobs);  // text_engine::submit_all: all or none
    int queued() const;
    int max_queue() const;  // requests that may wait at once; a larger group can never be queued
    int running() const;

private:
    struct impl;
    explicit text_stage(std::unique_ptr<impl> p);
    std::unique_ptr<impl> impl_;
};

}  // namespace mm::text
