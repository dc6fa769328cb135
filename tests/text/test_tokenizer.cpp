// The tokenizers against their references, all exact (ids and bytes are integers):
//  - llama.cpp's own test vectors for a 32000-token LLaMA SPM vocabulary and GPT-2's BPE vocabulary,
//  - llama-tokenize's and run.c's ids on stories260K (golden/text/tokenizer_cases.json) and the greedy goldens'
//    prompts and pieces (golden/text/runc_greedy.json), through both the GGUF and the llama2.c tokenizer,
//  - the BPE pre-tokenizers against the Python `regex` module running the same expressions,
//  - special-token and end-of-generation rules on small vocabularies built here, as llama.cpp applies them,
//  - bad vocabularies (GGUF metadata built in memory, llama2.c files cut at every length), which must be refused
//    with a message and never crash, and text that is not UTF-8, which must round-trip byte for byte.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/gguf.h"
#include "ref/shared_files.h"
#include "text/tokenizer.h"

namespace mm::text {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;
using tt = tokenizer::token_type;

const fs::path k_models = fs::path(MM_SHARED_DIR) / "models" / "text";
constexpr const char* k_sp = "\xE2\x96\x81";  // U+2581, SentencePiece's space

result<tokenizer> load_gguf(const fs::path& p) {
    auto f = gguf_open(p);
    if (!f) return f.error();
    return tokenizer::from_gguf(*f);
}

std::string hex(std::string_view s) {
    std::string out;
    for (unsigned char c : s) {
        char b[3];
        std::snprintf(b, sizeof b, "%02x", c);
        out += b;
    }
    return out;
}

std::string decode(const tokenizer& t, const std::vector<int32_t>& ids) {
    std::string out;
    for (int32_t id : ids) out += t.piece(id);
    return out;
}

std::string ids_str(const std::vector<int32_t>& ids) {
    std::string out;
    for (int32_t id : ids) {
        out += ' ';
        out += std::to_string(id);
    }
    return out;
}

// ---- GGUF metadata written in memory (no tensors), for vocabularies made to measure ----

class gguf_bytes {
public:
    gguf_bytes& str(const std::string& key, std::string_view v) { return put(key, u32_of(8) + string_of(v)); }
    gguf_bytes& u32(const std::string& key, uint32_t v) { return put(key, u32_of(4) + u32_of(v)); }
    gguf_bytes& i32(const std::string& key, int32_t v) { return put(key, u32_of(5) + u32_of(static_cast<uint32_t>(v))); }
    gguf_bytes& boolean(const std::string& key, bool v) { return put(key, u32_of(7) + std::string(1, v ? '\1' : '\0')); }
    gguf_bytes& strs(const std::string& key, const std::vector<std::string>& v) {
        std::string s;
        for (const auto& x : v) s += string_of(x);
        return array(key, 8, v.size(), s);
    }
    gguf_bytes& f32s(const std::string& key, const std::vector<float>& v) {
        std::string s(v.size() * 4, '\0');
        if (!v.empty()) std::memcpy(s.data(), v.data(), s.size());
        return array(key, 6, v.size(), s);
    }
    gguf_bytes& i32s(const std::string& key, const std::vector<int32_t>& v) {
        std::string s(v.size() * 4, '\0');
        if (!v.empty()) std::memcpy(s.data(), v.data(), s.size());
        return array(key, 5, v.size(), s);
    }
    gguf_bytes& erase(const std::string& key) {
        std::erase_if(kvs_, [&](const auto& kv) { return kv.first == key; });
        return *this;
    }
    std::string bytes() const {
        std::string out = "GGUF" + u32_of(3) + u64_of(0) + u64_of(kvs_.size());
        for (const auto& [k, v] : kvs_) out += string_of(k) + v;
        return out;
    }

private:
    static std::string u32_of(uint32_t v) { return std::string(reinterpret_cast<const char*>(&v), 4); }
    static std::string u64_of(uint64_t v) { return std::string(reinterpret_cast<const char*>(&v), 8); }
    static std::string string_of(std::string_view s) { return u64_of(s.size()) + std::string(s); }
    gguf_bytes& array(const std::string& key, uint32_t elem, size_t n, const std::string& items) {
        return put(key, u32_of(9) + u32_of(elem) + u64_of(n) + items);
    }
    gguf_bytes& put(const std::string& key, std::string value) {  // replaces in place, else appends
        for (auto& kv : kvs_)
            if (kv.first == key) {
                kv.second = std::move(value);
                return *this;
            }
        kvs_.emplace_back(key, std::move(value));
        return *this;
    }
    std::vector<std::pair<std::string, std::string>> kvs_;
};

result<tokenizer> from_bytes(const std::string& bytes) {
    auto owner = std::make_shared<std::string>(bytes);
    auto f = gguf_parse(std::as_bytes(std::span<const char>(owner->data(), owner->size())), owner);
    if (!f) return f.error();
    return tokenizer::from_gguf(*f);
}

// A small SPM vocabulary: <unk> <s> </s>, the 256 byte tokens, then pieces whose scores favour longer ones.
struct spm_vocab {
    std::vector<std::string> tokens;
    std::vector<float> scores;
    std::vector<int32_t> types;
    void add(std::string t, float score, tt type) {
        tokens.push_back(std::move(t));
        scores.push_back(score);
        types.push_back(static_cast<int32_t>(type));
    }
    int32_t id(std::string_view t) const {
        return static_cast<int32_t>(std::find(tokens.begin(), tokens.end(), t) - tokens.begin());
    }
    gguf_bytes gguf() const {
        gguf_bytes g;
        g.str("general.architecture", "llama").str("tokenizer.ggml.model", "llama").strs("tokenizer.ggml.tokens", tokens);
        g.f32s("tokenizer.ggml.scores", scores).i32s("tokenizer.ggml.token_type", types);
        g.u32("tokenizer.ggml.bos_token_id", 1).u32("tokenizer.ggml.eos_token_id", 2).u32("tokenizer.ggml.unknown_token_id", 0);
        return g;
    }
};

spm_vocab small_spm() {
    spm_vocab v;
    v.add("<unk>", 0, tt::unknown);
    v.add("<s>", 0, tt::control);
    v.add("</s>", 0, tt::control);
    for (int b = 0; b < 256; ++b) {
        char name[8];
        std::snprintf(name, sizeof name, "<0x%02X>", b);
        v.add(name, 0, tt::byte);
    }
    for (const char* p : {"\xE2\x96\x81", "a", "b", "c", "d", "h", "i", "\xE2\x96\x81" "a", "ab", "cd", "hi"})
        v.add(p, -static_cast<float>(10 - std::strlen(p)), tt::normal);
    return v;
}

// A small byte-level BPE vocabulary: the letters a-d, h, i and the space symbol (U+0120), two merges.
gguf_bytes small_bpe(std::string_view pre = "gpt-2") {
    gguf_bytes g;
    g.str("tokenizer.ggml.model", "gpt2").str("tokenizer.ggml.pre", pre);
    g.strs("tokenizer.ggml.tokens", {"a", "b", "c", "d", "h", "i", "\xC4\xA0", "ab", "\xC4\xA0" "ab", "hi", "<|endoftext|>"});
    g.i32s("tokenizer.ggml.token_type", {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 3});
    g.strs("tokenizer.ggml.merges", {"a b", "\xC4\xA0 ab", "h i"});
    g.u32("tokenizer.ggml.eos_token_id", 10);
    return g;
}

// ---- llama.cpp's test vectors ----

struct vector_case {
    const char* vocab;
    size_t n_cases;
};

TEST(tokenizer, llama_cpp_vectors) {
    // tests/test-tokenizer-0 format: .inp strings each followed by a marker line; .out one line of ids per string,
    // made with add_special = false, parse_special = false.
    for (const auto& c : {vector_case{"ggml-vocab-llama-spm.gguf", 46}, vector_case{"ggml-vocab-gpt-2.gguf", 46}}) {
        auto t = load_gguf(k_models / "vocab" / c.vocab);
        ASSERT_TRUE(t) << c.vocab << ": " << t.error().to_string();
        const std::string inp = test::read_text(k_models / "vocab" / (std::string(c.vocab) + ".inp"));
        const std::string outs = test::read_text(k_models / "vocab" / (std::string(c.vocab) + ".out"));
        const std::string sep = "\n__ggml_vocab_test__\n";
        std::vector<std::string> texts;
        for (size_t at = 0, next; (next = inp.find(sep, at)) != std::string::npos; at = next + sep.size())
            texts.push_back(inp.substr(at, next - at));
        std::vector<std::vector<int32_t>> want;
        std::istringstream lines(outs);
        for (std::string line; std::getline(lines, line);) {
            std::istringstream ids(line);
            want.emplace_back();
            for (int32_t id; ids >> id;) want.back().push_back(id);
        }
        ASSERT_EQ(texts.size(), c.n_cases) << c.vocab;
        ASSERT_EQ(want.size(), c.n_cases) << c.vocab;
        for (size_t i = 0; i < texts.size(); ++i) {
            const auto got = t->encode(texts[i], false, false);
            EXPECT_EQ(got, want[i]) << c.vocab << " case " << i << " '" << texts[i] << "'\n  want" << ids_str(want[i])
                                    << "\n  got " << ids_str(got);
            // Both tokenizers are lossless on these strings; SPM adds the dummy-prefix space.
            const bool spm = t->type() == tokenizer::kind::spm;
            const std::string back = decode(*t, want[i]);
            EXPECT_EQ(back, (spm && !texts[i].empty() ? " " : "") + texts[i]) << c.vocab << " case " << i;
        }
    }
}

// ---- stories260K: llama-tokenize and run.c ----

TEST(tokenizer, stories260k_cases_match_llama_tokenize_and_run_c) {
    auto g = load_gguf(k_models / "stories260K-f32.gguf");
    ASSERT_TRUE(g) << g.error().to_string();
    auto c = tokenizer::from_llama2c(k_models / "tok512.bin", 512);
    ASSERT_TRUE(c) << c.error().to_string();
    const json cases = test::text_golden("tokenizer_cases.json")["cases"];
    ASSERT_EQ(cases.size(), 22u);
    for (const json& k : cases) {
        const std::string text = k["text"];
        const std::string id = k["id"];
        // llama-tokenize's defaults: BOS, special tokens parsed; then --no-bos --no-parse-special.
        EXPECT_EQ(g->encode(text, true, true), k["llama_tokenize_ids"].get<std::vector<int32_t>>()) << id;
        EXPECT_EQ(g->encode(text, false, false), k["llama_tokenize_ids_no_bos_no_special"].get<std::vector<int32_t>>()) << id;
        // run.c's encode(text, bos=1, eos=0), which knows no special tokens.
        EXPECT_EQ(c->encode(text, true, false), k["runc_encode_ids"].get<std::vector<int32_t>>()) << id << " (llama2.c)";
    }
}

TEST(tokenizer, stories260k_gguf_and_llama2c_vocabularies_agree) {
    auto g = load_gguf(k_models / "stories260K-f32.gguf");
    auto c = tokenizer::from_llama2c(k_models / "tok512.bin", 512);
    ASSERT_TRUE(g && c);
    ASSERT_EQ(g->n_vocab(), 512);
    ASSERT_EQ(c->n_vocab(), 512);
    for (int32_t i = 0; i < 512; ++i) {
        EXPECT_EQ(g->piece(i), c->piece(i)) << i;
        EXPECT_EQ(g->type_of(i), c->type_of(i)) << i;
        const std::string& raw = g->token_text(i);  // the GGUF spells the space U+2581, llama2.c files ' '
        std::string spelled;
        for (size_t k = 0; k < raw.size();) {
            if (raw.compare(k, 3, k_sp) == 0) {
                spelled += ' ';
                k += 3;
            } else {
                spelled += raw[k++];
            }
        }
        EXPECT_EQ(spelled, c->token_text(i)) << i;
    }
    for (const tokenizer* t : {&*g, &*c}) {
        EXPECT_EQ(t->bos(), 1);
        EXPECT_EQ(t->eos(), 2);
        EXPECT_EQ(t->unk(), 0);
        EXPECT_TRUE(t->add_bos());
        EXPECT_FALSE(t->add_eos());
        EXPECT_EQ(t->type(), tokenizer::kind::spm);
        EXPECT_EQ(t->pre(), std::nullopt);
        EXPECT_TRUE(t->is_eog(2));
        EXPECT_FALSE(t->is_eog(1));
        EXPECT_FALSE(t->is_eog(0));
        EXPECT_EQ(t->piece(1), "") << "control tokens decode to nothing";
        EXPECT_EQ(t->piece(0), "") << "so does <unk>";
        EXPECT_EQ(t->token_text(1), "<s>");
        EXPECT_EQ(t->piece(3 + 'A'), "A") << "byte token <0x41>";
        EXPECT_EQ(t->find("<0x41>"), 3 + 'A');
        EXPECT_EQ(t->find("no such token"), std::nullopt);
        EXPECT_EQ(t->piece(-1), "");
        EXPECT_EQ(t->piece(512), "");
        EXPECT_EQ(t->token_text(512), "");
    }
    EXPECT_EQ(g->piece(410), " ") << "U+2581 decodes to a space";
    EXPECT_EQ(g->token_text(410), k_sp);
    EXPECT_EQ(c->token_text(410), " ") << "llama2.c files spell the space as is";
}

TEST(tokenizer, runc_greedy_prompts_and_pieces) {
    auto g = load_gguf(k_models / "stories260K-f32.gguf");
    auto c = tokenizer::from_llama2c(k_models / "tok512.bin", 512);
    ASSERT_TRUE(g && c);
    const json cases = test::text_golden("runc_greedy.json")["cases"];
    ASSERT_EQ(cases.size(), 4u);
    for (const json& k : cases) {
        const std::string id = k["id"];
        const auto want = k["prompt_ids"].get<std::vector<int32_t>>();
        for (const tokenizer* t : {&*g, &*c}) {
            EXPECT_EQ(t->encode(k["prompt"].get<std::string>(), true, false), want) << id;
            // run.c prints a piece's bytes, less its leading space right after BOS.
            const auto ids = k["generated_ids"].get<std::vector<int32_t>>();
            const auto pieces_hex = k["generated_pieces_hex"].get<std::vector<std::string>>();
            ASSERT_EQ(ids.size(), pieces_hex.size()) << id;
            int32_t prev = want.back();
            for (size_t i = 0; i < ids.size(); ++i) {
                std::string p = t->piece(ids[i]);
                if (prev == t->bos() && !p.empty() && p[0] == ' ') p.erase(0, 1);
                EXPECT_EQ(hex(p), pieces_hex[i]) << id << " step " << i << " id " << ids[i];
                prev = ids[i];
            }
        }
    }
}

// ---- BPE pre-tokenizers against a regex engine ----

struct split_case {
    const char* text;
    std::vector<std::string> pieces;
};

// Generated by the Python `regex` module 2026.5.9 from the expressions in bpe_pre's comments; the "default"
// chain applies each expression to the pieces of the one before, keeping unmatched text as pieces.
const split_case k_gpt2_splits[] = {
    {"Hello world", {"Hello", " world"}},
    {"  Hello  world  ", {" ", " Hello", " ", " world", "  "}},
    {"don't DON'T I'M we'Re they'LL", {"don", "'t", " DON", "'", "T", " I", "'", "M", " we", "'", "Re", " they", "'", "LL"}},
    {"'s 'sun x's", {"'s", " '", "sun", " x", "'s"}},
    {"a\012\012b\015\012  c\012", {"a", "\012", "\012", "b", "\015\012 ", " c", "\012"}},
    {"\011Tab\011separated\011", {"\011", "Tab", "\011", "separated", "\011"}},
    {"1234567 89 3.14159", {"1234567", " 89", " 3", ".", "14159"}},
    {"x1234567y", {"x", "1234567", "y"}},
    {"Hello, World!!! ??? ...", {"Hello", ",", " World", "!!!", " ???", " ..."}},
    {"caf\303\251 na\303\257ve r\303\251sum\303\251", {"caf\303\251", " na\303\257ve", " r\303\251sum\303\251"}},
    {"e\314\201te\314\201", {"e", "\314\201", "te", "\314\201"}},
    {"\346\227\245\346\234\254\350\252\236\343\201\256\343\203\206\343\202\255\343\202\271\343\203\210", {"\346\227\245\346\234\254\350\252\236\343\201\256\343\203\206\343\202\255\343\202\271\343\203\210"}},
    {"\360\237\231\202 \360\237\221\250\342\200\215\360\237\221\251", {"\360\237\231\202", " \360\237\221\250\342\200\215\360\237\221\251"}},
    {"a\302\240b \343\200\200c", {"a", "\302\240", "b", " ", "\343\200\200", "c"}},
    {"\331\243\331\244\331\245 \302\275\302\274 12\302\275", {"\331\243\331\244\331\245", " \302\275\302\274", " 12\302\275"}},
    {"$100 + 5% <tag> a|b ~x ^y `z`", {"$", "100", " +", " 5", "%", " <", "tag", ">", " a", "|", "b", " ~", "x", " ^", "y", " `", "z", "`"}},
    {"x  \012  y", {"x", "  \012 ", " y"}},
    {"   ", {"   "}},
    {"\012", {"\012"}},
    {"end.  ", {"end", ".", "  "}},
    {"(foo) [bar] {baz}", {"(", "foo", ")", " [", "bar", "]", " {", "baz", "}"}},
    {"l'amour d'un", {"l", "'", "amour", " d", "'", "un"}},
    {"\320\237\321\200\320\270\320\262\320\265\321\202, \320\274\320\270\321\200!", {"\320\237\321\200\320\270\320\262\320\265\321\202", ",", " \320\274\320\270\321\200", "!"}},
    {"a--b__c", {"a", "--", "b", "__", "c"}},
    {" ' '' x", {" '", " ''", " x"}},
    {"\015\015\012\012 x", {"\015\015\012\012", " x"}},
};
const split_case k_llama3_splits[] = {
    {"Hello world", {"Hello", " world"}},
    {"  Hello  world  ", {" ", " Hello", " ", " world", "  "}},
    {"don't DON'T I'M we'Re they'LL", {"don", "'t", " DON", "'T", " I", "'M", " we", "'Re", " they", "'LL"}},
    {"'s 'sun x's", {"'s", " '", "sun", " x", "'s"}},
    {"a\012\012b\015\012  c\012", {"a", "\012\012", "b", "\015\012", " ", " c", "\012"}},
    {"\011Tab\011separated\011", {"\011Tab", "\011separated", "\011"}},
    {"1234567 89 3.14159", {"123", "456", "7", " ", "89", " ", "3", ".", "141", "59"}},
    {"x1234567y", {"x", "123", "456", "7", "y"}},
    {"Hello, World!!! ??? ...", {"Hello", ",", " World", "!!!", " ???", " ..."}},
    {"caf\303\251 na\303\257ve r\303\251sum\303\251", {"caf\303\251", " na\303\257ve", " r\303\251sum\303\251"}},
    {"e\314\201te\314\201", {"e", "\314\201te", "\314\201"}},
    {"\346\227\245\346\234\254\350\252\236\343\201\256\343\203\206\343\202\255\343\202\271\343\203\210", {"\346\227\245\346\234\254\350\252\236\343\201\256\343\203\206\343\202\255\343\202\271\343\203\210"}},
    {"\360\237\231\202 \360\237\221\250\342\200\215\360\237\221\251", {"\360\237\231\202", " \360\237\221\250\342\200\215\360\237\221\251"}},
    {"a\302\240b \343\200\200c", {"a", "\302\240b", " ", "\343\200\200c"}},
    {"\331\243\331\244\331\245 \302\275\302\274 12\302\275", {"\331\243\331\244\331\245", " ", "\302\275\302\274", " ", "12\302\275"}},
    {"$100 + 5% <tag> a|b ~x ^y `z`", {"$", "100", " +", " ", "5", "%", " <", "tag", ">", " a", "|b", " ~", "x", " ^", "y", " `", "z", "`"}},
    {"x  \012  y", {"x", "  \012", " ", " y"}},
    {"   ", {"   "}},
    {"\012", {"\012"}},
    {"end.  ", {"end", ".", "  "}},
    {"(foo) [bar] {baz}", {"(foo", ")", " [", "bar", "]", " {", "baz", "}"}},
    {"l'amour d'un", {"l", "'amour", " d", "'un"}},
    {"\320\237\321\200\320\270\320\262\320\265\321\202, \320\274\320\270\321\200!", {"\320\237\321\200\320\270\320\262\320\265\321\202", ",", " \320\274\320\270\321\200", "!"}},
    {"a--b__c", {"a", "--", "b", "__", "c"}},
    {" ' '' x", {" '", " ''", " x"}},
    {"\015\015\012\012 x", {"\015\015\012\012", " x"}},
};
const split_case k_qwen2_splits[] = {
    {"Hello world", {"Hello", " world"}},
    {"  Hello  world  ", {" ", " Hello", " ", " world", "  "}},
    {"don't DON'T I'M we'Re they'LL", {"don", "'t", " DON", "'T", " I", "'M", " we", "'Re", " they", "'LL"}},
    {"'s 'sun x's", {"'s", " '", "sun", " x", "'s"}},
    {"a\012\012b\015\012  c\012", {"a", "\012\012", "b", "\015\012", " ", " c", "\012"}},
    {"\011Tab\011separated\011", {"\011Tab", "\011separated", "\011"}},
    {"1234567 89 3.14159", {"1", "2", "3", "4", "5", "6", "7", " ", "8", "9", " ", "3", ".", "1", "4", "1", "5", "9"}},
    {"x1234567y", {"x", "1", "2", "3", "4", "5", "6", "7", "y"}},
    {"Hello, World!!! ??? ...", {"Hello", ",", " World", "!!!", " ???", " ..."}},
    {"caf\303\251 na\303\257ve r\303\251sum\303\251", {"caf\303\251", " na\303\257ve", " r\303\251sum\303\251"}},
    {"e\314\201te\314\201", {"e", "\314\201te", "\314\201"}},
    {"\346\227\245\346\234\254\350\252\236\343\201\256\343\203\206\343\202\255\343\202\271\343\203\210", {"\346\227\245\346\234\254\350\252\236\343\201\256\343\203\206\343\202\255\343\202\271\343\203\210"}},
    {"\360\237\231\202 \360\237\221\250\342\200\215\360\237\221\251", {"\360\237\231\202", " \360\237\221\250\342\200\215\360\237\221\251"}},
    {"a\302\240b \343\200\200c", {"a", "\302\240b", " ", "\343\200\200c"}},
    {"\331\243\331\244\331\245 \302\275\302\274 12\302\275", {"\331\243", "\331\244", "\331\245", " ", "\302\275", "\302\274", " ", "1", "2", "\302\275"}},
    {"$100 + 5% <tag> a|b ~x ^y `z`", {"$", "1", "0", "0", " +", " ", "5", "%", " <", "tag", ">", " a", "|b", " ~", "x", " ^", "y", " `", "z", "`"}},
    {"x  \012  y", {"x", "  \012", " ", " y"}},
    {"   ", {"   "}},
    {"\012", {"\012"}},
    {"end.  ", {"end", ".", "  "}},
    {"(foo) [bar] {baz}", {"(foo", ")", " [", "bar", "]", " {", "baz", "}"}},
    {"l'amour d'un", {"l", "'amour", " d", "'un"}},
    {"\320\237\321\200\320\270\320\262\320\265\321\202, \320\274\320\270\321\200!", {"\320\237\321\200\320\270\320\262\320\265\321\202", ",", " \320\274\320\270\321\200", "!"}},
    {"a--b__c", {"a", "--", "b", "__", "c"}},
    {" ' '' x", {" '", " ''", " x"}},
    {"\015\015\012\012 x", {"\015\015\012\012", " x"}},
};
const split_case k_fallback_splits[] = {
    {"Hello world", {"Hello", " world"}},
    {"  Hello  world  ", {" ", " Hello", " ", " world", "  "}},
    {"don't DON'T I'M we'Re they'LL", {"don", "'", "t", " DON", "'", "T", " I", "'", "M", " we", "'", "Re", " they", "'", "LL"}},
    {"'s 'sun x's", {"'", "s", " ", "'", "sun", " x", "'", "s"}},
    {"a\012\012b\015\012  c\012", {"a", "\012", "\012", "b", "\015\012 ", " c", "\012"}},
    {"\011Tab\011separated\011", {"\011", "Tab", "\011", "separated", "\011"}},
    {"1234567 89 3.14159", {"123", "456", "7", " ", "89", " ", "3", ".", "141", "59"}},
    {"x1234567y", {"x", "123", "456", "7", "y"}},
    {"Hello, World!!! ??? ...", {"Hello", ",", " World", "!!!", " ", "???", " ", "..."}},
    {"caf\303\251 na\303\257ve r\303\251sum\303\251", {"caf\303\251", " na\303\257ve", " r\303\251sum\303\251"}},
    {"e\314\201te\314\201", {"e", "\314\201", "te", "\314\201"}},
    {"\346\227\245\346\234\254\350\252\236\343\201\256\343\203\206\343\202\255\343\202\271\343\203\210", {"\346\227\245\346\234\254\350\252\236\343\201\256\343\203\206\343\202\255\343\202\271\343\203\210"}},
    {"\360\237\231\202 \360\237\221\250\342\200\215\360\237\221\251", {"\360\237\231\202", " \360\237\221\250\342\200\215\360\237\221\251"}},
    {"a\302\240b \343\200\200c", {"a", "\302\240", "b", " ", "\343\200\200", "c"}},
    {"\331\243\331\244\331\245 \302\275\302\274 12\302\275", {"\331\243\331\244\331\245", " ", "\302\275\302\274", " ", "12\302\275"}},
    {"$100 + 5% <tag> a|b ~x ^y `z`", {"$", "100", " ", "+", " ", "5", "%", " ", "<", "tag", ">", " a", "|", "b", " ", "~", "x", " ", "^", "y", " `", "z", "`"}},
    {"x  \012  y", {"x", "  \012 ", " y"}},
    {"   ", {"   "}},
    {"\012", {"\012"}},
    {"end.  ", {"end", ".", "  "}},
    {"(foo) [bar] {baz}", {"(", "foo", ")", " ", "[", "bar", "]", " ", "{", "baz", "}"}},
    {"l'amour d'un", {"l", "'", "amour", " d", "'", "un"}},
    {"\320\237\321\200\320\270\320\262\320\265\321\202, \320\274\320\270\321\200!", {"\320\237\321\200\320\270\320\262\320\265\321\202", ",", " \320\274\320\270\321\200", "!"}},
    {"a--b__c", {"a", "--", "b", "__", "c"}},
    {" ' '' x", {" ", "'", " ", "''", " x"}},
    {"\015\015\012\012 x", {"\015\015\012\012", " x"}},
};

TEST(tokenizer, bpe_pre_tokenizers_split_as_the_regex_engine_does) {
    struct table {
        bpe_pre pre;
        const char* name;
        std::span<const split_case> cases;
    };
    for (const auto& t : {table{bpe_pre::gpt2, "gpt2", k_gpt2_splits}, table{bpe_pre::llama3, "llama3", k_llama3_splits},
                          table{bpe_pre::qwen2, "qwen2", k_qwen2_splits}, table{bpe_pre::fallback, "default", k_fallback_splits}}) {
        for (const split_case& c : t.cases) {
            std::vector<std::string> got;
            for (auto p : bpe_pre_split(t.pre, c.text)) got.emplace_back(p);
            std::string shown;
            for (const auto& p : got) shown += " [" + p + "]";
            EXPECT_EQ(got, c.pieces) << t.name << ": '" << c.text << "' split as" << shown;
        }
    }
}

TEST(tokenizer, bpe_pre_tokenizers_cover_text_that_is_not_utf8) {
    std::mt19937 rng(7);
    for (int i = 0; i < 500; ++i) {
        std::string s(rng() % 24, '\0');
        for (char& ch : s) ch = static_cast<char>(rng() % 4 == 0 ? ' ' : rng() % 256);
        for (bpe_pre p : {bpe_pre::gpt2, bpe_pre::llama3, bpe_pre::qwen2, bpe_pre::fallback}) {
            std::string joined;
            for (auto piece : bpe_pre_split(p, s)) {
                EXPECT_FALSE(piece.empty()) << hex(s);
                joined += piece;
            }
            EXPECT_EQ(joined, s) << "pre " << static_cast<int>(p) << " text " << hex(s);
        }
    }
}

// ---- special tokens, flags and end of generation ----

TEST(tokenizer, special_tokens_in_text) {
    auto g = load_gguf(k_models / "stories260K-f32.gguf");
    ASSERT_TRUE(g);
    auto plain = [&](std::string_view s) { return g->encode(s, false, false); };
    auto cat = [](std::vector<std::vector<int32_t>> parts) {
        std::vector<int32_t> out;
        for (auto& p : parts) out.insert(out.end(), p.begin(), p.end());
        return out;
    };
    EXPECT_EQ(g->encode("<s>", false, true), std::vector<int32_t>{1});
    EXPECT_EQ(g->encode("<unk>", false, true), std::vector<int32_t>{0}) << "unknown tokens are parsed like control ones";
    EXPECT_NE(g->encode("<s>", false, false), std::vector<int32_t>{1});
    EXPECT_EQ(decode(*g, g->encode("<s>", false, false)), " <s>") << "unparsed, it is text";
    // Text after a special token gets the dummy prefix again, as in llama.cpp.
    EXPECT_EQ(g->encode("Hello</s>world", false, true), cat({plain("Hello"), {2}, plain("world")}));
    EXPECT_EQ(g->encode("<s>Hi", true, true), cat({{1, 1}, plain("Hi")}));
    EXPECT_EQ(g->encode("", true, true), std::vector<int32_t>{1});
    EXPECT_EQ(g->encode("", false, true), std::vector<int32_t>{});

    // Longest token first, each over what the longer ones left: "bcd" wins over "ab" in "abcd" although "ab"
    // starts first; a user-defined token is matched even without parse_special; occurrences do not overlap.
    spm_vocab v = small_spm();
    v.add("bcd", 0, tt::control);
    v.types[static_cast<size_t>(v.id("ab"))] = static_cast<int32_t>(tt::user_defined);
    v.add("aa", 0, tt::user_defined);
    auto t = from_bytes(v.gguf().bytes());
    ASSERT_TRUE(t) << t.error().to_string();
    const int32_t bcd = v.id("bcd"), ab = v.id("ab"), aa = v.id("aa"), cd = v.id("cd"), sp = v.id(k_sp);
    const int32_t sp_a = v.id(std::string(k_sp) + "a");
    EXPECT_EQ(t->encode("abcd", false, true), (std::vector<int32_t>{sp_a, bcd}));
    EXPECT_EQ(t->encode("abcd", false, false), (std::vector<int32_t>{ab, sp, cd})) << "\"cd\" gets the dummy prefix";
    EXPECT_EQ(t->encode("aaa", false, false), (std::vector<int32_t>{aa, sp_a}));
    EXPECT_EQ(t->piece(ab), "ab") << "user-defined tokens decode to their text";
    EXPECT_EQ(t->piece(bcd), "");
}

TEST(tokenizer, flags_and_end_of_generation) {
    spm_vocab v = small_spm();
    v.add("<|im_end|>", 0, tt::normal);  // recognized by its text and made a control token, as llama.cpp does
    v.add("<my_eot>", 0, tt::control);
    v.add("<|eot_id|>", 0, tt::control);
    gguf_bytes g = v.gguf();
    g.boolean("tokenizer.ggml.add_eos_token", true).u32("tokenizer.ggml.eot_token_id", static_cast<uint32_t>(v.id("<my_eot>")));
    auto t = from_bytes(g.bytes());
    ASSERT_TRUE(t) << t.error().to_string();
    EXPECT_TRUE(t->add_eos());
    const auto ids = t->encode("hi", true, false);
    ASSERT_GE(ids.size(), 3u);
    EXPECT_EQ(ids.front(), 1);
    EXPECT_EQ(ids.back(), 2);
    for (const char* s : {"</s>", "<|im_end|>", "<my_eot>", "<|eot_id|>"}) EXPECT_TRUE(t->is_eog(v.id(s))) << s;
    for (const char* s : {"<s>", "<unk>", "hi"}) EXPECT_FALSE(t->is_eog(v.id(s))) << s;
    EXPECT_EQ(t->type_of(v.id("<|im_end|>")), tt::control);
    EXPECT_EQ(t->piece(v.id("<|im_end|>")), "");
    EXPECT_EQ(t->encode("<|im_end|>", false, true), std::vector<int32_t>{v.id("<|im_end|>")});

    // No dummy prefix when the vocabulary says so; no BOS when add_bos_token is false.
    g.boolean("tokenizer.ggml.add_space_prefix", false).boolean("tokenizer.ggml.add_bos_token", false);
    g.boolean("tokenizer.ggml.add_eos_token", false);
    auto n = from_bytes(g.bytes());
    ASSERT_TRUE(n) << n.error().to_string();
    EXPECT_EQ(n->encode("ab", true, false), std::vector<int32_t>{v.id("ab")});

    // The "none" spellings of an id.
    g.u32("tokenizer.ggml.bos_token_id", 0xFFFFFFFFu).i32("tokenizer.ggml.eos_token_id", -1);
    auto none = from_bytes(g.bytes());
    ASSERT_TRUE(none) << none.error().to_string();
    EXPECT_EQ(none->bos(), -1);
    EXPECT_EQ(none->eos(), -1);
    EXPECT_FALSE(none->is_eog(-1));
}

TEST(tokenizer, small_bpe_vocabulary) {
    auto t = from_bytes(small_bpe().bytes());
    ASSERT_TRUE(t) << t.error().to_string();
    EXPECT_EQ(t->type(), tokenizer::kind::bpe);
    EXPECT_EQ(t->pre(), bpe_pre::gpt2);
    EXPECT_FALSE(t->add_bos());
    EXPECT_EQ(t->bos(), -1);
    EXPECT_TRUE(t->is_eog(10));
    // "ab hi": words "ab", " hi"; " hi" has no merge of the space, so it stays Ġ + hi.
    EXPECT_EQ(t->encode("ab hi ab", true, false), (std::vector<int32_t>{7, 6, 9, 8}));
    EXPECT_EQ(t->encode("ab<|endoftext|>", false, true), (std::vector<int32_t>{7, 10}));
    EXPECT_EQ(t->piece(8), " ab");
    EXPECT_EQ(t->piece(10), "");
    EXPECT_EQ(t->token_text(10), "<|endoftext|>");
    // llama3 takes a word that is a token whole, without merging (ignore_merges), and adds BOS by default.
    gguf_bytes l3 = small_bpe("llama-bpe");
    l3.strs("tokenizer.ggml.merges", {"a b"});
    l3.u32("tokenizer.ggml.bos_token_id", 10);
    auto l = from_bytes(l3.bytes());
    ASSERT_TRUE(l) << l.error().to_string();
    EXPECT_EQ(l->pre(), bpe_pre::llama3);
    EXPECT_TRUE(l->add_bos());
    EXPECT_EQ(l->encode("hi ab", true, false), (std::vector<int32_t>{10, 9, 8}));
    // Without the key, llama.cpp's "default" pre-tokenizer.
    auto def = from_bytes(small_bpe().erase("tokenizer.ggml.pre").bytes());
    ASSERT_TRUE(def) << def.error().to_string();
    EXPECT_EQ(def->pre(), bpe_pre::fallback);
}

// ---- bad vocabularies ----

struct bad_case {
    const char* name;
    std::function<std::string()> bytes;
    errc want;
};

TEST(tokenizer, bad_gguf_metadata_is_refused) {
    const spm_vocab v = small_spm();
    const auto n = static_cast<uint32_t>(v.tokens.size());
    auto spm = [&](auto edit) {
        return [=]() {
            gguf_bytes g = v.gguf();
            edit(g);
            return g.bytes();
        };
    };
    auto bpe = [&](auto edit) {
        return [=]() {
            gguf_bytes g = small_bpe();
            edit(g);
            return g.bytes();
        };
    };
    auto with_token = [&](std::string text, tt type, float score = 0) {
        return spm([=](gguf_bytes& g) {
            spm_vocab w = v;
            w.add(text, score, type);
            g.strs("tokenizer.ggml.tokens", w.tokens).f32s("tokenizer.ggml.scores", w.scores).i32s("tokenizer.ggml.token_type", w.types);
        });
    };
    std::vector<int32_t> types_bad = v.types;
    types_bad[5] = 7;
    std::vector<int32_t> types_zero = v.types;
    types_zero[5] = 0;
    const errc bad = errc::corrupt_file;
    const bad_case cases[] = {
        {"no_model", spm([](gguf_bytes& g) { g.erase("tokenizer.ggml.model"); }), bad},
        {"model_not_a_string", spm([](gguf_bytes& g) { g.u32("tokenizer.ggml.model", 1); }), bad},
        {"unknown_model", spm([](gguf_bytes& g) { g.str("tokenizer.ggml.model", "t5"); }), errc::unsupported},
        {"no_tokens", spm([](gguf_bytes& g) { g.erase("tokenizer.ggml.tokens"); }), bad},
        {"tokens_not_strings", spm([n](gguf_bytes& g) { g.i32s("tokenizer.ggml.tokens", std::vector<int32_t>(n, 1)); }), bad},
        {"no_tokens_at_all", spm([](gguf_bytes& g) {
             g.strs("tokenizer.ggml.tokens", {}).f32s("tokenizer.ggml.scores", {}).i32s("tokenizer.ggml.token_type", {});
         }), bad},
        {"scores_short", spm([n](gguf_bytes& g) { g.f32s("tokenizer.ggml.scores", std::vector<float>(n - 1, 0.f)); }), bad},
        {"scores_long", spm([n](gguf_bytes& g) { g.f32s("tokenizer.ggml.scores", std::vector<float>(n + 1, 0.f)); }), bad},
        {"scores_not_numbers", spm([n](gguf_bytes& g) { g.strs("tokenizer.ggml.scores", std::vector<std::string>(n, "x")); }), bad},
        {"types_short", spm([n](gguf_bytes& g) { g.i32s("tokenizer.ggml.token_type", std::vector<int32_t>(n - 1, 1)); }), bad},
        {"type_7", spm([=](gguf_bytes& g) { g.i32s("tokenizer.ggml.token_type", types_bad); }), bad},
        {"type_0", spm([=](gguf_bytes& g) { g.i32s("tokenizer.ggml.token_type", types_zero); }), bad},
        {"bos_past_vocab", spm([n](gguf_bytes& g) { g.u32("tokenizer.ggml.bos_token_id", n); }), bad},
        {"eos_huge", spm([](gguf_bytes& g) { g.u32("tokenizer.ggml.eos_token_id", 0xFFFFFFFEu); }), bad},
        {"unk_negative", spm([](gguf_bytes& g) { g.i32("tokenizer.ggml.unknown_token_id", -5); }), bad},
        {"eot_past_vocab", spm([n](gguf_bytes& g) { g.u32("tokenizer.ggml.eot_token_id", n + 10); }), bad},
        {"padding_past_vocab", spm([n](gguf_bytes& g) { g.u32("tokenizer.ggml.padding_token_id", n); }), bad},
        {"bos_a_string", spm([](gguf_bytes& g) { g.str("tokenizer.ggml.bos_token_id", "1"); }), bad},
        {"add_bos_not_bool", spm([](gguf_bytes& g) { g.u32("tokenizer.ggml.add_bos_token", 1); }), bad},
        {"add_bos_without_bos", spm([](gguf_bytes& g) { g.u32("tokenizer.ggml.bos_token_id", 0xFFFFFFFFu); }), bad},
        {"add_eos_without_eos", spm([](gguf_bytes& g) {
             g.boolean("tokenizer.ggml.add_eos_token", true).i32("tokenizer.ggml.eos_token_id", -1);
         }), bad},
        {"token_not_utf8", with_token("a\xFF", tt::normal), bad},
        {"token_overlong_utf8", with_token("\xC0\x80", tt::normal), bad},
        {"token_surrogate", with_token("\xED\xA0\x80", tt::normal), bad},
        {"token_cut_utf8", with_token("\xE2\x96", tt::normal), bad},
        {"token_duplicate", with_token("hi", tt::normal), bad},
        {"token_too_long", with_token(std::string(2000, 'x'), tt::normal), bad},
        {"score_nan", with_token("xyz", tt::normal, std::numeric_limits<float>::quiet_NaN()), bad},
        {"byte_token_misspelled", with_token("<0xZZ>", tt::byte), bad},
        {"bpe_no_merges", bpe([](gguf_bytes& g) { g.erase("tokenizer.ggml.merges"); }), bad},
        {"bpe_merges_not_strings", bpe([](gguf_bytes& g) { g.i32s("tokenizer.ggml.merges", {1, 2}); }), bad},
        {"bpe_merge_without_space", bpe([](gguf_bytes& g) { g.strs("tokenizer.ggml.merges", {"ab"}); }), bad},
        {"bpe_merge_half", bpe([](gguf_bytes& g) { g.strs("tokenizer.ggml.merges", {"a "}); }), bad},
        {"bpe_unknown_pre", bpe([](gguf_bytes& g) { g.str("tokenizer.ggml.pre", "tekken"); }), errc::unsupported},
        {"bpe_add_bos_without_bos", bpe([](gguf_bytes& g) { g.boolean("tokenizer.ggml.add_bos_token", true); }), bad},
    };
    // The base vocabularies load: every failure below comes from its one edit.
    ASSERT_TRUE(from_bytes(v.gguf().bytes()));
    ASSERT_TRUE(from_bytes(small_bpe().bytes()));
    for (const bad_case& c : cases) {
        auto t = from_bytes(c.bytes());
        ASSERT_FALSE(t) << c.name << " loaded";
        EXPECT_EQ(t.error().code(), c.want) << c.name << ": " << t.error().to_string();
        EXPECT_NE(t.error().message().find("tokenizer"), std::string::npos) << c.name << ": " << t.error().to_string();
    }
}

// Every id in range and every piece readable, for whatever a damaged vocabulary loads as.
void exercise(const tokenizer& t, const std::string& what) {
    for (const char* s : {"", "hi ab", " <s> \xF0\x9F\x99\x82 \xFF tab\tnl\n", "<|endoftext|>x", "aaaa bbbb"}) {
        for (bool special : {false, true}) {
            for (int32_t id : t.encode(s, special, special)) {
                ASSERT_TRUE(id >= 0 && id < t.n_vocab()) << what << ": id " << id;
                (void)t.piece(id);
                (void)t.token_text(id);
            }
        }
    }
}

TEST(tokenizer, damaged_gguf_bytes_never_crash) {
    std::mt19937 rng(11);
    for (const std::string& base : {small_spm().gguf().bytes(), small_bpe().bytes()}) {
        for (size_t len = 0; len < base.size(); ++len) {  // every truncation
            auto t = from_bytes(base.substr(0, len));
            if (t) exercise(*t, "cut at " + std::to_string(len));
            else EXPECT_FALSE(t.error().message().empty());
        }
        for (int i = 0; i < 3000; ++i) {  // one to four random bytes changed
            std::string b = base;
            for (uint32_t k = 0, m = 1 + rng() % 4; k < m; ++k) b[rng() % b.size()] = static_cast<char>(rng());
            auto t = from_bytes(b);
            if (t) exercise(*t, "mutation " + std::to_string(i));
            else EXPECT_FALSE(t.error().message().empty());
        }
    }
}

TEST(tokenizer, llama2c_files_cut_at_any_length_are_refused) {
    const std::string file = test::read_text(k_models / "tok512.bin");
    ASSERT_EQ(file.size(), 6227u);
    auto parse = [](std::string_view b, std::optional<int32_t> n) {
        return tokenizer::parse_llama2c(std::as_bytes(std::span<const char>(b.data(), b.size())), n);
    };
    ASSERT_TRUE(parse(file, 512));
    for (size_t len = 0; len < file.size(); ++len) {
        auto t = parse(std::string_view(file).substr(0, len), 512);
        ASSERT_FALSE(t) << "cut at " << len;
        EXPECT_EQ(t.error().code(), errc::corrupt_file) << len << ": " << t.error().to_string();
    }
    // Without the model's vocabulary size a cut between two records reads as a smaller vocabulary; inside a
    // record it is still refused.
    for (size_t len = 0; len < file.size(); ++len) {
        auto t = parse(std::string_view(file).substr(0, len), std::nullopt);
        if (t) exercise(*t, "llama2.c cut at " + std::to_string(len));
        else EXPECT_EQ(t.error().code(), errc::corrupt_file) << len;
    }
    auto longer = parse(file + "x", 512);
    ASSERT_FALSE(longer);
    EXPECT_EQ(longer.error().code(), errc::corrupt_file);
    auto fewer = parse(file, 513);
    ASSERT_FALSE(fewer);
    EXPECT_EQ(fewer.error().code(), errc::corrupt_file);

    auto with_i32 = [&](size_t at, int32_t v) {
        std::string b = file;
        std::memcpy(b.data() + at, &v, 4);
        return b;
    };
    struct edit {
        const char* name;
        std::string bytes;
    };
    for (const edit& e : {edit{"max_len_0", with_i32(0, 0)}, edit{"max_len_negative", with_i32(0, -1)},
                          edit{"max_len_huge", with_i32(0, 1 << 30)}, edit{"len_negative", with_i32(8, -3)},
                          edit{"len_past_max", with_i32(8, 8)}, edit{"len_huge", with_i32(8, 0x7FFFFFFF)}}) {
        auto t = parse(e.bytes, 512);
        ASSERT_FALSE(t) << e.name;
        EXPECT_EQ(t.error().code(), errc::corrupt_file) << e.name;
    }
    EXPECT_EQ(parse(file, 0).error().code(), errc::invalid_argument);
    auto missing = tokenizer::from_llama2c(k_models / "no_such_tokenizer.bin");
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error().code(), errc::io_error);
}

