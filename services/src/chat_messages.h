// chat_messages: a chat request's "messages" as the text stage renders them. Tool turns go back to the
// model in the shape it writes and reads them: an assistant's calls as {"name", "arguments"} objects, one
// per line after any text it said; a tool's result as {"name", "content"}, the name found from its
// tool_call_id among the calls before it (or its own "name").
#pragma once

#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "text/chat_template.h"

namespace mm::services {

// Errors name the field at fault (param), e.g. messages[2].content.
result<std::vector<text::chat_message>> chat_messages_read(const nlohmann::ordered_json& body);

}  // namespace mm::services
