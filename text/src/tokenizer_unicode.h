// tokenizer_unicode: the Unicode the tokenizers need. UTF-8 decoding that never fails (a byte that starts no
// well-formed sequence is a unit of its own), UTF-8 validation for vocabulary text, the code point classes the
// BPE pre-tokenizers test (\p{L}, \p{N}, \p{P} and \s, from ICU's general categories and White_Space, the same
// properties the Python `regex` module behind llama.cpp's tables uses), and GPT-2's byte-level alphabet.
// Private to tokenizer.cpp (the fuzz build compiles that one file), hence inline.
// Thread safety: pure functions and constant tables.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <unicode/uchar.h>

namespace mm::text::detail {

// The code point given to a byte that starts no well-formed sequence: past Unicode, so no class claims it.
inline constexpr uint32_t k_invalid_cp = 0x110000;

// Length of the well-formed UTF-8 sequence at s[i] (RFC 3629: no overlong forms, no surrogates, nothing past
// U+10FFFF), or 0 when there is none. Requires i < s.size().
inline size_t utf8_seq_len(std::string_view s, size_t i) {
    const auto b = [&](size_t k) { return static_cast<unsigned char>(s[i + k]); };
    const unsigned char c = b(0);
    if (c < 0x80) return 1;
    size_t n = 0;
    unsigned char lo = 0x80, hi = 0xBF;  // the allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF) n = 2;
    else if (c == 0xE0) n = 3, lo = 0xA0;
    else if (c >= 0xE1 && c <= 0xEC) n = 3;
    else if (c == 0xED) n = 3, hi = 0x9F;
    else if (c >= 0xEE && c <= 0xEF) n = 3;
    else if (c == 0xF0) n = 4, lo = 0x90;
    else if (c >= 0xF1 && c <= 0xF3) n = 4;
    else if (c == 0xF4) n = 4, hi = 0x8F;
    else return 0;
    if (s.size() - i < n) return 0;
    if (b(1) < lo || b(1) > hi) return 0;
    for (size_t k = 2; k < n; ++k)
        if ((b(k) & 0xC0) != 0x80) return 0;
    return n;
}

// One unit of text: a code point and where its bytes are, or an invalid byte (cp == k_invalid_cp, n == 1).
struct utf8_unit {
    uint32_t cp;
    uint32_t n;  // bytes
    size_t at;   // byte offset
};

inline uint32_t utf8_decode(std::string_view s, size_t i, size_t n) {
    const auto c = static_cast<unsigned char>(s[i]);
    uint32_t cp = n == 1 ? c : n == 2 ? c & 0x1Fu : n == 3 ? c & 0x0Fu : c & 0x07u;
    for (size_t k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3Fu);
    return cp;
}

inline std::vector<utf8_unit> utf8_units(std::string_view s) {
    std::vector<utf8_unit> out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size();) {
        const size_t n = utf8_seq_len(s, i);
        if (n == 0) {
            out.push_back({k_invalid_cp, 1, i});
            ++i;
        } else {
            out.push_back({utf8_decode(s, i, n), static_cast<uint32_t>(n), i});
            i += n;
        }
    }
    return out;
}

inline bool utf8_valid(std::string_view s) {
    for (size_t i = 0; i < s.size();) {
        const size_t n = utf8_seq_len(s, i);
        if (n == 0) return false;
        i += n;
    }
    return true;
}

inline void utf8_append(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
}

// The classes a pre-tokenizer regex asks about. An invalid byte is in none of them (like U+FFFD, a symbol).
struct cp_class {
    bool letter = false;  // \p{L}
    bool number = false;  // \p{N}
    bool space = false;   // \s: the White_Space property
    bool punct = false;   // \p{P}
    bool other() const { return !letter && !number && !space; }  // [^\s\p{L}\p{N}]
};

inline cp_class classify(uint32_t cp) {
    cp_class c;
    if (cp < 0x80) {  // the common case without a table lookup
        c.letter = (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z');
        c.number = cp >= '0' && cp <= '9';
        c.space = cp == ' ' || (cp >= 0x09 && cp <= 0x0D);
        c.punct = !c.letter && !c.number && cp > 0x20 && cp < 0x7F && std::string_view("$+<=>^`|~").find(static_cast<char>(cp)) == std::string_view::npos;
        return c;
    }
    if (cp >= k_invalid_cp) return c;
    const auto ch = static_cast<UChar32>(cp);
    const uint32_t mask = U_GET_GC_MASK(ch);
    c.letter = (mask & U_GC_L_MASK) != 0;
    c.number = (mask & U_GC_N_MASK) != 0;
    c.punct = (mask & U_GC_P_MASK) != 0;
    c.space = u_isUWhiteSpace(ch) != 0;
    return c;
}

// ASCII-only lowercase, which is all the case-insensitive contractions (?i:'s|'t|...) can meet: no non-ASCII
// code point lowercases to s, t, r, e, v, m, l or d.
inline uint32_t ascii_lower(uint32_t cp) { return cp >= 'A' && cp <= 'Z' ? cp + 32 : cp; }

// GPT-2's byte-level alphabet: the printable bytes (! to ~, ¡ to ¬, ® to ÿ) stand for themselves and the other
// 68 take the code points from U+0100 up, in byte order, so any byte string is a string of visible characters.
struct byte_alphabet {
    std::array<uint16_t, 256> cp_of{};   // byte -> code point
    std::array<int16_t, 324> byte_of{};  // code point (< 256 + 68) -> byte, -1 for none
    constexpr byte_alphabet() {
        for (auto& b : byte_of) b = -1;
        uint16_t next = 256;
        for (int b = 0; b < 256; ++b) {
            const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            cp_of[static_cast<size_t>(b)] = printable ? static_cast<uint16_t>(b) : next++;
            byte_of[cp_of[static_cast<size_t>(b)]] = static_cast<int16_t>(b);
        }
    }
};
inline constexpr byte_alphabet k_byte_alphabet{};

// The byte a code point of the alphabet stands for, or -1.
inline int byte_of_symbol(uint32_t cp) { return cp < k_byte_alphabet.byte_of.size() ? k_byte_alphabet.byte_of[cp] : -1; }

// Appends the alphabet's spelling of each byte of s.
inline void append_byte_symbols(std::string& out, std::string_view s) {
    for (unsigned char b : s) utf8_append(out, k_byte_alphabet.cp_of[b]);
}

}  // namespace mm::text::detail
