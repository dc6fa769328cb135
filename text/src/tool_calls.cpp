#include "text/tool_calls.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "common/json_nesting.h"

namespace mm::text {
namespace {

using json = nlohmann::ordered_json;  // keeps the arguments' keys in the order the model wrote them

constexpr std::string_view k_open = "<tool_call>", k_close = "</tool_call>";
constexpr std::string_view k_mistral = "[TOOL_CALLS]";  // Mistral's marker, when its vocabulary spells it out

std::string_view trim(std::string_view s) {
    const auto blank = [](char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; };
    while (!s.empty() && blank(s.front())) s.remove_prefix(1);
    while (!s.empty() && blank(s.back())) s.remove_suffix(1);
    return s;
}

// One call object: a known name, and arguments (or Llama 3's "parameters") that are an object, or a
// string holding one.
std::optional<tool_call> one_call(const json& c, const std::vector<std::string>& names) {
    if (!c.is_object() || !c.contains("name") || !c["name"].is_string()) return std::nullopt;
    const std::string name = c["name"];
    if (std::find(names.begin(), names.end(), name) == names.end()) return std::nullopt;
    const char* key = c.contains("arguments") ? "arguments" : c.contains("parameters") ? "parameters" : nullptr;
    if (!key) return std::nullopt;
    json args = c[key];
    if (args.is_string())
        args = json_nesting_within(args.get_ref<const std::string&>()) ? json::parse(args.get<std::string>(), nullptr, false) : json();
    if (!args.is_object()) return std::nullopt;
    return tool_call{name, args.dump()};
}

// A call object or a non-empty array of them (of one, unless parallel), as one JSON text.
bool add_json(std::string_view text, const std::vector<std::string>& names, bool parallel, std::vector<tool_call>& out) {
    if (!json_nesting_within(text)) return false;
    const json doc = json::parse(text, nullptr, false);
    if (doc.is_discarded()) return false;
    if (doc.is_array()) {
        if (doc.empty() || (!parallel && doc.size() > 1)) return false;
        for (const auto& c : doc) {
            auto call = one_call(c, names);
            if (!call) return false;
            out.push_back(std::move(*call));
        }
        return true;
    }
    auto call = one_call(doc, names);
    if (!call) return false;
    out.push_back(std::move(*call));
    return true;
}

}  // namespace

std::optional<std::vector<tool_call>> parse_tool_calls(std::string_view answer, const std::vector<std::string>& names,
                                                       bool parallel) {
    std::string_view rest = trim(answer);
    if (rest.starts_with(k_mistral)) rest = trim(rest.substr(k_mistral.size()));
    std::vector<tool_call> out;
    if (!rest.starts_with(k_open)) {
        if (!add_json(rest, names, parallel, out)) return std::nullopt;
        return out;
    }
    // <tool_call> blocks, blank between them; the last may go unclosed (the answer ended at its JSON).
    while (!rest.empty()) {
        if (!rest.starts_with(k_open)) return std::nullopt;
        rest.remove_prefix(k_open.size());
        const size_t end = rest.find(k_close);
        if (!add_json(trim(rest.substr(0, end)), names, parallel, out)) return std::nullopt;
        rest = end == std::string_view::npos ? std::string_view() : trim(rest.substr(end + k_close.size()));
    }
    if (out.size() > 1 && !parallel) return std::nullopt;
    return out;
}

answer_start classify_answer_start(std::string_view visible) {
    if (visible.empty()) return answer_start::undecided;
    if (visible.front() == '{') return answer_start::calls;
    if (visible.starts_with(k_mistral)) return answer_start::calls;
    if (k_mistral.starts_with(visible)) return answer_start::undecided;  // "[TOOL" so far
    if (visible.front() == '[') {  // an array of calls opens with '[' then '{'; "[1]" or "[link](...)" is text
        const size_t next = visible.find_first_not_of(" \n\t\r", 1);
        if (next == std::string_view::npos) return answer_start::undecided;
        return visible[next] == '{' ? answer_start::calls : answer_start::text;
    }
    if (visible.starts_with(k_open)) return answer_start::calls;
    if (k_open.starts_with(visible)) return answer_start::undecided;  // "<tool" so far
    return answer_start::text;
}

}  // namespace mm::text
