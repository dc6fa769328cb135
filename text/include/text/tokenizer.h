// tokenizer: text <-> token ids for llama-family models, from GGUF metadata (tokenizer.ggml.*) or a llama2.c
// tokenizer file. The SentencePiece-style tokenizer ("llama"): a dummy-prefix space, spaces as U+2581,
// pairs merged best score first, bytes with no piece spelled as <0xNN> tokens. The byte-level BPE tokenizer
// ("gpt2"): GPT-2's pre-tokenization (contractions, letter / number / other runs with one leading space,
// whitespace), bytes mapped to printable code points, pairs merged lowest rank first. Control and
// user-defined tokens are matched in the text first (control ones only when parse_special), longest first.
// Thread safety: immutable after construction; share it freely.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/gguf.h"
#include "common/status.h"

namespace mm::text {

class tokenizer {
public:
    enum class kind { spm, bpe };
    // GGUF's tokenizer.ggml.token_type values.
    enum class token_type : int32_t { normal = 1, unknown = 2, control = 3, user_defined = 4, unused = 5, byte = 6 };

    static result<tokenizer> from_gguf(const gguf_file& f);
    static result<tokenizer> from_llama2c(const std::filesystem::path& p);

    // add_special: BOS first when the vocabulary asks for it. parse_special: control-token spellings in the
    // text ("<s>", "<|im_end|>") become those tokens; otherwise they are plain text.
    std::vector<int32_t> encode(std::string_view text, bool add_special, bool parse_special) const;

    // The bytes a token decodes to: the piece with U+2581 as a space, a byte token as its byte; control
    // tokens decode to nothing. token_text() is the vocabulary's own spelling.
    std::string piece(int32_t id) const;
    const std::string& token_text(int32_t id) const { return tokens_[static_cast<size_t>(id)].text; }

    int32_t n_vocab() const { return static_cast<int32_t>(tokens_.size()); }
    int32_t bos() const { return bos_; }
    int32_t eos() const { return eos_; }
    bool add_bos() const { return add_bos_; }
    kind type() const { return kind_; }
    // End of generation: EOS, EOT and the chat families' turn ends when the vocabulary has them.
    bool is_eog(int32_t id) const;
    std::optional<int32_t> find(std::string_view token_text) const;

private:
    struct token {
        std::string text;
        float score = 0.0f;
        token_type type = token_type::normal;
    };
    void index();  // builds the lookups after tokens_ is filled
    void encode_spm(std::string text, std::vector<int32_t>& out) const;
    void encode_bpe(std::string_view text, std::vector<int32_t>& out) const;
    // Merges adjacent symbols of text (split at UTF-8 characters) best first, then emits each symbol's id.
    // rank_of gives a pair's priority (higher first) or nullopt when the pair is not a token.
    void merge(const std::string& text, std::vector<int32_t>& out, bool bpe) const;

    kind kind_ = kind::spm;
    std::vector<token> tokens_;
    std::unordered_map<std::string, int32_t> by_text_;
    std::unordered_map<std::string, int32_t> merge_rank_;  // BPE: "left right" -> rank (lower merges first)
    std::vector<int32_t> specials_;     // control / user-defined tokens, longest text first
    std::vector<int32_t> byte_tokens_;  // byte value -> id, -1 if absent
    std::vector<int32_t> eog_;
    std::string space_ = "\xE2\x96\x81";  // how pieces spell a space: U+2581, or " " in llama2.c files
    int32_t bos_ = -1, eos_ = -1, unk_ = -1;
    bool add_bos_ = true, add_space_prefix_ = true;
};

}  // namespace mm::text
