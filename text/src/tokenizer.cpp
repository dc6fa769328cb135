// tokenizer: loading a vocabulary (every count, id, type and string checked), the lookups built from it, cutting
// text at special tokens, and the two merge algorithms. The Unicode tables and the BPE pre-tokenizers are in
// tokenizer_unicode.h and tokenizer_pre.h; this file is the only one that includes them, so the fuzz target
// can compile the tokenizer from this one source.
#include "text/tokenizer.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <queue>

#include "tokenizer_data.h"
#include "tokenizer_pre.h"
#include "tokenizer_unicode.h"

namespace mm::text {

using detail::tokenizer_data;
using detail::vocab_token;

namespace {

constexpr size_t k_max_vocab = size_t{1} << 22;        // 4M tokens; real vocabularies are below 300K
constexpr size_t k_max_merges = size_t{1} << 22;
constexpr size_t k_max_token_bytes = 1024;             // real tokens are below 300 bytes
constexpr uintmax_t k_max_llama2c_bytes = uintmax_t{1} << 28;

status corrupt(const std::string& what) { return status(errc::corrupt_file, "tokenizer: " + what); }

// A token's text for a message: short, and shown as escapes where not printable ASCII.
std::string shown(std::string_view s) {
    std::string out = "'";
    for (size_t i = 0; i < s.size() && i < 40; ++i) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c >= 0x20 && c < 0x7F && c != '\'') {
            out += static_cast<char>(c);
        } else {
            char b[8];
            std::snprintf(b, sizeof b, "\\x%02X", c);
            out += b;
        }
    }
    return out + (s.size() > 40 ? "...'" : "'");
}

// "<0xNN>" -> NN (either case of hex digits), else -1.
int byte_token_value(std::string_view t) {
    if (t.size() != 6 || t.substr(0, 3) != "<0x" || t[5] != '>') return -1;
    int v = 0;
    for (char c : t.substr(3, 2)) {
        v *= 16;
        if (c >= '0' && c <= '9') v += c - '0';
        else if (c >= 'A' && c <= 'F') v += c - 'A' + 10;
        else if (c >= 'a' && c <= 'f') v += c - 'a' + 10;
        else return -1;
    }
    return v;
}

// A special token id under key: absent -> fallback (or none if the fallback is not in the vocabulary);
// 0xFFFFFFFF or -1 -> none; any other value must name a token.
result<int32_t> read_id(const gguf_file& f, const std::string& key, size_t n, int32_t fallback) {
    const gguf_value* v = f.find(key);
    if (!v) return fallback >= 0 && static_cast<size_t>(fallback) < n ? fallback : -1;
    if (const auto* u = std::get_if<uint64_t>(&v->data)) {
        if (*u == 0xFFFFFFFFu || *u == UINT64_MAX) return -1;
        if (*u >= n) return corrupt(key + " is " + std::to_string(*u) + ", past the " + std::to_string(n) + " tokens");
        return static_cast<int32_t>(*u);
    }
    if (const auto* s = std::get_if<int64_t>(&v->data)) {
        if (*s == -1) return -1;
        if (*s < 0 || static_cast<uint64_t>(*s) >= n)
            return corrupt(key + " is " + std::to_string(*s) + ", outside the " + std::to_string(n) + " tokens");
        return static_cast<int32_t>(*s);
    }
    return corrupt(key + " is a " + std::string(gguf_type_name(v->type)) + ", not an integer");
}

result<bool> read_flag(const gguf_file& f, const char* key, bool fallback) {
    if (!f.find(key)) return fallback;
    auto v = f.get_bool(key);
    if (!v) return v.error().context("tokenizer");
    return *v;
}

