// tokenizer: text <-> token ids for llama-family LLMs, built from a GGUF's tokenizer.ggml.* metadata or from a
// llama2.c tokenizer file. Two algorithms, as llama.cpp implements them (its test vectors pass exactly):
//  - spm ("llama" in GGUF, and llama2.c files): a dummy-prefix space, spaces spelled U+2581, then adjacent
//    pieces merged highest score first (leftmost on ties) while the joined text is a token; a character that
//    is not a token is spelled with byte tokens <0xNN>.
//  - bpe ("gpt2" in GGUF): the text is split into words by a pre-tokenizer (tokenizer.ggml.pre), each word's
//    bytes are spelled in GPT-2's byte-level alphabet, and pairs are merged by rank (tokenizer.ggml.merges).
// Before either, the text is cut at spellings of control, user-defined and unknown tokens (user-defined ones
// always; control and unknown ones only when asked), longest token first, as llama.cpp does.
// Every byte of a model file is untrusted: a bad vocabulary is refused with errc::corrupt_file (or
// errc::unsupported for a tokenizer we do not implement) and a message naming what is wrong. Any input text
// is accepted; bytes that are not well-formed UTF-8 are taken one at a time.
// Thread safety: immutable after construction; share it freely.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/gguf.h"
#include "common/status.h"

namespace mm::text {

namespace detail {
struct tokenizer_data;
}

// How a BPE vocabulary splits text into words before merging (GGUF tokenizer.ggml.pre names in brackets).
enum class bpe_pre {
    gpt2,      // 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+   (gpt-2, phi-2, mpt, olmo)
    llama3,    // (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|
               //   \s*[\r\n]+|\s+(?!\S)|\s+   (llama3, llama-v3, llama-bpe, falcon3, dbrx, smaug-bpe)
    qwen2,     // llama3's expression with \p{N} one digit at a time   (qwen2, deepseek-r1-qwen, stablelm2, megrez)
    fallback,  // llama.cpp's "default" (also used when the key is absent): runs of [\p{P}$+<=>^~|], then gpt2's
               //   expression, then \p{N}+, then [0-9]{3}, each splitting the pieces of the one before
};

// The words a BPE tokenizer with pre-tokenizer p merges within: consecutive byte ranges of text that cover it.
// Exposed so tests (and tools that show tokenization) can check the split against a regex engine.
std::vector<std::string_view> bpe_pre_split(bpe_pre p, std::string_view text);

class tokenizer {
public:
    enum class kind { spm, bpe };
    // GGUF's tokenizer.ggml.token_type values.
    enum class token_type : int32_t { normal = 1, unknown = 2, control = 3, user_defined = 4, unused = 5, byte = 6 };

    // Reads tokenizer.ggml.model ("llama" or "gpt2"), .pre, .tokens, .scores, .token_type, .merges, the
    // .bos/.eos/.unknown/.padding/.eot/.eom_token_id ids and the .add_bos_token / .add_eos_token /
    // .add_space_prefix flags. Absent flags take llama.cpp's defaults: for "llama" add BOS and a space prefix,
    // BOS 1, EOS 2, UNK 0; for "gpt2" no BOS (yes for the llama3 pre-tokenizers) and no special ids. An id of
    // 0xFFFFFFFF (or -1) means "none". The gguf_file need not outlive the tokenizer.
    static result<tokenizer> from_gguf(const gguf_file& f);

    // A llama2.c tokenizer file: int32 max_token_length, then per token f32 score, int32 length and the bytes,
    // to the end of the file. Ids 0, 1, 2 are <unk>, BOS, EOS (spelled "<unk>", "<s>", "</s>" whatever the
    // file says, as llama.cpp's converter does); <0xNN> pieces are byte tokens; pieces spell a space as ' '.
    // The file does not record its token count: pass the checkpoint's vocab_size as n_vocab to have any other
    // count (a file cut between two tokens, or trailing bytes) refused as corrupt.
    static result<tokenizer> from_llama2c(const std::filesystem::path& p, std::optional<int32_t> n_vocab = std::nullopt);
    // The same from bytes in memory (copied; the span need not outlive the call).
    static result<tokenizer> parse_llama2c(std::span<const std::byte> bytes, std::optional<int32_t> n_vocab = std::nullopt);

    tokenizer(const tokenizer&) = delete;  // a vocabulary is large: share it (shared_ptr<const tokenizer>)
    tokenizer& operator=(const tokenizer&) = delete;
    tokenizer(tokenizer&&) noexcept;
    tokenizer& operator=(tokenizer&&) noexcept;
    ~tokenizer();

    // Token ids for text. add_special: BOS first when add_bos() and EOS last when add_eos(). parse_special:
    // spellings of control and unknown tokens ("<s>", "<|im_end|>", "<unk>") become those tokens; otherwise
    // they are plain text. User-defined tokens are always matched. Every id returned is in [0, n_vocab()).
    // O(n log n) in the text's length.
    std::vector<int32_t> encode(std::string_view text, bool add_special, bool parse_special) const;

    // The bytes a token stands for when decoding: a normal piece with its space marker as ' ' (bpe: mapped back
    // from the byte-level alphabet), a byte token as its byte, a user-defined token as its text. Control,
    // unknown and unused tokens, and ids out of range, give "" (token_text() has their spelling). Pieces are
    // bytes, not always whole UTF-8 characters.
    std::string piece(int32_t id) const;
    // The vocabulary's own spelling of a token ("<s>", "▁the", "<0x0A>"); "" for an id out of range.
    const std::string& token_text(int32_t id) const;
    // The token's type (GGUF's, or derived for llama2.c files); token_type::unused for an id out of range.
    token_type type_of(int32_t id) const;
    // The id of the token spelled exactly token_text, if any.
    std::optional<int32_t> find(std::string_view token_text) const;

    int32_t n_vocab() const;
    int32_t bos() const;  // -1 when the vocabulary has none
    int32_t eos() const;  // -1 when the vocabulary has none
    int32_t unk() const;  // -1 when the vocabulary has none
    bool add_bos() const;  // whether encode(text, add_special = true, ...) starts with bos()
    bool add_eos() const;  // whether encode(text, add_special = true, ...) ends with eos()
    kind type() const;
    std::optional<bpe_pre> pre() const;  // the BPE pre-tokenizer; nullopt for spm

    // End of generation: EOS, tokenizer.ggml.eot_token_id / eom_token_id, and the turn-end tokens llama.cpp
    // recognizes by their text (<|eot_id|>, <|im_end|>, <|end|>, <end_of_turn>, <|endoftext|>, ...).
    bool is_eog(int32_t id) const;

private:
    explicit tokenizer(std::unique_ptr<const detail::tokenizer_data> d);
    std::unique_ptr<const detail::tokenizer_data> d_;
};

}  // namespace mm::text
