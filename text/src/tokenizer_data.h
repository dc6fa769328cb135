// tokenizer_data: what a tokenizer holds once its vocabulary is checked, and the lookups built from it.
// Private to tokenizer.cpp. Thread safety: filled once while loading, then only read.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "text/tokenizer.h"

namespace mm::text::detail {

// Hash and equality that let an unordered_map<std::string, ...> be searched with a string_view (no copy).
struct text_hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};
using text_map = std::unordered_map<std::string, int32_t, text_hash, std::equal_to<>>;

struct vocab_token {
    std::string text;
    float score = 0.0f;
    tokenizer::token_type type = tokenizer::token_type::normal;
};

// A byte trie of the special tokens' spellings, for finding every one that starts at a position.
struct special_trie {
    struct node {
        std::vector<std::pair<unsigned char, int32_t>> next;  // sorted by byte
        int32_t token = -1;                                   // the token spelled by the path to here
    };
    std::vector<node> nodes{node{}};

    // The child of node n along byte b, or -1.
    int32_t child(size_t n, unsigned char b) const {
        const auto& nx = nodes[n].next;
        auto it = std::lower_bound(nx.begin(), nx.end(), b, [](const auto& e, unsigned char v) { return e.first < v; });
        return it != nx.end() && it->first == b ? it->second : -1;
    }

    void insert(std::string_view s, int32_t id) {
        size_t at = 0;
        for (unsigned char b : s) {
            int32_t c = child(at, b);
            if (c < 0) {
                c = static_cast<int32_t>(nodes.size());
                auto& nx = nodes[at].next;
                nx.insert(std::lower_bound(nx.begin(), nx.end(), b, [](const auto& e, unsigned char v) { return e.first < v; }),
                          {b, c});
                nodes.emplace_back();  // nx is not used past this point
            }
            at = static_cast<size_t>(c);
        }
        nodes[at].token = id;
    }

    // Calls f(id) for each token whose spelling starts at text[at], shortest first.
    template <class F>
    void each_match(std::string_view text, size_t at, F f) const {
        size_t n = 0;
        for (size_t i = at; i < text.size(); ++i) {
            const int32_t c = child(n, static_cast<unsigned char>(text[i]));
            if (c < 0) return;
            n = static_cast<size_t>(c);
            if (nodes[n].token >= 0) f(nodes[n].token);
        }
    }
};

struct tokenizer_data {
    tokenizer::kind kind = tokenizer::kind::spm;
    bpe_pre pre = bpe_pre::gpt2;  // bpe only
    bool ignore_merges = false;   // bpe: a word that is a token is taken whole (llama3)

    std::vector<vocab_token> tokens;
    std::vector<std::string> pieces;  // what each token decodes to
    text_map by_text;                 // token text -> id (non-empty texts; duplicates are refused)
    text_map merge_rank;              // bpe: "left right" -> rank, lower merges first
    std::vector<int32_t> byte_token = std::vector<int32_t>(256, -1);  // spm byte fallback: byte -> id, -1 if none

    // Special tokens (control, user-defined, unknown) in matching order: longest spelling first, then by id.
    std::vector<int32_t> specials;
    std::vector<int32_t> special_rank;  // id -> position in specials, -1 for other tokens
    special_trie trie;
    bool any_user_defined = false;      // whether any special is matched without parse_special

    std::vector<int32_t> eog;  // sorted
    std::string space = "\xE2\x96\x81";  // spm: how pieces spell a space (U+2581; " " in llama2.c files)
    int32_t bos = -1, eos = -1, unk = -1;
    bool add_bos = false, add_eos = false, add_space_prefix = false;
};

}  // namespace mm::text::detail