// The BPE pre-tokenizers by GGUF name, with the flags llama.cpp sets for them.
struct pre_row {
    std::string_view name;
    bpe_pre pre;
    bool ignore_merges;  // a word that is a token is taken whole
    bool add_bos;        // the default when tokenizer.ggml.add_bos_token is absent
};
constexpr pre_row k_pre_rows[] = {
    {"default", bpe_pre::fallback, false, false},
    {"gpt-2", bpe_pre::gpt2, false, false},
    {"phi-2", bpe_pre::gpt2, false, false},
    {"mpt", bpe_pre::gpt2, false, false},
    {"olmo", bpe_pre::gpt2, false, false},
    {"llama3", bpe_pre::llama3, true, true},
    {"llama-v3", bpe_pre::llama3, true, true},
    {"llama-bpe", bpe_pre::llama3, true, true},
    {"falcon3", bpe_pre::llama3, true, true},
    {"dbrx", bpe_pre::llama3, false, false},
    {"smaug-bpe", bpe_pre::llama3, false, false},
    {"qwen2", bpe_pre::qwen2, false, false},
    {"deepseek-r1-qwen", bpe_pre::qwen2, false, false},
    {"stablelm2", bpe_pre::qwen2, false, false},
    {"megrez", bpe_pre::qwen2, false, false},
};

// Turn ends that llama.cpp recognizes by their text; they end generation and are treated as control tokens.
constexpr std::string_view k_eog_texts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>",
    "_<EOT>", "<|end_of_text|>", "<end_of_utterance>", "<\xEF\xBD\x9C" "end\xE2\x96\x81" "of\xE2\x96\x81" "sentence\xEF\xBD\x9C>",
};

bool is_special_type(tokenizer::token_type t) {
    using tt = tokenizer::token_type;
    return t == tt::control || t == tt::user_defined || t == tt::unknown;
}

// What a token decodes to (see tokenizer::piece).
std::string decode_piece(const tokenizer_data& d, const vocab_token& t) {
    using tt = tokenizer::token_type;
    switch (t.type) {
        case tt::control: case tt::unknown: case tt::unused: return {};
        case tt::byte: return std::string(1, static_cast<char>(byte_token_value(t.text)));
        case tt::user_defined: return t.text;
        case tt::normal: break;
    }
    std::string out;
    if (d.kind == tokenizer::kind::bpe) {  // back from the byte-level alphabet
        for (const auto& u : detail::utf8_units(t.text)) {
            const int b = detail::byte_of_symbol(u.cp);
            if (b >= 0) out += static_cast<char>(b);
            else out.append(t.text, u.at, u.n);
        }
        return out;
    }
    for (size_t i = 0; i < t.text.size();) {
        if (t.text.compare(i, d.space.size(), d.space) == 0) {
            out += ' ';
            i += d.space.size();
        } else {
            out += t.text[i++];
        }
    }
    return out;
}

