// sampler: picks the next token from a row of logits. Order of the steps (as llama.cpp's default chain):
// logit bias, repetition / frequency / presence penalties over the sequence's tokens, the allowed-token mask
// (constrained decoding), then greedy when temperature is 0, else top-k, temperature, top-p, min-p and a draw
// from the request's own random stream. A request's output depends only on its seed and inputs: the stream
// is seeded per request and advanced once per sampled token, whatever else is in the batch.
// Thread safety: one sampler per sequence; not shared.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <unordered_map>
#include <vector>

#include "common/status.h"

namespace mm::text {

struct sampling_params {
    float temperature = 1.0f;         // 0: greedy
    int top_k = 0;                    // 0: off
    float top_p = 1.0f;               // 1: off
    float min_p = 0.0f;               // 0: off
    float repetition_penalty = 1.0f;  // llama.cpp's repeat_penalty: positive logits divided, negative multiplied
    float frequency_penalty = 0.0f;   // OpenAI: minus count * frequency_penalty
    float presence_penalty = 0.0f;    // OpenAI: minus presence_penalty once a token has appeared
    int penalty_last_n = 64;          // how many recent tokens the repetition penalty looks at; -1: all
    uint64_t seed = 0;
    std::unordered_map<int32_t, float> logit_bias{};  // OpenAI logit_bias, added before everything else
};
status validate(const sampling_params& p, int n_vocab);

struct token_logprob {
    int32_t id = 0;
    float logprob = 0.0f;
};

class sampler {
public:
    explicit sampler(sampling_params p);

    // Samples from logits (modified in place). history: the sequence's tokens so far (prompt and output) for
    // the penalties. allowed: when not empty, a mask over the vocabulary; at least one entry must be true.
    int32_t sample(std::span<float> logits, std::span<const int32_t> history, const std::vector<bool>* allowed = nullptr);

    const sampling_params& params() const { return p_; }

private:
    sampling_params p_;
    std::mt19937_64 rng_;
    struct candidate {
        float logit;
        int32_t id;
        float weight;  // exp((logit - best) / temperature)
    };
    std::vector<candidate> cand_;  // scratch
};

// Natural-log softmax of the raw logits: the chosen token's logprob and the top n alternatives (OpenAI
// logprobs / top_logprobs, which report the model's distribution, not the sampling-modified one).
token_logprob logprob_of(std::span<const float> logits, int32_t id);
std::vector<token_logprob> top_logprobs(std::span<const float> logits, int n);

}  // namespace mm::text
