// chat_messages: a chat request's "messages" as the text stage renders them (text::chat_render puts tool
// turns in the model family's own syntax): an assistant's calls with their ids, names and arguments; a
// tool's result with the call it answers and that call's function name, found from its tool_call_id among
// the calls before it (or its own "name").
#pragma once

#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "text/chat_template.h"

namespace mm::services {

// Errors name the field at fault (param), e.g. messages[2].content.
result<std::vector<text::chat_message>> chat_messages_read(const nlohmann::ordered_json& body);

}  // namespace mm::services