// Checks what is common to both file formats and builds the lookups. d.tokens, kind, ids and flags are set.
status finish(tokenizer_data& d) {
    using tt = tokenizer::token_type;
    const auto n = static_cast<int32_t>(d.tokens.size());
    d.by_text.reserve(d.tokens.size());
    for (int32_t i = 0; i < n; ++i) {
        const vocab_token& t = d.tokens[static_cast<size_t>(i)];
        if (t.text.size() > k_max_token_bytes)
            return corrupt("token " + std::to_string(i) + " is " + std::to_string(t.text.size()) + " bytes long");
        if (!detail::utf8_valid(t.text)) return corrupt("token " + std::to_string(i) + " " + shown(t.text) + " is not UTF-8");
        if (std::isnan(t.score)) return corrupt("token " + std::to_string(i) + " has a NaN score");
        if (t.type == tt::byte && byte_token_value(t.text) < 0)
            return corrupt("token " + std::to_string(i) + " " + shown(t.text) + " is a byte token not spelled <0xNN>");
        if (t.text.empty()) continue;  // findable by no text; it decodes to nothing
        auto [it, fresh] = d.by_text.try_emplace(t.text, i);
        if (!fresh)
            return corrupt("tokens " + std::to_string(it->second) + " and " + std::to_string(i) + " are both " + shown(t.text));
    }
    auto lookup = [&](std::string_view s) {
        auto it = d.by_text.find(s);
        return it == d.by_text.end() ? -1 : it->second;
    };

    // Byte fallback as llama.cpp does it: the <0xNN> token, else a token that is the byte itself.
    for (int b = 0; b < 256; ++b) {
        char name[8];
        std::snprintf(name, sizeof name, "<0x%02X>", b);
        int32_t id = lookup(name);
        if (id < 0) id = lookup(std::string(1, static_cast<char>(b)));
        d.byte_token[static_cast<size_t>(b)] = id;
    }

    for (std::string_view s : k_eog_texts) {
        if (const int32_t id = lookup(s); id >= 0) {
            d.tokens[static_cast<size_t>(id)].type = tt::control;
            d.eog.push_back(id);
        }
    }
    if (d.eos >= 0) d.eog.push_back(d.eos);
    std::sort(d.eog.begin(), d.eog.end());
    d.eog.erase(std::unique(d.eog.begin(), d.eog.end()), d.eog.end());

    d.special_rank.assign(d.tokens.size(), -1);
    for (int32_t i = 0; i < n; ++i)
        if (is_special_type(d.tokens[static_cast<size_t>(i)].type) && !d.tokens[static_cast<size_t>(i)].text.empty())
            d.specials.push_back(i);
    std::stable_sort(d.specials.begin(), d.specials.end(), [&](int32_t a, int32_t b) {
        return d.tokens[static_cast<size_t>(a)].text.size() > d.tokens[static_cast<size_t>(b)].text.size();
    });
    for (size_t r = 0; r < d.specials.size(); ++r) {
        const auto id = static_cast<size_t>(d.specials[r]);
        d.special_rank[id] = static_cast<int32_t>(r);
        d.trie.insert(d.tokens[id].text, static_cast<int32_t>(id));
        d.any_user_defined |= d.tokens[id].type == tt::user_defined;
    }

    d.pieces.reserve(d.tokens.size());
    for (const vocab_token& t : d.tokens) d.pieces.push_back(decode_piece(d, t));

    if (d.add_bos && d.bos < 0) return corrupt("add_bos_token is set but the vocabulary has no BOS token");
    if (d.add_eos && d.eos < 0) return corrupt("add_eos_token is set but the vocabulary has no EOS token");
    return ok_status();
}

// ---- encoding ----

// A run of text, or a special token found in it.
struct fragment {
    size_t at = 0, n = 0;
    int32_t id = -1;  // >= 0: this special token
};

// Cuts text at the spellings of special tokens the way llama.cpp does: each token in turn, longest first, takes
// every occurrence (left to right, not overlapping) that lies wholly in text no earlier token has taken.
// User-defined tokens always take part; control and unknown ones only with parse_special.
std::vector<fragment> partition(const tokenizer_data& d, std::string_view text, bool parse_special) {
    using tt = tokenizer::token_type;
    struct hit {
        int32_t rank;
        size_t at;
    };
    std::vector<hit> hits;
    if (parse_special || d.any_user_defined) {
        for (size_t i = 0; i < text.size(); ++i) {
            d.trie.each_match(text, i, [&](int32_t id) {
                const tt type = d.tokens[static_cast<size_t>(id)].type;
                if (type == tt::user_defined || parse_special) hits.push_back({d.special_rank[static_cast<size_t>(id)], i});
            });
        }
    }
    std::sort(hits.begin(), hits.end(), [](const hit& a, const hit& b) { return a.rank < b.rank || (a.rank == b.rank && a.at < b.at); });
    std::map<size_t, std::pair<size_t, int32_t>> taken;  // start -> (end, id); disjoint
    for (const hit& h : hits) {
        const int32_t id = d.specials[static_cast<size_t>(h.rank)];
        const size_t end = h.at + d.tokens[static_cast<size_t>(id)].text.size();
        auto next = taken.lower_bound(end);  // the first taken run starting at or after end
        if (next != taken.begin() && std::prev(next)->second.first > h.at) continue;  // overlaps a taken run
        taken.emplace(h.at, std::pair{end, id});
    }
    std::vector<fragment> out;
    size_t at = 0;
    for (const auto& [start, run] : taken) {
        if (start > at) out.push_back({at, start - at, -1});
        out.push_back({start, run.first - start, run.second});
        at = run.first;
    }
    if (at < text.size()) out.push_back({at, text.size() - at, -1});
    return out;
}

