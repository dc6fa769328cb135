// libFuzzer target: the multipart/form-data reader for uploads. Input: a Content-Type line, a newline, then the
// body. Every input parses into parts whose views lie inside the body, within the limits, or is refused with a
// message.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "multipart.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view in(reinterpret_cast<const char*>(data), size);
    const size_t nl = in.find('\n');
    const std::string_view ct = in.substr(0, nl);
    const std::string_view body = nl == std::string_view::npos ? std::string_view() : in.substr(nl + 1);
    const mm::services::multipart_limits limits{.max_parts = 8, .max_header_bytes = 256, .max_field_bytes = 1024};
    auto parts = mm::services::multipart_parse(ct, body, limits);
    if (!parts) {
        if (parts.error().message().empty()) __builtin_trap();
        return 0;
    }
    if (parts->size() > limits.max_parts) __builtin_trap();
    for (const auto& p : *parts) {
        if (p.data.data() < body.data() || p.data.data() + p.data.size() > body.data() + body.size()) __builtin_trap();
        if (!p.filename && p.data.size() > limits.max_field_bytes) __builtin_trap();
    }
    return 0;
}