// ---- text that is not UTF-8 ----

TEST(tokenizer, any_bytes_round_trip) {
    auto spm = load_gguf(k_models / "vocab" / "ggml-vocab-llama-spm.gguf");
    auto gpt2 = load_gguf(k_models / "vocab" / "ggml-vocab-gpt-2.gguf");
    auto stories = load_gguf(k_models / "stories260K-f32.gguf");
    auto llama2c = tokenizer::from_llama2c(k_models / "tok512.bin", 512);
    ASSERT_TRUE(spm && gpt2 && stories && llama2c);
    std::vector<std::string> texts = {"\xFF", "a\xC3", "\xC3(", "\xE2\x82", "\xED\xA0\x80", "\xF4\x90\x80\x80",
                                      "\x80\x80" "abc", "\xC0\xAF", std::string("nul\0byte", 8), "ok \xF0\x9F\x99"};
    std::mt19937 rng(3);
    while (texts.size() < 300) {
        std::string s(1 + rng() % 40, '\0');
        for (char& ch : s) ch = static_cast<char>(rng() % 3 == 0 ? "a <s>\n"[rng() % 6] : rng() % 256);
        if (s.find(k_sp) == std::string::npos) texts.push_back(s);  // a literal U+2581 decodes to ' ' in SPM
    }
    for (const std::string& s : texts) {
        for (const tokenizer* t : {&*spm, &*gpt2, &*stories, &*llama2c}) {
            const auto ids = t->encode(s, false, false);
            for (int32_t id : ids) ASSERT_TRUE(id >= 0 && id < t->n_vocab());
            const std::string want = (t->type() == tokenizer::kind::spm ? " " : "") + s;
            EXPECT_EQ(hex(decode(*t, ids)), hex(want)) << "n_vocab " << t->n_vocab();
        }
    }
}

}  // namespace
}  // namespace mm::text