struct symbol {
    int32_t prev, next;  // neighbours in the list, -1 at the ends
    size_t at, n;        // bytes of the text; n == 0 once merged into the symbol on its left
};

// Splits text into symbols at UTF-8 characters (a byte that starts none stands alone), then repeatedly merges
// the adjacent pair with the highest priority (the leftmost on ties) for as long as priority(at, n_left,
// n_right) has one for some pair. A priority queue of candidate pairs, with stale ones skipped, makes this
// O(n log n). Returns the symbols; the live ones are linked from symbol 0.
template <class Priority>
std::vector<symbol> merge_symbols(std::string_view text, Priority priority) {
    std::vector<symbol> sym;
    sym.reserve(text.size());
    for (size_t i = 0; i < text.size();) {
        const size_t n = std::max<size_t>(1, detail::utf8_seq_len(text, i));
        const auto k = static_cast<int32_t>(sym.size());
        sym.push_back({k - 1, k + 1, i, n});
        i += n;
    }
    if (sym.empty()) return sym;
    sym.back().next = -1;

    struct candidate {
        double priority;
        int32_t left;
        size_t n;  // bytes of the pair when it was queued: a pair whose sides have changed since is stale
    };
    auto later = [](const candidate& a, const candidate& b) {
        return a.priority < b.priority || (a.priority == b.priority && a.left > b.left);
    };
    std::priority_queue<candidate, std::vector<candidate>, decltype(later)> queue(later);
    auto consider = [&](int32_t l, int32_t r) {
        if (l < 0 || r < 0) return;
        const symbol& a = sym[static_cast<size_t>(l)];
        const symbol& b = sym[static_cast<size_t>(r)];
        if (auto p = priority(a.at, a.n, b.n)) queue.push({*p, l, a.n + b.n});
    };
    for (size_t i = 1; i < sym.size(); ++i) consider(static_cast<int32_t>(i) - 1, static_cast<int32_t>(i));
    while (!queue.empty()) {
        const candidate c = queue.top();
        queue.pop();
        symbol& l = sym[static_cast<size_t>(c.left)];
        if (l.n == 0 || l.next < 0) continue;
        symbol& r = sym[static_cast<size_t>(l.next)];
        if (l.n + r.n != c.n) continue;
        l.n += r.n;
        r.n = 0;
        l.next = r.next;
        if (l.next >= 0) sym[static_cast<size_t>(l.next)].prev = c.left;
        consider(l.prev, c.left);
        consider(c.left, l.next);
    }
    return sym;
}

int32_t find_id(const tokenizer_data& d, std::string_view s) {
    auto it = d.by_text.find(s);
    return it == d.by_text.end() ? -1 : it->second;
}

