#include "text/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace mm::text {
namespace {

constexpr float k_neg_inf = -std::numeric_limits<float>::infinity();

double log_sum_exp(std::span<const float> x) {
    const float mx = *std::max_element(x.begin(), x.end());
    double s = 0;
    for (float v : x) s += std::exp(static_cast<double>(v) - mx);
    return mx + std::log(s);
}

}  // namespace

status validate(const sampling_params& p, int n_vocab) {
    // param: the request field at fault, which the sampling parameters share with the API.
    auto bad = [](const char* param, const std::string& m) { return status(errc::invalid_argument, m, param); };
    if (!(p.temperature >= 0.0f && p.temperature <= 2.0f)) return bad("temperature", "temperature must be between 0 and 2");
    if (p.top_k < 0) return bad("top_k", "top_k must be >= 0");
    if (!(p.top_p > 0.0f && p.top_p <= 1.0f)) return bad("top_p", "top_p must be in (0, 1]");
    if (!(p.min_p >= 0.0f && p.min_p <= 1.0f)) return bad("min_p", "min_p must be in [0, 1]");
    if (!(p.repetition_penalty > 0.0f && p.repetition_penalty <= 10.0f)) return bad("repetition_penalty", "repetition_penalty must be in (0, 10]");
    if (!(p.frequency_penalty >= -2.0f && p.frequency_penalty <= 2.0f)) return bad("frequency_penalty", "frequency_penalty must be between -2 and 2");
    if (!(p.presence_penalty >= -2.0f && p.presence_penalty <= 2.0f)) return bad("presence_penalty", "presence_penalty must be between -2 and 2");
    for (const auto& [id, bias] : p.logit_bias) {
        if (id < 0 || id >= n_vocab) return bad("logit_bias", "logit_bias names token " + std::to_string(id) + ", not in the vocabulary");
        if (!(bias >= -100.0f && bias <= 100.0f)) return bad("logit_bias", "logit_bias values must be between -100 and 100");
    }
    return ok_status();
}

sampler::sampler(sampling_params p) : p_(std::move(p)), rng_(p_.seed) {}

