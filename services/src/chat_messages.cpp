#include "chat_messages.h"

#include <map>

namespace mm::services {
namespace {

using json = nlohmann::ordered_json;

status bad(const std::string& param, const std::string& message) {
    return status(errc::invalid_argument, "'" + param + "': " + message, param);
}

// The text of a content field: a string or text parts; absent or null is empty (allowed where `optional`).
status read_content(const json& m, const std::string& at, bool optional, std::string& out) {
    auto content = m.find("content");
    if (content == m.end() || content->is_null()) return optional ? ok_status() : bad(at + ".content", "required");
    if (content->is_string()) {
        out = content->get<std::string>();
        return ok_status();
    }
    if (!content->is_array()) return bad(at + ".content", "expected a string or an array of content parts");
    for (size_t j = 0; j < content->size(); ++j) {
        const auto& part = (*content)[j];
        const std::string pat = at + ".content[" + std::to_string(j) + "]";
        if (!part.is_object() || !part.contains("type") || !part["type"].is_string())
            return bad(pat, "expected a content part with a type");
        if (part["type"] != "text") return bad(pat + ".type", "only text parts are supported by this model");
        if (!part.contains("text") || !part["text"].is_string()) return bad(pat + ".text", "expected a string");
        out += part["text"].get<std::string>();
    }
    return ok_status();
}

}  // namespace

result<std::vector<text::chat_message>> chat_messages_read(const json& body) {
    auto it = body.find("messages");
    if (it == body.end() || !it->is_array() || it->empty()) return bad("messages", "expected a non-empty array of messages");
    std::vector<text::chat_message> out;
    std::map<std::string, std::string> call_names;  // tool_call_id -> function name, from earlier calls
    for (size_t i = 0; i < it->size(); ++i) {
        const auto& m = (*it)[i];
        const std::string at = "messages[" + std::to_string(i) + "]";
        if (!m.is_object()) return bad(at, "expected an object");
        auto role = m.find("role");
        if (role == m.end() || !role->is_string()) return bad(at + ".role", "expected a string");
        text::chat_message msg{role->get<std::string>(), ""};
        auto calls = m.find("tool_calls");
        const bool has_calls = msg.role == "assistant" && calls != m.end() && !calls->is_null();
        MM_TRY(read_content(m, at, /*optional=*/msg.role == "assistant", msg.content));
        if (has_calls) {
            if (!calls->is_array()) return bad(at + ".tool_calls", "expected an array");
            for (size_t j = 0; j < calls->size(); ++j) {
                const auto& c = (*calls)[j];
                const std::string cat = at + ".tool_calls[" + std::to_string(j) + "]";
                if (!c.is_object() || !c.contains("function") || !c["function"].is_object())
                    return bad(cat, "expected {\"id\", \"type\": \"function\", \"function\": {\"name\", \"arguments\"}}");
                const auto& fn = c["function"];
                if (!fn.contains("name") || !fn["name"].is_string()) return bad(cat + ".function.name", "expected a string");
                if (fn.contains("arguments") && !fn["arguments"].is_string())
                    return bad(cat + ".function.arguments", "expected a string of JSON");
                const std::string id = c.contains("id") && c["id"].is_string() ? c["id"].get<std::string>() : "";
                if (!id.empty()) call_names[id] = fn["name"];
                msg.tool_calls.push_back({id, fn["name"], fn.value("arguments", "{}")});
            }
        }
        if (msg.role == "tool") {
            if (m.contains("name") && m["name"].is_string()) msg.name = m["name"];
            if (auto id = m.find("tool_call_id"); id != m.end() && id->is_string()) {
                msg.tool_call_id = *id;
                if (auto found = call_names.find(msg.tool_call_id); found != call_names.end()) msg.name = found->second;
            }
        }
        out.push_back(std::move(msg));
    }
    return out;
}

}  // namespace mm::services