// SentencePiece BPE over text whose spaces are already spelled d.space.
void encode_spm(const tokenizer_data& d, std::string_view text, std::vector<int32_t>& out) {
    const auto sym = merge_symbols(text, [&](size_t at, size_t nl, size_t nr) -> std::optional<double> {
        const int32_t id = find_id(d, text.substr(at, nl + nr));
        if (id < 0) return std::nullopt;
        return d.tokens[static_cast<size_t>(id)].score;
    });
    for (int32_t i = sym.empty() ? -1 : 0; i >= 0; i = sym[static_cast<size_t>(i)].next) {
        const symbol& s = sym[static_cast<size_t>(i)];
        if (const int32_t id = find_id(d, text.substr(s.at, s.n)); id >= 0) {
            out.push_back(id);
            continue;
        }
        for (unsigned char b : text.substr(s.at, s.n)) {  // a character with no token: its bytes
            const int32_t id = d.byte_token[b] >= 0 ? d.byte_token[b] : d.unk;
            if (id >= 0) out.push_back(id);
        }
    }
}

// Byte-level BPE over one pre-tokenized word.
void encode_bpe_word(const tokenizer_data& d, std::string_view word, std::string& mapped, std::string& key,
                     std::vector<int32_t>& out) {
    mapped.clear();
    detail::append_byte_symbols(mapped, word);
    if (d.ignore_merges) {
        if (const int32_t id = find_id(d, mapped); id >= 0) {
            out.push_back(id);
            return;
        }
    }
    const std::string_view m = mapped;
    const auto sym = merge_symbols(m, [&](size_t at, size_t nl, size_t nr) -> std::optional<double> {
        key.assign(m.substr(at, nl));
        key += ' ';
        key.append(m.substr(at + nl, nr));
        auto it = d.merge_rank.find(std::string_view(key));
        if (it == d.merge_rank.end()) return std::nullopt;
        return -static_cast<double>(it->second);
    });
    for (int32_t i = sym.empty() ? -1 : 0; i >= 0; i = sym[static_cast<size_t>(i)].next) {
        const symbol& s = sym[static_cast<size_t>(i)];
        const std::string_view piece = m.substr(s.at, s.n);
        if (const int32_t id = find_id(d, piece); id >= 0) {
            out.push_back(id);
            continue;
        }
        // A merge whose result is not a token (an inconsistent vocabulary): spell its characters.
        for (const auto& u : detail::utf8_units(piece)) {
            const int32_t id = find_id(d, piece.substr(u.at, u.n));
            if (id >= 0) out.push_back(id);
            else if (d.unk >= 0) out.push_back(d.unk);
        }
    }
}

}  // namespace

// ---- public ----

std::vector<std::string_view> bpe_pre_split(bpe_pre p, std::string_view text) { return detail::pre_split(p, text); }

tokenizer::tokenizer(std::unique_ptr<const tokenizer_data> d) : d_(std::move(d)) {}
tokenizer::tokenizer(tokenizer&&) noexcept = default;
tokenizer& tokenizer::operator=(tokenizer&&) noexcept = default;
tokenizer::~tokenizer() = default;

