// The tokenizers against llama.cpp's own test vectors (the 32000-token LLaMA SPM vocabulary and GPT-2's BPE),
// llama-tokenize's and run.c's ids on stories260K (golden/text/tokenizer_cases.json), and the greedy goldens'
// prompts and pieces. All exact: these are integers and bytes.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/gguf.h"
#include "text/tokenizer.h"
#include "ref/shared_files.h"

namespace mm::text {
namespace {

using json = nlohmann::json;
const std::filesystem::path k_models = std::filesystem::path(MM_SHARED_DIR) / "models" / "text";

tokenizer from(const std::filesystem::path& p) {
    auto f = gguf_open(p);
    EXPECT_TRUE(f) << f.error().to_string();
    auto t = tokenizer::from_gguf(*f);
    EXPECT_TRUE(t) << t.error().to_string();
    return std::move(*t);
}

// llama.cpp's tests/test-tokenizer-0 format: .inp strings separated by a marker line, .out ids per line.
void check_vectors(const std::string& vocab, size_t n_cases) {
    const tokenizer t = from(k_models / "vocab" / vocab);
    const std::string inp = test::read_text(k_models / "vocab" / (vocab + ".inp"));
    const std::string outs = test::read_text(k_models / "vocab" / (vocab + ".out"));
    const std::string sep = "\n__ggml_vocab_test__\n";
    std::vector<std::string> texts;
    for (size_t at = 0, next; (next = inp.find(sep, at)) != std::string::npos; at = next + sep.size())
        texts.push_back(inp.substr(at, next - at));
    std::vector<std::vector<int32_t>> want;
    std::istringstream lines(outs);
    for (std::string line; std::getline(lines, line);) {
        std::istringstream ids(line);
        std::vector<int32_t> v;
        for (int32_t id; ids >> id;) v.push_back(id);
        want.push_back(v);
    }
    ASSERT_EQ(texts.size(), n_cases) << vocab;
    ASSERT_EQ(want.size(), texts.size()) << vocab;
    for (size_t i = 0; i < texts.size(); ++i) {
        EXPECT_EQ(t.encode(texts[i], false, false), want[i]) << vocab << " case " << i << ": " << texts[i];
        // Decoding the ids gives the text back (both tokenizers are lossless on these strings).
        std::string back;
        for (int32_t id : want[i]) back += t.piece(id);
        if (t.type() == tokenizer::kind::spm && !back.empty() && back[0] == ' ') back.erase(0, 1);  // the dummy prefix
        EXPECT_EQ(back, texts[i]) << vocab << " case " << i;
    }
}

TEST(tokenizer_spm, llama_cpp_vectors_for_the_llama_vocabulary) { check_vectors("ggml-vocab-llama-spm.gguf", 46); }

TEST(tokenizer_bpe, llama_cpp_vectors_for_the_gpt2_vocabulary) { check_vectors("ggml-vocab-gpt-2.gguf", 46); }

TEST(tokenizer_spm, stories260k_cases_match_llama_tokenize_and_run_c) {
    const tokenizer g = from(k_models / "stories260K-f32.gguf");
    auto c = tokenizer::from_llama2c(k_models / "tok512.bin");
    ASSERT_TRUE(c) << c.error().to_string();
    const json cases = test::text_golden("tokenizer_cases.json")["cases"];
    ASSERT_EQ(cases.size(), 22u);
    for (const json& k : cases) {
        const std::string text = k["text"];
        EXPECT_EQ(g.encode(text, true, true), k["llama_tokenize_ids"].get<std::vector<int32_t>>()) << k["id"];
        EXPECT_EQ(g.encode(text, false, false), k["llama_tokenize_ids_no_bos_no_special"].get<std::vector<int32_t>>()) << k["id"];
        EXPECT_EQ(c->encode(text, true, false), k["runc_encode_ids"].get<std::vector<int32_t>>()) << k["id"] << " (llama2.c)";
    }
}

TEST(tokenizer_spm, greedy_goldens_prompts_and_pieces) {
    const tokenizer g = from(k_models / "stories260K-f32.gguf");
    auto c = tokenizer::from_llama2c(k_models / "tok512.bin");
    ASSERT_TRUE(c);
    for (const json& k : test::text_golden("runc_greedy.json")["cases"]) {
        const auto want = k["prompt_ids"].get<std::vector<int32_t>>();
        EXPECT_EQ(g.encode(k["prompt"].get<std::string>(), true, false), want) << k["id"];
        EXPECT_EQ(c->encode(k["prompt"].get<std::string>(), true, false), want) << k["id"];
        // run.c strips the leading space of a piece right after BOS; the bytes are otherwise the pieces'.
        const auto ids = k["generated_ids"].get<std::vector<int32_t>>();
        const auto hex = k["generated_pieces_hex"].get<std::vector<std::string>>();
        int32_t prev = want.back();
        for (size_t i = 0; i < ids.size(); ++i) {
            for (const tokenizer* t : {&g, static_cast<const tokenizer*>(&*c)}) {
                std::string p = t->piece(ids[i]);
                if (prev == 1 && !p.empty() && p[0] == ' ') p.erase(0, 1);
                std::string h;
                for (unsigned char ch : p) {
                    char b[3];
                    std::snprintf(b, sizeof b, "%02x", ch);
                    h += b;
                }
                EXPECT_EQ(h, hex[i]) << k["id"] << " step " << i;
            }
            prev = ids[i];
        }
    }
}

TEST(tokenizer_spm, special_tokens_and_end_of_generation) {
    const tokenizer g = from(k_models / "stories260K-f32.gguf");
    EXPECT_EQ(g.bos(), 1);
    EXPECT_EQ(g.eos(), 2);
    EXPECT_TRUE(g.is_eog(2));
    EXPECT_FALSE(g.is_eog(1));
    EXPECT_EQ(g.piece(1), "") << "control tokens decode to nothing";
    EXPECT_EQ(g.encode("<s>", false, true), std::vector<int32_t>{1});
    EXPECT_NE(g.encode("<s>", false, false), std::vector<int32_t>{1});
}

// The format has no token count, so a file cut exactly between tokens is a smaller valid vocabulary (the
// stage then refuses it for not matching the model); a cut anywhere else is corrupt.
TEST(tokenizer_spm, truncated_llama2c_files_are_refused_unless_cut_between_tokens) {
    const std::string bytes = test::read_text(k_models / "tok512.bin");
    std::vector<size_t> ends;  // where each token's record ends
    for (size_t at = 4; at + 8 <= bytes.size();) {
        int32_t len = 0;
        std::memcpy(&len, bytes.data() + at + 4, 4);
        at += 8 + static_cast<size_t>(len);
        ends.push_back(at);
    }
    ASSERT_EQ(ends.size(), 512u);
    const auto path = std::filesystem::temp_directory_path() / ("mm_tok_cut_" + std::to_string(::getpid()));
    for (size_t n = 0; n < 400; ++n) {
        std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(n));
        auto t = tokenizer::from_llama2c(path);
        const auto k = std::find(ends.begin(), ends.end(), n);
        const bool boundary = k != ends.end() && k - ends.begin() >= 2;
        EXPECT_EQ(t.has_value(), boundary) << n;
        if (t) EXPECT_EQ(t->n_vocab(), k - ends.begin() + 1) << n;
        else EXPECT_EQ(t.error().code(), errc::corrupt_file) << n;
    }
    std::filesystem::remove(path);
}

}  // namespace
}  // namespace mm::text
