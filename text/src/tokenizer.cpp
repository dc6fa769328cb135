// tokenizer: loading (every count, id and string checked), special-token partitioning and the SPM merge.
#include "text/tokenizer.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <queue>

#include <unicode/uchar.h>

namespace mm::text {
namespace {

constexpr size_t k_max_vocab = size_t{1} << 22;
constexpr size_t k_max_token_bytes = 1024;

status corrupt(const std::string& what) { return status(errc::corrupt_file, "tokenizer: " + what); }

size_t utf8_char_len(unsigned char c) {
    if (c < 0x80) return 1;
    if ((c & 0xE0) == 0xC0) return 2;
    if ((c & 0xF0) == 0xE0) return 3;
    if ((c & 0xF8) == 0xF0) return 4;
    return 1;  // a stray continuation or invalid lead byte: a symbol of its own
}

// "<0xNN>" -> NN
std::optional<int> byte_of(std::string_view t) {
    if (t.size() != 6 || t.substr(0, 3) != "<0x" || t[5] != '>') return std::nullopt;
    int v = 0;
    for (char c : t.substr(3, 2)) {
        v *= 16;
        if (c >= '0' && c <= '9') v += c - '0';
        else if (c >= 'A' && c <= 'F') v += c - 'A' + 10;
        else if (c >= 'a' && c <= 'f') v += c - 'a' + 10;
        else return std::nullopt;
    }
    return v;
}

// GPT-2's byte-level alphabet: printable bytes stand for themselves, the rest take code points from 256 up, so
// every byte string is a string of printable characters.
struct byte_alphabet {
    uint32_t to_cp[256];
    std::unordered_map<uint32_t, uint8_t> to_byte;
    byte_alphabet() {
        uint32_t next = 256;
        for (uint32_t b = 0; b < 256; ++b) {
            const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            to_cp[b] = printable ? b : next++;
            to_byte[to_cp[b]] = static_cast<uint8_t>(b);
        }
    }
};
const byte_alphabet& alphabet() {
    static const byte_alphabet a;
    return a;
}

void append_utf8(std::string& out, uint32_t cp) {
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

// Code points of s with their byte offsets; an invalid byte stands for itself (as U+FFFD would, but keeps
// the byte for the byte-level alphabet).
struct cp_at {
    uint32_t cp;
    size_t at, n;
};
std::vector<cp_at> code_points(std::string_view s) {
    std::vector<cp_at> out;
    for (size_t i = 0; i < s.size();) {
        const auto c = static_cast<unsigned char>(s[i]);
        size_t n = utf8_char_len(c);
        uint32_t cp = n == 1 ? c : c & (0xFF >> (n + 1));
        bool ok = n == 1 ? c < 0x80 : i + n <= s.size();
        for (size_t k = 1; ok && k < n; ++k) {
            const auto b = static_cast<unsigned char>(s[i + k]);
            if ((b & 0xC0) != 0x80) ok = false;
            cp = (cp << 6) | (b & 0x3F);
        }
        if (!ok) n = 1, cp = 0xFFFD;
        out.push_back({cp, i, n});
        i += n;
    }
    return out;
}

bool is_letter(uint32_t cp) { return cp != 0xFFFD && (U_GET_GC_MASK(static_cast<UChar32>(cp)) & U_GC_L_MASK) != 0; }
bool is_number(uint32_t cp) { return cp != 0xFFFD && (U_GET_GC_MASK(static_cast<UChar32>(cp)) & U_GC_N_MASK) != 0; }
bool is_space(uint32_t cp) { return cp != 0xFFFD && u_isUWhiteSpace(static_cast<UChar32>(cp)); }

// GPT-2's pre-tokenizer, 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+, as byte
// ranges of text.
std::vector<std::string_view> gpt2_split(std::string_view text) {
    const auto cps = code_points(text);
    std::vector<std::string_view> out;
    const size_t n = cps.size();
    auto other = [&](size_t k) { return !is_space(cps[k].cp) && !is_letter(cps[k].cp) && !is_number(cps[k].cp); };
    auto emit = [&](size_t from, size_t to) {  // code points [from, to)
        const size_t a = cps[from].at, b = to < n ? cps[to].at : text.size();
        out.push_back(text.substr(a, b - a));
    };
    for (size_t i = 0; i < n;) {
        const uint32_t c = cps[i].cp;
        if (c == '\'' && i + 1 < n) {
            const uint32_t a = cps[i + 1].cp, b = i + 2 < n ? cps[i + 2].cp : 0;
            if (a == 's' || a == 't' || a == 'm' || a == 'd') {
                emit(i, i + 2);
                i += 2;
                continue;
            }
            if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) {
                emit(i, i + 3);
                i += 3;
                continue;
            }
        }
        const size_t start = i;
        size_t j = i + (c == ' ' && i + 1 < n && !is_space(cps[i + 1].cp) ? 1 : 0);
        if (is_letter(cps[j].cp)) {
            while (j < n && is_letter(cps[j].cp)) ++j;
        } else if (is_number(cps[j].cp)) {
            while (j < n && is_number(cps[j].cp)) ++j;
        } else if (other(j)) {
            while (j < n && other(j)) ++j;
        } else {
            // Whitespace: all of it at the end, else all but the last one (which joins the next word).
            j = i;
            while (j < n && is_space(cps[j].cp)) ++j;
            if (j < n && j - i > 1) --j;
        }
        emit(start, j);
        i = j;
    }
    return out;
}

}  // namespace

result<tokenizer> tokenizer::from_gguf(const gguf_file& f) {
    auto model = f.get_string("tokenizer.ggml.model");
    if (!model) return model.error();
    if (*model != "llama" && *model != "gpt2")
        return status(errc::unsupported, "tokenizer model '" + std::string(*model) + "' is not supported (llama, gpt2)");
    tokenizer t;
    if (*model == "gpt2") {
        // Only GPT-2's own pre-tokenizer is implemented; others (llama-bpe, qwen2, ...) split text differently
        // and would give subtly wrong ids, so they are refused rather than guessed.
        if (f.find("tokenizer.ggml.pre")) {
            auto name = f.get_string("tokenizer.ggml.pre");
            if (!name) return name.error();
            if (*name != "gpt-2" && *name != "gpt2" && *name != "default")
                return status(errc::unsupported, "BPE pre-tokenizer '" + std::string(*name) + "' is not supported (gpt-2)");
        }
        t.kind_ = kind::bpe;
        t.add_bos_ = false;
        t.add_space_prefix_ = false;
        auto merges = f.get_string_array("tokenizer.ggml.merges");
        if (!merges) return merges.error();
        if (merges->size() > k_max_vocab) return corrupt("too many merges");
        for (size_t i = 0; i < merges->size(); ++i) {
            if ((*merges)[i].find(' ') == std::string::npos) return corrupt("merge " + std::to_string(i) + " has no space");
            t.merge_rank_.try_emplace(std::move((*merges)[i]), static_cast<int32_t>(i));
        }
    }
    auto texts = f.get_string_array("tokenizer.ggml.tokens");
    if (!texts) return texts.error();
    if (texts->empty() || texts->size() > k_max_vocab) return corrupt("token count out of range");
    auto scores = f.get_f32_array("tokenizer.ggml.scores");
    auto types = f.get_i32_array("tokenizer.ggml.token_type");
    if (scores && scores->size() != texts->size()) return corrupt("scores and tokens differ in count");
    if (types && types->size() != texts->size()) return corrupt("token types and tokens differ in count");
    t.tokens_.resize(texts->size());
    for (size_t i = 0; i < texts->size(); ++i) {
        token& tk = t.tokens_[i];
        tk.text = std::move((*texts)[i]);
        if (tk.text.size() > k_max_token_bytes) return corrupt("token " + std::to_string(i) + " is too long");
        if (scores) tk.score = (*scores)[i];
        if (types) {
            const int32_t ty = (*types)[i];
            if (ty < 1 || ty > 6) return corrupt("token " + std::to_string(i) + " has type " + std::to_string(ty));
            tk.type = static_cast<token_type>(ty);
        }
    }
    const auto n = static_cast<int64_t>(t.tokens_.size());
    auto id_or = [&](const char* key, int32_t fallback) -> result<int32_t> {
        if (!f.find(key)) return fallback;
        auto v = f.get_u32(key);
        if (!v) return v.error();
        if (static_cast<int64_t>(*v) >= n) return corrupt(std::string(key) + " is past the vocabulary");
        return static_cast<int32_t>(*v);
    };
    MM_ASSIGN(t.bos_, id_or("tokenizer.ggml.bos_token_id", n > 1 ? 1 : -1));
    MM_ASSIGN(t.eos_, id_or("tokenizer.ggml.eos_token_id", n > 2 ? 2 : -1));
    MM_ASSIGN(t.unk_, id_or("tokenizer.ggml.unknown_token_id", 0));
    MM_ASSIGN(const int32_t eot, id_or("tokenizer.ggml.eot_token_id", -1));
    if (eot >= 0) t.eog_.push_back(eot);
    if (f.find("tokenizer.ggml.add_bos_token")) {
        MM_ASSIGN(t.add_bos_, f.get_bool("tokenizer.ggml.add_bos_token"));
    }
    if (f.find("tokenizer.ggml.add_space_prefix")) {
        MM_ASSIGN(t.add_space_prefix_, f.get_bool("tokenizer.ggml.add_space_prefix"));
    }
    t.index();
    return t;
}

result<tokenizer> tokenizer::from_llama2c(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    if (!in) return status(errc::io_error, "cannot open tokenizer " + p.string());
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    size_t at = 0;
    auto read = [&](void* out, size_t n) {
        if (bytes.size() - at < n) return false;
        std::memcpy(out, bytes.data() + at, n);
        at += n;
        return true;
    };
    int32_t max_len = 0;
    if (!read(&max_len, 4) || max_len <= 0 || static_cast<size_t>(max_len) > k_max_token_bytes)
        return corrupt(p.filename().string() + ": bad header");
    tokenizer t;
    t.space_ = " ";
    // The file does not say its size: tokens run to the end of the file.
    while (at < bytes.size()) {
        token tk;
        int32_t len = 0;
        if (!read(&tk.score, 4) || !read(&len, 4) || len < 0 || len > max_len)
            return corrupt(p.filename().string() + ": token " + std::to_string(t.tokens_.size()) + " is cut or too long");
        tk.text.resize(static_cast<size_t>(len));
        if (!read(tk.text.data(), static_cast<size_t>(len)))
            return corrupt(p.filename().string() + ": token " + std::to_string(t.tokens_.size()) + " is cut");
        t.tokens_.push_back(std::move(tk));
        if (t.tokens_.size() > k_max_vocab) return corrupt("too many tokens");
    }
    if (t.tokens_.size() < 3) return corrupt(p.filename().string() + ": fewer than 3 tokens");
    // llama2.c's fixed ids: 0 <unk>, 1 <s>, 2 </s>; byte tokens spelled <0xNN>.
    t.tokens_[0].type = token_type::unknown;
    t.tokens_[1].type = token_type::control;
    t.tokens_[2].type = token_type::control;
    for (auto& tk : t.tokens_)
        if (byte_of(tk.text)) tk.type = token_type::byte;
    t.unk_ = 0;
    t.bos_ = 1;
    t.eos_ = 2;
    t.index();
    return t;
}

void tokenizer::index() {
    by_text_.clear();
    byte_tokens_.assign(256, -1);
    specials_.clear();
    for (int32_t i = 0; i < n_vocab(); ++i) {
        const token& tk = tokens_[static_cast<size_t>(i)];
        by_text_.try_emplace(tk.text, i);
        if (tk.type == token_type::byte)
            if (auto b = byte_of(tk.text)) byte_tokens_[static_cast<size_t>(*b)] = i;
        if ((tk.type == token_type::control || tk.type == token_type::user_defined) && !tk.text.empty())
            specials_.push_back(i);
    }
    std::stable_sort(specials_.begin(), specials_.end(), [&](int32_t a, int32_t b) {
        return tokens_[static_cast<size_t>(a)].text.size() > tokens_[static_cast<size_t>(b)].text.size();
    });
    if (eos_ >= 0) eog_.push_back(eos_);
    for (const char* s : {"<|eot_id|>", "<|im_end|>", "<end_of_turn>", "<|end|>", "<|endoftext|>"})
        if (auto id = find(s); id && tokens_[static_cast<size_t>(*id)].type == token_type::control) eog_.push_back(*id);
}

std::optional<int32_t> tokenizer::find(std::string_view text) const {
    auto it = by_text_.find(std::string(text));
    if (it == by_text_.end()) return std::nullopt;
    return it->second;
}

bool tokenizer::is_eog(int32_t id) const { return std::find(eog_.begin(), eog_.end(), id) != eog_.end(); }

std::string tokenizer::piece(int32_t id) const {
    if (id < 0 || id >= n_vocab()) return {};
    const token& tk = tokens_[static_cast<size_t>(id)];
    switch (tk.type) {
        case token_type::control: case token_type::unused: return {};
        case token_type::byte:
            if (auto b = byte_of(tk.text)) return std::string(1, static_cast<char>(*b));
            return {};
        case token_type::user_defined: return tk.text;
        case token_type::normal: case token_type::unknown: break;
    }
    std::string out;
    if (kind_ == kind::bpe) {  // back from the byte-level alphabet
        for (const auto& c : code_points(tk.text)) {
            auto it = alphabet().to_byte.find(c.cp);
            if (it != alphabet().to_byte.end()) out += static_cast<char>(it->second);
            else out.append(tk.text, c.at, c.n);
        }
        return out;
    }
    for (size_t i = 0; i < tk.text.size();) {
        if (tk.text.compare(i, space_.size(), space_) == 0) {
            out += ' ';
            i += space_.size();
        } else {
            out += tk.text[i++];
        }
    }
    return out;
}

std::vector<int32_t> tokenizer::encode(std::string_view text, bool add_special, bool parse_special) const {
    std::vector<int32_t> out;
    if (add_special && add_bos_ && bos_ >= 0) out.push_back(bos_);
    // Split the text at special-token spellings (longest first), leftmost match wins.
    struct fragment {
        std::string_view raw;
        int32_t id = -1;
    };
    std::vector<fragment> frags;
    size_t start = 0;
    for (size_t i = 0; i < text.size();) {
        int32_t hit = -1;
        for (int32_t id : specials_) {
            const token& tk = tokens_[static_cast<size_t>(id)];
            if (tk.type == token_type::control && !parse_special) continue;
            if (text.compare(i, tk.text.size(), tk.text) == 0) {
                hit = id;
                break;
            }
        }
        if (hit < 0) {
            ++i;
            continue;
        }
        if (i > start) frags.push_back({text.substr(start, i - start)});
        frags.push_back({{}, hit});
        i += tokens_[static_cast<size_t>(hit)].text.size();
        start = i;
    }
    if (start < text.size()) frags.push_back({text.substr(start)});

    bool prev_special = true;  // the first text fragment gets the dummy prefix
    for (const fragment& f : frags) {
        if (f.id >= 0) {
            out.push_back(f.id);
            prev_special = true;
            continue;
        }
        if (kind_ == kind::bpe) {
            encode_bpe(f.raw, out);
            prev_special = false;
            continue;
        }
        std::string s;
        if (add_space_prefix_ && prev_special) s = " ";
        s += f.raw;
        std::string escaped;
        for (char c : s) {
            if (c == ' ') escaped += space_;
            else escaped += c;
        }
        encode_spm(std::move(escaped), out);
        prev_special = false;
    }
    return out;
}

// SentencePiece BPE: start from characters, repeatedly merge the adjacent pair whose joined text is the
// highest-scoring token (the leftmost on ties), then spell what is left: a known piece as its token, an
// unknown character as its bytes' tokens.
void tokenizer::encode_spm(std::string text, std::vector<int32_t>& out) const { merge(text, out, false); }

void tokenizer::encode_bpe(std::string_view text, std::vector<int32_t>& out) const {
    for (std::string_view word : gpt2_split(text)) {
        std::string mapped;
        for (unsigned char b : word) append_utf8(mapped, alphabet().to_cp[b]);
        merge(mapped, out, true);
    }
}

void tokenizer::merge(const std::string& text, std::vector<int32_t>& out, bool bpe) const {
    struct symbol {
        int prev, next;
        size_t at, n;
    };
    std::vector<symbol> sym;
    for (size_t i = 0; i < text.size();) {
        const size_t n = std::min(utf8_char_len(static_cast<unsigned char>(text[i])), text.size() - i);
        sym.push_back({static_cast<int>(sym.size()) - 1, static_cast<int>(sym.size()) + 1, i, n});
        i += n;
    }
    if (sym.empty()) return;
    sym.back().next = -1;

    struct bigram {
        float score;
        int left;
        size_t n;
        bool operator<(const bigram& o) const { return score < o.score || (score == o.score && left > o.left); }
    };
    std::priority_queue<bigram> queue;
    auto try_pair = [&](int l, int r) {
        if (l < 0 || r < 0) return;
        const std::string_view joined(text.data() + sym[static_cast<size_t>(l)].at,
                                      sym[static_cast<size_t>(l)].n + sym[static_cast<size_t>(r)].n);
        if (bpe) {  // BPE merges by rank: "left right" in the merges list, lower first
            std::string key(text.data() + sym[static_cast<size_t>(l)].at, sym[static_cast<size_t>(l)].n);
            key += ' ';
            key.append(text.data() + sym[static_cast<size_t>(r)].at, sym[static_cast<size_t>(r)].n);
            auto m = merge_rank_.find(key);
            if (m != merge_rank_.end()) queue.push({-static_cast<float>(m->second), l, joined.size()});
            return;
        }
        auto it = by_text_.find(std::string(joined));
        if (it == by_text_.end()) return;
        const token& tk = tokens_[static_cast<size_t>(it->second)];
        if (tk.type != token_type::normal && tk.type != token_type::user_defined && tk.type != token_type::unknown) return;
        queue.push({tk.score, l, joined.size()});
    };
    for (size_t i = 1; i < sym.size(); ++i) try_pair(static_cast<int>(i) - 1, static_cast<int>(i));
    while (!queue.empty()) {
        const bigram b = queue.top();
        queue.pop();
        symbol& l = sym[static_cast<size_t>(b.left)];
        if (l.n == 0 || l.next < 0) continue;
        symbol& r = sym[static_cast<size_t>(l.next)];
        if (l.n + r.n != b.n) continue;  // stale: one side has merged since
        l.n += r.n;
        r.n = 0;
        l.next = r.next;
        if (r.next >= 0) sym[static_cast<size_t>(r.next)].prev = b.left;
        try_pair(l.prev, b.left);
        try_pair(b.left, l.next);
    }
    for (int i = 0; i >= 0; i = sym[static_cast<size_t>(i)].next) {
        const symbol& s = sym[static_cast<size_t>(i)];
        const std::string_view piece(text.data() + s.at, s.n);
        if (auto it = by_text_.find(std::string(piece)); it != by_text_.end()) {
            out.push_back(it->second);
            continue;
        }
        for (unsigned char c : piece) {
            const int32_t bt = byte_tokens_[c];
            out.push_back(bt >= 0 ? bt : unk_);
        }
    }
}

}  // namespace mm::text