result<tokenizer> tokenizer::from_gguf(const gguf_file& f) {
    auto d = std::make_unique<tokenizer_data>();
    if (!f.find("tokenizer.ggml.model")) return corrupt("no tokenizer.ggml.model: the file has no vocabulary");
    auto model = f.get_string("tokenizer.ggml.model");
    if (!model) return model.error().context("tokenizer");

    if (*model == "llama") {
        d->kind = kind::spm;
        d->add_bos = true;
        d->add_space_prefix = true;
    } else if (*model == "gpt2") {
        d->kind = kind::bpe;
        std::string_view pre_name = "default";  // llama.cpp's choice (with a warning) when the key is absent
        auto pre = f.find("tokenizer.ggml.pre") ? f.get_string("tokenizer.ggml.pre") : result<std::string_view>(pre_name);
        if (!pre) return pre.error().context("tokenizer");
        const auto row = std::find_if(std::begin(k_pre_rows), std::end(k_pre_rows), [&](const pre_row& r) { return r.name == *pre; });
        if (row == std::end(k_pre_rows))
            return status(errc::unsupported, "tokenizer: BPE pre-tokenizer '" + std::string(*pre) +
                                                 "' is not supported (gpt2, llama3 and qwen2 families, default)");
        d->pre = row->pre;
        d->ignore_merges = row->ignore_merges;
        d->add_bos = row->add_bos;

        if (!f.find("tokenizer.ggml.merges")) return corrupt("no tokenizer.ggml.merges for a gpt2 vocabulary");
        auto merges = f.get_string_array("tokenizer.ggml.merges");
        if (!merges) return merges.error().context("tokenizer");
        if (merges->size() > k_max_merges) return corrupt(std::to_string(merges->size()) + " merges is too many");
        d->merge_rank.reserve(merges->size());
        for (size_t i = 0; i < merges->size(); ++i) {
            std::string& m = (*merges)[i];
            const size_t sp = m.find(' ', 1);
            if (sp == std::string::npos || sp + 1 == m.size())
                return corrupt("merge " + std::to_string(i) + " " + shown(m) + " is not two pieces separated by a space");
            d->merge_rank.try_emplace(std::move(m), static_cast<int32_t>(i));  // the first of duplicates ranks
        }
    } else {
        return status(errc::unsupported, "tokenizer: model '" + std::string(*model) + "' is not supported (llama, gpt2)");
    }

    if (!f.find("tokenizer.ggml.tokens")) return corrupt("no tokenizer.ggml.tokens");
    auto texts = f.get_string_array("tokenizer.ggml.tokens");
    if (!texts) return texts.error().context("tokenizer");
    const size_t n = texts->size();
    if (n == 0 || n > k_max_vocab) return corrupt(std::to_string(n) + " tokens is outside 1.." + std::to_string(k_max_vocab));

    std::vector<float> scores;
    if (const gguf_value* v = f.find("tokenizer.ggml.scores")) {
        const auto* arr = std::get_if<gguf_array>(&v->data);
        if (arr && arr->elem_type == gguf_type::i32) {  // llama.cpp accepts integer scores too
            auto s = f.get_i32_array("tokenizer.ggml.scores");
            if (!s) return s.error().context("tokenizer");
            scores.assign(s->begin(), s->end());
        } else {
            auto s = f.get_f32_array("tokenizer.ggml.scores");
            if (!s) return s.error().context("tokenizer");
            scores = std::move(*s);
        }
        if (scores.size() != n)
            return corrupt(std::to_string(scores.size()) + " scores for " + std::to_string(n) + " tokens");
    }
    std::vector<int32_t> types;
    if (f.find("tokenizer.ggml.token_type")) {
        auto t = f.get_i32_array("tokenizer.ggml.token_type");
        if (!t) return t.error().context("tokenizer");
        types = std::move(*t);
        if (types.size() != n) return corrupt(std::to_string(types.size()) + " token types for " + std::to_string(n) + " tokens");
    }
    d->tokens.resize(n);
    for (size_t i = 0; i < n; ++i) {
        vocab_token& t = d->tokens[i];
        t.text = std::move((*texts)[i]);
        if (!scores.empty()) t.score = scores[i];
        if (!types.empty()) {
            if (types[i] < 1 || types[i] > 6)
                return corrupt("token " + std::to_string(i) + " has type " + std::to_string(types[i]) + ", outside 1..6");
            t.type = static_cast<token_type>(types[i]);
        }
    }

    const bool spm = d->kind == kind::spm;
    MM_ASSIGN(d->bos, read_id(f, "tokenizer.ggml.bos_token_id", n, spm ? 1 : -1));
    MM_ASSIGN(d->eos, read_id(f, "tokenizer.ggml.eos_token_id", n, spm ? 2 : -1));
    MM_ASSIGN(d->unk, read_id(f, "tokenizer.ggml.unknown_token_id", n, spm ? 0 : -1));
    MM_ASSIGN(const int32_t pad, read_id(f, "tokenizer.ggml.padding_token_id", n, -1));
    MM_ASSIGN(const int32_t eot, read_id(f, "tokenizer.ggml.eot_token_id", n, -1));
    MM_ASSIGN(const int32_t eom, read_id(f, "tokenizer.ggml.eom_token_id", n, -1));
    (void)pad;  // checked, not used: encode() never pads
    for (int32_t id : {eot, eom})
        if (id >= 0) d->eog.push_back(id);
    MM_ASSIGN(d->add_bos, read_flag(f, "tokenizer.ggml.add_bos_token", d->add_bos));
    MM_ASSIGN(d->add_eos, read_flag(f, "tokenizer.ggml.add_eos_token", false));
    if (spm) {
        MM_ASSIGN(d->add_space_prefix, read_flag(f, "tokenizer.ggml.add_space_prefix", true));
    }
    MM_TRY(finish(*d));
    return tokenizer(std::move(d));
}

