// A bound on how deep untrusted JSON nests, checked before it is parsed: nlohmann's parser, dump and
// destructor recurse once per level, so a 1 MiB body of '[' would overflow a thread's stack.
#pragma once

#include <string_view>

namespace mm {

// Far deeper than any request, schema or tool call needs (OpenAI caps schemas at 10 levels).
constexpr int k_json_max_nesting = 128;

// Whether '[' and '{' outside strings nest at most `limit` deep in text. Linear; the text need not be valid.
bool json_nesting_within(std::string_view text, int limit = k_json_max_nesting);

}  // namespace mm
