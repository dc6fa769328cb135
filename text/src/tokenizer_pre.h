// tokenizer_pre: the BPE pre-tokenizers, hand-written matchers for the regular expressions named in bpe_pre.
// Each works on code point units and keeps the regex's semantics: alternatives tried in order, greedy
// quantifiers, and the \s+(?!\S) backtrack that leaves a run's last space to the word after it. The text is cut
// into pieces by a chain of splitters, each refining the pieces of the one before, as llama.cpp chains its
// expressions. Private to tokenizer.cpp (the fuzz build compiles that one file), hence inline.
// Thread safety: pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "text/tokenizer.h"
#include "tokenizer_unicode.h"

namespace mm::text::detail {

struct pre_text {
    std::vector<utf8_unit> u;
    std::vector<cp_class> c;
    explicit pre_text(std::string_view text) : u(utf8_units(text)) {
        c.reserve(u.size());
        for (const auto& x : u) c.push_back(classify(x.cp));
    }
    bool nl(size_t k) const { return u[k].cp == '\r' || u[k].cp == '\n'; }
};

// Pieces are kept as their end indices into pre_text::u; a piece starts where the one before ends.
using piece_ends = std::vector<size_t>;

// 's|'t|'re|'ve|'m|'ll|'d at k, case-insensitively if asked: the match's length, or 0.
inline size_t contraction_at(const pre_text& t, size_t k, size_t e, bool any_case) {
    if (t.u[k].cp != '\'' || k + 1 >= e) return 0;
    auto low = [&](size_t i) { return any_case ? ascii_lower(t.u[i].cp) : t.u[i].cp; };
    const uint32_t a = low(k + 1);
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
    if (k + 2 >= e) return 0;
    const uint32_t b = low(k + 2);
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
    return 0;
}

// \s+(?!\S)|\s+ at k, where t.c[k] is a space: the whole run at the end of the piece or when it is one space,
// else all but its last space. Returns the end.
inline size_t space_run_end(const pre_text& t, size_t k, size_t e) {
    size_t j = k;
    while (j < e && t.c[j].space) ++j;
    if (j - k > 1 && j < e) --j;
    return j > k ? j : k + 1;
}

// GPT-2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ over units [b, e).
inline void split_gpt2(const pre_text& t, size_t b, size_t e, piece_ends& out) {
    for (size_t pos = b; pos < e;) {
        if (size_t n = contraction_at(t, pos, e, false)) {
            pos += n;
            out.push_back(pos);
            continue;
        }
        // The optional leading space belongs to a run of letters, numbers or others right after it.
        const size_t head = t.u[pos].cp == ' ' && pos + 1 < e ? pos + 1 : pos;
        const cp_class h = t.c[head];
        auto run = [&](auto same) {
            size_t k = head;
            while (k < e && same(t.c[k])) ++k;
            return k;
        };
        if (h.letter) pos = run([](const cp_class& c) { return c.letter; });
        else if (h.number) pos = run([](const cp_class& c) { return c.number; });
        else if (h.other()) pos = run([](const cp_class& c) { return c.other(); });
        else pos = space_run_end(t, pos, e);  // t.c[pos] is a space here
        out.push_back(pos);
    }
}

// llama3 (digits = 3) and qwen2 (digits = 1): (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|
// \p{N}{1,digits}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+ over units [b, e).
inline void split_llama3(const pre_text& t, size_t b, size_t e, size_t digits, piece_ends& out) {
    for (size_t pos = b; pos < e;) {
        if (size_t n = contraction_at(t, pos, e, true)) {
            pos += n;
            out.push_back(pos);
            continue;
        }
        const cp_class f = t.c[pos];
        // [^\r\n\p{L}\p{N}]?\p{L}+: one optional non-letter, non-number, non-newline lead, then letters.
        if (!t.nl(pos) && !f.number && (f.letter || (pos + 1 < e && t.c[pos + 1].letter))) {
            size_t k = pos + 1;
            while (k < e && t.c[k].letter) ++k;
            pos = k;
            out.push_back(pos);
            continue;
        }
        if (f.number) {  // \p{N}{1,digits}, repeatedly
            size_t start = pos;
            while (pos < e && t.c[pos].number) {
                if (++pos - start == digits) {
                    out.push_back(pos);
                    start = pos;
                }
            }
            if (pos > start) out.push_back(pos);
            continue;
        }
        // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
        const size_t head = t.u[pos].cp == ' ' && pos + 1 < e ? pos + 1 : pos;
        if (t.c[head].other()) {
            size_t k = head;
            while (k < e && t.c[k].other()) ++k;
            while (k < e && t.nl(k)) ++k;
            pos = k;
            out.push_back(pos);
            continue;
        }
        // \s*[\r\n]+: a space run up to and including its last newline; else \s+(?!\S)|\s+.
        size_t k = pos, after_nl = 0;
        while (k < e && t.c[k].space) {
            if (t.nl(k)) after_nl = k + 1;
            ++k;
        }
        pos = after_nl > 0 ? after_nl : space_run_end(t, pos, e);
        out.push_back(pos);
    }
}

// Refines every piece of `in` with split(b, e, out).
template <class Split>
piece_ends refine(const piece_ends& in, Split split) {
    piece_ends out;
    out.reserve(in.size() * 2);
    size_t b = 0;
    for (size_t e : in) {
        split(b, e, out);
        b = e;
    }
    return out;
}

// Splits [b, e) at the matches of match(k, e) (the end of a match starting at k, or k for none, never empty):
// each match, and the text between matches, becomes a piece. This is how a regex iterator splits a piece.
template <class Match>
void split_matches(size_t b, size_t e, Match match, piece_ends& out) {
    size_t gap = b;
    for (size_t k = b; k < e;) {
        const size_t m = match(k, e);
        if (m == k) {
            ++k;
            continue;
        }
        if (k > gap) out.push_back(k);
        out.push_back(m);
        k = gap = m;
    }
    if (e > gap) out.push_back(e);
}

inline piece_ends pre_split_units(bpe_pre p, const pre_text& t) {
    piece_ends whole{t.u.size()};
    if (t.u.empty()) return {};
    switch (p) {
        case bpe_pre::gpt2:
            return refine(whole, [&](size_t b, size_t e, piece_ends& o) { split_gpt2(t, b, e, o); });
        case bpe_pre::llama3:
            return refine(whole, [&](size_t b, size_t e, piece_ends& o) { split_llama3(t, b, e, 3, o); });
        case bpe_pre::qwen2:
            return refine(whole, [&](size_t b, size_t e, piece_ends& o) { split_llama3(t, b, e, 1, o); });
        case bpe_pre::fallback: {
            auto punct_like = [&](size_t k) {
                const uint32_t cp = t.u[k].cp;
                return t.c[k].punct || (cp < 0x80 && std::string_view("$+<=>^~|").find(static_cast<char>(cp)) != std::string_view::npos);
            };
            auto run_of = [](auto in_class) {
                return [in_class](size_t k, size_t e) {
                    size_t j = k;
                    while (j < e && in_class(j)) ++j;
                    return j;
                };
            };
            auto is_digit = [&](size_t k) { return t.u[k].cp >= '0' && t.u[k].cp <= '9'; };
            piece_ends s = refine(whole, [&](size_t b, size_t e, piece_ends& o) { split_matches(b, e, run_of(punct_like), o); });
            s = refine(s, [&](size_t b, size_t e, piece_ends& o) { split_gpt2(t, b, e, o); });
            s = refine(s, [&](size_t b, size_t e, piece_ends& o) {
                split_matches(b, e, run_of([&](size_t k) { return t.c[k].number; }), o);
            });
            return refine(s, [&](size_t b, size_t e, piece_ends& o) {
                split_matches(b, e, [&](size_t k, size_t end) {
                    return k + 3 <= end && is_digit(k) && is_digit(k + 1) && is_digit(k + 2) ? k + 3 : k;
                }, o);
            });
        }
    }
    return whole;
}

// The pieces as byte ranges of text.
inline std::vector<std::string_view> pre_split(bpe_pre p, std::string_view text) {
    const pre_text t(text);
    std::vector<std::string_view> out;
    size_t from = 0;
    for (size_t e : pre_split_units(p, t)) {
        const size_t to = e < t.u.size() ? t.u[e].at : text.size();
        out.push_back(text.substr(from, to - from));
        from = to;
    }
    return out;
}

}  // namespace mm::text::detail