result<tokenizer> tokenizer::parse_llama2c(std::span<const std::byte> bytes, std::optional<int32_t> n_vocab) {
    if (n_vocab && (*n_vocab < 3 || static_cast<size_t>(*n_vocab) > k_max_vocab))
        return status(errc::invalid_argument, "tokenizer: n_vocab " + std::to_string(*n_vocab) + " is out of range");
    size_t at = 0;
    auto read = [&](void* out, size_t n) {
        if (bytes.size() - at < n) return false;
        std::memcpy(out, bytes.data() + at, n);
        at += n;
        return true;
    };
    int32_t max_len = 0;
    if (!read(&max_len, 4)) return corrupt("llama2.c file of " + std::to_string(bytes.size()) + " bytes has no header");
    if (max_len <= 0 || static_cast<size_t>(max_len) > k_max_token_bytes)
        return corrupt("llama2.c max_token_length " + std::to_string(max_len) + " is outside 1.." + std::to_string(k_max_token_bytes));

    auto d = std::make_unique<tokenizer_data>();
    while (at < bytes.size()) {
        const size_t i = d->tokens.size();
        if (n_vocab && i == static_cast<size_t>(*n_vocab))
            return corrupt(std::to_string(bytes.size() - at) + " bytes follow the " + std::to_string(i) + " tokens");
        if (i == k_max_vocab) return corrupt("more than " + std::to_string(k_max_vocab) + " tokens");
        vocab_token t;
        int32_t len = 0;
        if (!read(&t.score, 4) || !read(&len, 4)) return corrupt("token " + std::to_string(i) + ": the record is cut short");
        if (len < 0 || len > max_len)
            return corrupt("token " + std::to_string(i) + ": length " + std::to_string(len) + " is outside 0.." + std::to_string(max_len));
        t.text.resize(static_cast<size_t>(len));
        if (!read(t.text.data(), t.text.size())) return corrupt("token " + std::to_string(i) + ": the text is cut short");
        d->tokens.push_back(std::move(t));
    }
    if (n_vocab && d->tokens.size() != static_cast<size_t>(*n_vocab))
        return corrupt("the file has " + std::to_string(d->tokens.size()) + " tokens, the model " + std::to_string(*n_vocab));
    if (d->tokens.size() < 3) return corrupt("the file has " + std::to_string(d->tokens.size()) + " tokens, fewer than <unk>, <s>, </s>");

    // llama2.c's fixed ids and spellings. Its exporter writes BOS and EOS as "\n<s>\n" and "\n</s>\n"; they are
    // renamed, and the types assigned, as llama.cpp's llama2.c converter does, so both formats agree.
    for (vocab_token& t : d->tokens) {
        if (byte_token_value(t.text) >= 0) t.type = token_type::byte;
        else if (t.text.empty()) t.type = token_type::control;
    }
    d->tokens[0] = {"<unk>", d->tokens[0].score, token_type::unknown};
    d->tokens[1] = {"<s>", d->tokens[1].score, token_type::control};
    d->tokens[2] = {"</s>", d->tokens[2].score, token_type::control};
    d->kind = kind::spm;
    d->space = " ";
    d->unk = 0;
    d->bos = 1;
    d->eos = 2;
    d->add_bos = true;
    d->add_space_prefix = true;
    MM_TRY(finish(*d));
    return tokenizer(std::move(d));
}

