// generation: what a caller asks of the text stage and what it gets back, token by token and at the end.
// Plain values; no model types, so the HTTP layer can speak it.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/cancel.h"
#include "common/status.h"
#include "text/json_constraint.h"
#include "text/sampler.h"

namespace mm::text {

struct generate_request {
    std::vector<int32_t> prompt;
    sampling_params sampling;
    int max_tokens = 0;             // 0: until the context is full
    std::vector<std::string> stop;  // up to 4, as OpenAI; matched across token boundaries, never emitted
    int top_logprobs = -1;          // -1: no logprobs; 0..20: the chosen token's and this many alternatives
    bool ignore_eos = false;
    json_schema_ptr constraint;  // set: the output is a JSON document this schema accepts, and ends with it
    cancel_token cancel;
};

struct generated_token {
    int32_t id = 0;
    std::string text;  // bytes released with this token (may be empty while held back)
    std::optional<token_logprob> logprob;
    std::vector<token_logprob> top;
};

enum class finish_reason { stop, length, cancelled };
const char* finish_reason_name(finish_reason r);

struct generate_result {
    finish_reason reason = finish_reason::stop;
    int prompt_tokens = 0;
    int cached_tokens = 0;  // of the prompt, found already in the KV cache (not computed again)
    int completion_tokens = 0;
    std::string text;  // everything released, in order
};

using on_token_fn = std::function<void(const generated_token&)>;
using on_done_fn = std::function<void(result<generate_result>)>;

// A request with its callbacks, as queued (text_engine::submit_all takes several: the choices of one call).
struct generate_job {
    generate_request req;
    on_token_fn on_token;
    on_done_fn on_done;
};

}  // namespace mm::text
