// libFuzzer target: the safetensors reader on arbitrary bytes. A parsed file is walked completely (metadata,
// every tensor's bytes, and a view of each tensor that can be viewed) so ASan sees any read a loader would do.
#include <cstddef>
#include <cstdint>
#include <span>

#include "common/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    auto f = mm::safetensors_parse(std::as_bytes(std::span(data, size)));
    if (!f) return f.error().message().empty() ? 1 : 0;  // an error always says why
    volatile uint64_t sink = 0;
    for (const auto& [k, v] : f->metadata()) sink = sink + k.size() + v.size();
    for (const auto& t : f->tensors()) {
        const auto* p = reinterpret_cast<const uint8_t*>(t.data);
        for (uint64_t i = 0; i < t.n_bytes(); ++i) sink = sink + p[i];
        if (auto v = f->view(t)) {
            if (v->bytes() != t.n_bytes()) __builtin_trap();  // the view and the info must agree on the size
            const auto* q = static_cast<const uint8_t*>(v->raw());
            for (size_t i = 0; i < v->bytes(); ++i) sink = sink + q[i];
        }
        if (f->find_tensor(t.name) != &t) __builtin_trap();
    }
    return 0;
}