result<tokenizer> tokenizer::from_llama2c(const std::filesystem::path& p, std::optional<int32_t> n_vocab) {
    std::error_code ec;
    const uintmax_t size = std::filesystem::file_size(p, ec);
    if (ec) return status(errc::io_error, "tokenizer: cannot read " + p.string() + ": " + ec.message());
    if (size > k_max_llama2c_bytes) return corrupt(p.string() + " is " + std::to_string(size) + " bytes, too large for a tokenizer");
    std::vector<std::byte> bytes(static_cast<size_t>(size));
    std::ifstream in(p, std::ios::binary);
    if (!in || !in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(bytes.size())))
        return status(errc::io_error, "tokenizer: cannot read " + p.string());
    auto t = parse_llama2c(bytes, n_vocab);
    if (!t) return t.error().context(p.filename().string());
    return t;
}

std::vector<int32_t> tokenizer::encode(std::string_view text, bool add_special, bool parse_special) const {
    const tokenizer_data& d = *d_;
    std::vector<int32_t> out;
    out.reserve(text.size() / 3 + 2);
    if (add_special && d.add_bos) out.push_back(d.bos);
    bool after_special = true;  // spm: the text at the start and after a special token gets the dummy prefix
    std::string buf, mapped, key;
    for (const fragment& f : partition(d, text, parse_special)) {
        if (f.id >= 0) {
            out.push_back(f.id);
            after_special = true;
            continue;
        }
        const std::string_view raw = text.substr(f.at, f.n);
        if (d.kind == kind::spm) {
            buf.clear();
            if (d.add_space_prefix && after_special) buf += d.space;
            for (char c : raw) {
                if (c == ' ') buf += d.space;
                else buf += c;
            }
            encode_spm(d, buf, out);
        } else {
            for (std::string_view word : detail::pre_split(d.pre, raw)) encode_bpe_word(d, word, mapped, key, out);
        }
        after_special = false;
    }
    if (add_special && d.add_eos) out.push_back(d.eos);
    return out;
}

std::string tokenizer::piece(int32_t id) const {
    if (id < 0 || id >= n_vocab()) return {};
    return d_->pieces[static_cast<size_t>(id)];
}

const std::string& tokenizer::token_text(int32_t id) const {
    static const std::string none;
    if (id < 0 || id >= n_vocab()) return none;
    return d_->tokens[static_cast<size_t>(id)].text;
}

tokenizer::token_type tokenizer::type_of(int32_t id) const {
    if (id < 0 || id >= n_vocab()) return token_type::unused;
    return d_->tokens[static_cast<size_t>(id)].type;
}

std::optional<int32_t> tokenizer::find(std::string_view text) const {
    const int32_t id = find_id(*d_, text);
    if (id < 0) return std::nullopt;
    return id;
}

int32_t tokenizer::n_vocab() const { return static_cast<int32_t>(d_->tokens.size()); }
int32_t tokenizer::bos() const { return d_->bos; }
int32_t tokenizer::eos() const { return d_->eos; }
int32_t tokenizer::unk() const { return d_->unk; }
bool tokenizer::add_bos() const { return d_->add_bos; }
bool tokenizer::add_eos() const { return d_->add_eos; }
tokenizer::kind tokenizer::type() const { return d_->kind; }
std::optional<bpe_pre> tokenizer::pre() const {
    if (d_->kind != kind::bpe) return std::nullopt;
    return d_->pre;
}

bool tokenizer::is_eog(int32_t id) const { return std::binary_search(d_->eog.begin(), d_->eog.end(), id); }

}  // namespace mm::text
