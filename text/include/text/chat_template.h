// chat_template: turns chat messages into the prompt text a chat model was trained on. The common families
// are recognised from the model's tokenizer.chat_template text and rendered natively (no Jinja engine):
// ChatML, Llama 2, Llama 3, Mistral, Gemma, Phi-3; a model without a known template uses the configured
// fallback. Rendered text carries the family's control tokens as text (tokenize it with special-token
// parsing on) and no BOS (the tokenizer adds it).
// Tools, calls and their results go in each family's own syntax where it has one: ChatML as Hermes and
// Qwen write it (<tools>, <tool_call>, <tool_response>), Llama 3.1's (functions in the first user turn,
// {"name", "parameters"} calls, ipython results) and Mistral's ([AVAILABLE_TOOLS], [TOOL_CALLS],
// [TOOL_RESULTS]); Llama 2, Gemma and Phi-3 have none and get the tools described in the system text.
// Thread safety: pure functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace mm::text {

struct chat_tool_call {
    std::string id;         // the client's id for it
    std::string name;
    std::string arguments;  // a JSON object, serialized
};

struct chat_message {
    std::string role;     // system, developer, user, assistant, tool
    std::string content;  // text (image parts are refused before this)
    std::vector<chat_tool_call> tool_calls{};  // an assistant's calls
    std::string tool_call_id{}, name{};        // a tool result: the call it answers, and that call's function
};

struct chat_tool {
    std::string name, description;
    std::string parameters;  // a JSON Schema, serialized
};

struct chat_tools {
    std::vector<chat_tool> list;
    bool parallel = true;  // the model may answer with several calls at once
};

enum class chat_format { chatml, llama2, llama3, mistral, gemma, phi3 };
const char* chat_format_name(chat_format f);
result<chat_format> chat_format_parse(std::string_view name);

// The family of a tokenizer.chat_template, recognised by its control-token spellings; nullopt if unknown.
std::optional<chat_format> chat_format_detect(std::string_view jinja);

// The prompt for messages, and the tools the model may call (none when null or empty), ending with the
// opening of the assistant's turn when add_generation_prompt. invalid_argument for an unknown role or an
// empty conversation.
result<std::string> chat_render(chat_format f, const std::vector<chat_message>& messages, bool add_generation_prompt,
                                const chat_tools* tools = nullptr);

// The text that ends an assistant turn in this format (a stop string beside the model's end-of-generation).
std::string_view chat_turn_end(chat_format f);

}  // namespace mm::text