int32_t sampler::sample(std::span<float> logits, std::span<const int32_t> history, const std::vector<bool>* allowed) {
    const int n = static_cast<int>(logits.size());
    for (const auto& [id, bias] : p_.logit_bias) logits[static_cast<size_t>(id)] += bias;

    if (p_.repetition_penalty != 1.0f || p_.frequency_penalty != 0.0f || p_.presence_penalty != 0.0f) {
        std::unordered_map<int32_t, int> count;
        for (int32_t t : history) ++count[t];
        if (p_.repetition_penalty != 1.0f) {
            const size_t from = p_.penalty_last_n < 0 ? 0
                                : history.size() > static_cast<size_t>(p_.penalty_last_n) ? history.size() - p_.penalty_last_n
                                                                                           : 0;
            std::vector<bool> seen(static_cast<size_t>(n), false);
            for (size_t i = from; i < history.size(); ++i) seen[static_cast<size_t>(history[i])] = true;
            for (int t = 0; t < n; ++t)
                if (seen[static_cast<size_t>(t)]) {
                    float& l = logits[static_cast<size_t>(t)];
                    l = l > 0 ? l / p_.repetition_penalty : l * p_.repetition_penalty;
                }
        }
        for (const auto& [t, c] : count)
            logits[static_cast<size_t>(t)] -= static_cast<float>(c) * p_.frequency_penalty + p_.presence_penalty;
    }
    if (allowed)
        for (int t = 0; t < n; ++t)
            if (!(*allowed)[static_cast<size_t>(t)]) logits[static_cast<size_t>(t)] = k_neg_inf;

    if (p_.temperature == 0.0f)
        return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());

    // No step sorts the whole vocabulary (2 ms a token at 32k entries, on the engine's one thread, for every
    // sequence in the batch): top-k selects in linear time, min-p is a threshold, and only top-p needs an
    // order, and only as far as its cut. The draw walks the kept candidates in whatever order they are left
    // in, which is the same for the same inputs, so a seed still fixes the output.
    cand_.clear();
    for (int t = 0; t < n; ++t)
        if (logits[static_cast<size_t>(t)] != k_neg_inf) cand_.push_back({logits[static_cast<size_t>(t)], t, 0.0f});
    auto better = [](const candidate& a, const candidate& b) { return a.logit > b.logit || (a.logit == b.logit && a.id < b.id); };
    if (p_.top_k > 0 && static_cast<size_t>(p_.top_k) < cand_.size()) {
        std::nth_element(cand_.begin(), cand_.begin() + (p_.top_k - 1), cand_.end(), better);
        cand_.resize(static_cast<size_t>(p_.top_k));
    }
    // Softmax weights at temperature, relative to the best candidate (weight 1); z normalises over what
    // top-k kept, and top-p and min-p are both measured against that distribution.
    float top = k_neg_inf;
    for (const auto& c : cand_) top = std::max(top, c.logit);
    double z = 0;
    for (auto& c : cand_) z += c.weight = std::exp((c.logit - top) / p_.temperature);
    if (p_.min_p > 0.0f)  // p >= min_p * p_max is weight >= min_p
        std::erase_if(cand_, [&](const candidate& c) { return c.weight < p_.min_p; });
    if (p_.top_p < 1.0f) {
        // The smallest best-first prefix whose mass reaches top_p, found by halving: [0, lo) is kept and
        // better than all of [lo, hi), where the cut lies; `need` is the mass still to find there.
        double need = static_cast<double>(p_.top_p) * z;
        auto at = [&](size_t i) { return cand_.begin() + static_cast<long>(i); };
        size_t lo = 0, hi = cand_.size();
        while (hi - lo > 64) {
            const size_t mid = lo + (hi - lo) / 2;
            std::nth_element(at(lo), at(mid), at(hi), better);
            double mass = 0;
            for (size_t i = lo; i < mid; ++i) mass += cand_[i].weight;
            if (mass >= need) {
                hi = mid;
            } else {
                need -= mass;
                lo = mid;
            }
        }
        std::sort(at(lo), at(hi), better);
        double cum = 0;
        size_t i = lo;
        while (i + 1 < hi && (cum += cand_[i].weight) < need) ++i;
        cand_.resize(i + 1);
    }
    double total = 0;
    for (const auto& c : cand_) total += c.weight;
    // One draw per token from the request's own stream.
    const double u = std::uniform_real_distribution<double>(0.0, total)(rng_);
    double cum = 0;
    for (const auto& c : cand_)
        if ((cum += c.weight) > u) return c.id;
    return cand_.back().id;
}

token_logprob logprob_of(std::span<const float> logits, int32_t id) {
    return {id, static_cast<float>(logits[static_cast<size_t>(id)] - log_sum_exp(logits))};
}

std::vector<token_logprob> top_logprobs(std::span<const float> logits, int n) {
    const double lse = log_sum_exp(logits);
    std::vector<int32_t> ids(logits.size());
    for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>(i);
    n = std::min<int>(n, static_cast<int>(ids.size()));
    std::partial_sort(ids.begin(), ids.begin() + n, ids.end(), [&](int32_t a, int32_t b) {
        return logits[static_cast<size_t>(a)] > logits[static_cast<size_t>(b)] ||
               (logits[static_cast<size_t>(a)] == logits[static_cast<size_t>(b)] && a < b);
    });
    std::vector<token_logprob> out;
    for (int i = 0; i < n; ++i)
        out.push_back({ids[static_cast<size_t>(i)], static_cast<float>(logits[static_cast<size_t>(ids[static_cast<size_t>(i)])] - lse)});
    return out;
}

}  // namespace mm::text
