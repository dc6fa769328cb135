// libFuzzer target: the GGUF reader on arbitrary bytes. A parsed file is walked completely (every metadata
// value, every typed getter, every tensor's bytes through its view) so ASan sees any read a loader would do.
#include <cstddef>
#include <cstdint>
#include <span>
#include <type_traits>
#include <variant>

#include "common/gguf.h"

namespace {

uint64_t walk(const mm::gguf_value& v) {
    uint64_t h = static_cast<uint64_t>(v.type);
    if (const auto* s = std::get_if<std::string>(&v.data)) return h + s->size() + (s->empty() ? 0 : s->back());
    if (const auto* a = std::get_if<mm::gguf_array>(&v.data)) {
        for (const auto& item : a->items) h += walk(item);
        return h;
    }
    return h + std::visit([](const auto& x) -> uint64_t {
        if constexpr (std::is_arithmetic_v<std::decay_t<decltype(x)>>) return static_cast<uint64_t>(x != 0);
        else return 0;
    }, v.data);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    auto f = mm::gguf_parse(std::as_bytes(std::span(data, size)));
    if (!f) return f.error().message().empty() ? 1 : 0;  // an error always says why
    volatile uint64_t sink = 0;
    for (const auto& kv : f->metadata()) {
        sink = sink + walk(kv.value);
        // The getters convert or refuse; either way they must not read out of bounds.
        sink = sink + f->get_u32(kv.key).has_value() + f->get_i32(kv.key).has_value() + f->get_f32(kv.key).has_value();
        sink = sink + f->get_bool(kv.key).has_value() + f->get_string(kv.key).has_value();
        if (auto a = f->get_string_array(kv.key)) sink = sink + a->size();
        if (auto a = f->get_f32_array(kv.key)) sink = sink + a->size();
        if (auto a = f->get_i32_array(kv.key)) sink = sink + a->size();
    }
    for (const auto& t : f->tensors()) {
        const mm::tensor v = f->view(t);
        if (v.bytes() != t.n_bytes) __builtin_trap();  // the view and the info must agree on the size
        const auto* p = static_cast<const uint8_t*>(v.raw());
        for (size_t i = 0; i < v.bytes(); ++i) sink = sink + p[i];
        if (f->find_tensor(t.name) != &t) __builtin_trap();
    }
    return 0;
}
