// libFuzzer target: a request's JSON schema (response_format, tool parameters) and the recogniser that
// constrains output to it. Input: schema text, a NUL byte, then document bytes fed one at a time. The
// schema either parses or is refused with a message; the recogniser never crashes, and a document it calls
// complete parses as JSON, and so does the document its closing() completes.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "text/json_constraint.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view in(reinterpret_cast<const char*>(data), size);
    const size_t nul = in.find('\0');
    const std::string_view schema_text = in.substr(0, nul);
    const std::string_view doc = nul == std::string_view::npos ? std::string_view() : in.substr(nul + 1);
    auto schema = mm::text::json_schema_parse(schema_text);
    if (!schema) {
        if (schema.error().message().empty()) __builtin_trap();
        return 0;
    }
    for (auto root : {*schema, mm::text::json_schema_any_object()}) {
        mm::text::json_recognizer r(root);
        size_t fed = 0;
        for (char c : doc) {
            mm::text::json_recognizer copy = r;  // alternatives are tried on copies, as the token mask does
            if (!copy.feed(c)) break;
            r = copy;
            ++fed;
        }
        if (r.complete() && nlohmann::json::parse(doc.substr(0, fed), nullptr, false).is_discarded()) __builtin_trap();
        // closing() from wherever the bytes stopped: each of its bytes is taken and shortens it by one, and it
        // ends in a document that parses.
        std::string whole(doc.substr(0, fed));
        for (std::string rest = r.closing(); !rest.empty(); rest.erase(0, 1)) {
            if (!r.feed(rest[0]) || r.closing() != std::string_view(rest).substr(1)) __builtin_trap();
            whole += rest[0];
        }
        if (!r.complete() || nlohmann::json::parse(whole, nullptr, false).is_discarded()) __builtin_trap();
    }
    return 0;
}
