// libFuzzer target: the tokenizer built from a GGUF's tokenizer.ggml.* metadata (untrusted model files).
// Input: GGUF bytes. A vocabulary either loads or is refused with a message; encoding and decoding never
// crash and every id it produces is in the vocabulary.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "common/gguf.h"
#include "text/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    auto owner = std::make_shared<std::vector<std::byte>>(reinterpret_cast<const std::byte*>(data),
                                                          reinterpret_cast<const std::byte*>(data) + size);
    auto file = mm::gguf_parse(std::span<const std::byte>(*owner), owner);
    if (!file) return 0;
    auto t = mm::text::tokenizer::from_gguf(*file);
    if (!t) {
        if (t.error().message().empty()) __builtin_trap();
        return 0;
    }
    for (const char* text : {"", "Hello world", " <s> \xF0\x9F\x99\x82 \xFF tab\tnl\n", "<|im_end|>x"}) {
        for (bool special : {false, true}) {
            for (int32_t id : t->encode(text, special, special)) {
                if (id < 0 || id >= t->n_vocab()) __builtin_trap();
                (void)t->piece(id);
            }
        }
    }
    return 0;
}
