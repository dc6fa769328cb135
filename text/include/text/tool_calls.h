// tool_calls: reads the function calls out of a model's answer. The text stage asks for one call as a JSON
// object {"name", "arguments"} or several as an array of them; models trained on a family's own syntax
// may instead wrap each call in <tool_call>...</tool_call> (Hermes, Qwen), name the arguments
// "parameters" (Llama 3) or lead with [TOOL_CALLS] (Mistral), and those are read too. An answer is calls only when nothing else is in it.
// Thread safety: pure functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mm::text {

struct tool_call {
    std::string name;
    std::string arguments;  // a JSON object, serialized
};

// The calls an answer makes, each naming one of `names` with object arguments; nullopt when the answer is
// anything else (then it is text). Several calls only when `parallel`; Mistral's [TOOL_CALLS] marker may
// lead, and an array of one call is one call.
std::optional<std::vector<tool_call>> parse_tool_calls(std::string_view answer, const std::vector<std::string>& names,
                                                       bool parallel);

// For streaming: whether an answer that begins with `visible` (its text from the first non-blank byte)
// may be calls ('{', "<tool_call>", "[TOOL_CALLS]", or '[' then '{'), must be text, or cannot be told yet.
enum class answer_start { undecided, calls, text };
answer_start classify_answer_start(std::string_view visible);

}  // namespace mm::text
