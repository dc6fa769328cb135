// text_engine: the text stage's scheduler. Requests wait in a bounded queue, take a KV-cache slot, and then
// every step decodes all running sequences together (continuous batching): a new request's prompt is
// prefilled in the same step as the others' next tokens, and a finished or cancelled one leaves between
// steps, freeing its slot. Output text is released as it becomes final: never half a UTF-8 character, never
// the start of a stop string that may still complete.
// Thread safety: submit() from any thread; callbacks run on the engine's thread and must be quick.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"
#include "common/thread_pool.h"
#include "text/generation.h"
#include "text/llama_model.h"
#include "text/tokenizer.h"

namespace mm::text {

struct engine_params {
    int n_parallel = 4;        // sequences decoding at once (KV-cache slots)
    int n_ctx = 2048;          // positions per sequence, prompt included
    int max_queue = 64;        // requests waiting for a slot; more are refused (queue_full)
    int prefill_chunk = 512;   // prompt tokens a sequence feeds per step, so long prompts do not stall others
};

class text_engine {
public:
    text_engine(std::shared_ptr<const llama_model> model, std::shared_ptr<const tokenizer> vocab, thread_pool& pool,
                engine_params p);
    ~text_engine();  // cancels what is queued or running (each gets on_done) and stops the loop
    text_engine(const text_engine&) = delete;
    text_engine& operator=(const text_engine&) = delete;

    // Queues a request. Refused at once (nothing called back) with context_length_exceeded when the prompt
    // leaves no room to generate, queue_full when max_queue requests are waiting, invalid_argument for bad
    // sampling parameters or an empty prompt. Otherwise on_token runs per generated token and on_done once.
    status submit(generate_request req, on_token_fn on_token, on_done_fn on_done);
    // Several requests (one per choice of an n > 1 request) queued together or not at all: each is checked
    // as submit() checks it, and the group is refused (invalid_argument) when it is larger than max_queue.
    status submit_all(std::vector<generate_job> jobs);

    const llama_model& model() const { return *model_; }
    const tokenizer& vocab() const { return *vocab_; }
    const engine_params& params() const { return p_; }
    int queued() const;   // waiting for a slot
    int running() const;  // holding a slot

private:
    struct sequence;
    void loop();

    std::shared_ptr<const llama_model> model_;
    std::shared_ptr<const tokenizer> vocab_;
    token_trie trie_;  // the vocabulary's pieces, for constrained sequences' masks
    thread_pool& pool_;
    const engine_params p_;

    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::deque<std::unique_ptr<sequence>> queue_;  // guarded by mu_
    int running_ = 0;                              // guarded by mu_
    bool stopping_ = false;                        // guarded by mu_
    std::thread thread_;
};

}  // namespace mm::text
