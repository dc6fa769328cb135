#include "text/chat_template.h"

#include <algorithm>
#include <cctype>

#include <nlohmann/json.hpp>

#include "common/json_nesting.h"

namespace mm::text {
namespace {

constexpr const char* k_names[] = {"chatml", "llama2", "llama3", "mistral", "gemma", "phi3"};

using json = nlohmann::ordered_json;  // keeps the client's key order

bool known_role(const std::string& r) {
    return r == "system" || r == "developer" || r == "user" || r == "assistant" || r == "tool";
}

bool is_system(const chat_message& m) { return m.role == "system" || m.role == "developer"; }

// JSON as Python's json.dumps spells it (", " and ": "): the families' templates write tools and calls
// with Jinja's tojson, so this is the spelling their training prompts carry.
std::string spaced(const json& j) {
    std::string out;
    if (j.is_object()) {
        out += '{';
        for (auto it = j.begin(); it != j.end(); ++it)
            out += (it == j.begin() ? "" : ", ") + json(it.key()).dump() + ": " + spaced(it.value());
        return out + '}';
    }
    if (j.is_array()) {
        out += '[';
        for (size_t i = 0; i < j.size(); ++i) out += (i ? ", " : "") + spaced(j[i]);
        return out + ']';
    }
    return j.dump();
}

// Client text read as JSON: discarded when it is not JSON or nests past the bound.
json parsed(const std::string& text) {
    return json_nesting_within(text) ? json::parse(text, nullptr, false) : json(json::value_t::discarded);
}

// A serialized object as a value; anything else (or unparseable) is an empty object.
json object_of(const std::string& text) {
    json j = parsed(text);
    return j.is_object() ? j : json::object();
}

// An assistant turn's calls as {"name", <args_key>: arguments} objects, in order.
json calls_of(const chat_message& m, const char* args_key) {
    json calls = json::array();
    for (const auto& c : m.tool_calls) calls.push_back({{"name", c.name}, {args_key, object_of(c.arguments)}});
    return calls;
}

json tool_object(const chat_tool& t) {
    json fn = {{"name", t.name}};
    if (!t.description.empty()) fn["description"] = t.description;
    fn["parameters"] = object_of(t.parameters);
    return {{"type", "function"}, {"function", std::move(fn)}};
}

bool has_tools(const chat_tools* tools) { return tools && !tools->list.empty(); }

// Families with no tool syntax of their own: the tools are described in the system text, calls go back
// as the JSON the model is told to write, results as {"name", "content"}.
std::vector<chat_message> plain_tools(const std::vector<chat_message>& in, const chat_tools* tools) {
    std::vector<chat_message> out;
    for (const auto& m : in) {
        chat_message p{m.role, m.content};
        if (!m.tool_calls.empty()) {
            const json calls = calls_of(m, "arguments");
            if (!p.content.empty()) p.content += '\n';
            p.content += (calls.size() == 1 ? calls[0] : calls).dump();
        }
        if (m.role == "tool" && !m.name.empty()) p.content = json{{"name", m.name}, {"content", m.content}}.dump();
        out.push_back(std::move(p));
    }
    if (!has_tools(tools)) return out;
    json described = json::array();
    for (const auto& t : tools->list)
        described.push_back({{"name", t.name}, {"description", t.description}, {"parameters", object_of(t.parameters)}});
    const std::string how =
        "You can call these functions. To call one, answer with only a JSON object {\"name\": <function name>, "
        "\"arguments\": <an object matching its parameters>}." +
        std::string(tools->parallel ? " To call several at once, answer with a JSON array of such objects." : "") +
        "\nFunctions: " + described.dump();
    if (!out.empty() && out.front().role == "system") out.front().content += "\n\n" + how;
    else out.insert(out.begin(), chat_message{"system", how});
    return out;
}

// Families without a system role fold the system text into the first user turn.
std::vector<chat_message> fold_system(const std::vector<chat_message>& in) {
    std::vector<chat_message> out;
    std::string system;
    for (const auto& m : in) {
        if (is_system(m)) {
            system += (system.empty() ? "" : "\n\n") + m.content;
            continue;
        }
        out.push_back(m);
        if (!system.empty() && m.role == "user") {
            out.back().content = system + "\n\n" + m.content;
            system.clear();
        }
    }
    if (!system.empty()) out.insert(out.begin(), chat_message{"user", system});
    return out;
}

// ChatML as Hermes and Qwen use it: the tools' signatures in the system turn inside <tools>, each call in
// its own <tool_call> block, a run of tool results one user turn of <tool_response> blocks.
std::string render_chatml(const std::vector<chat_message>& messages, const chat_tools* tools) {
    std::string out;
    size_t i = 0;
    if (has_tools(tools)) {
        out += "<|im_start|>system\n";
        if (is_system(messages[0])) out += messages[i++].content + "\n\n";
        out += "# Tools\n\nThese functions are available to you; their signatures are inside <tools></tools>:\n<tools>\n";
        for (const auto& t : tools->list) out += spaced(tool_object(t)) + "\n";
        out += "</tools>\n\nTo call a function, answer with a JSON object of its name and arguments inside "
               "<tool_call></tool_call> tags";
        out += tools->parallel ? ", one block for each call:" : "; call one function at a time:";
        out += "\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n";
    }
    for (; i < messages.size(); ++i) {
        const auto& m = messages[i];
        if (m.role == "tool") {
            if (i == 0 || messages[i - 1].role != "tool") out += "<|im_start|>user";
            out += "\n<tool_response>\n" + m.content + "\n</tool_response>";
            if (i + 1 == messages.size() || messages[i + 1].role != "tool") out += "<|im_end|>\n";
            continue;
        }
        if (m.role == "assistant" && !m.tool_calls.empty()) {
            out += "<|im_start|>assistant";
            if (!m.content.empty()) out += "\n" + m.content;
            for (const auto& call : calls_of(m, "arguments")) out += "\n<tool_call>\n" + spaced(call) + "\n</tool_call>";
            out += "<|im_end|>\n";
            continue;
        }
        out += "<|im_start|>" + (is_system(m) ? std::string("system") : m.role) + "\n" + m.content + "<|im_end|>\n";
    }
    return out;
}

// Llama 3.1: the functions lead the first user turn, a call is {"name", "parameters"}, results come from
// the ipython role.
std::string render_llama3(std::vector<chat_message> messages, const chat_tools* tools) {
    if (has_tools(tools)) {
        std::string how = std::string("You can call the functions below. To call one, answer with only a JSON object "
                                      "{\"name\": <function name>, \"parameters\": <an object of its arguments>}") +
                          (tools->parallel ? "; to call several at once, a JSON array of such objects." : ".") + "\n\n";
        for (const auto& t : tools->list) how += tool_object(t).dump(4) + "\n\n";
        auto user = std::find_if(messages.begin(), messages.end(), [](const chat_message& m) { return m.role == "user"; });
        if (user != messages.end()) user->content = how + user->content;
        else messages.insert(messages.begin(), chat_message{"system", how});
    }
    std::string out;
    for (const auto& m : messages) {
        const std::string role = is_system(m) ? "system" : m.role == "tool" ? "ipython" : m.role;
        std::string body = m.content;
        if (!m.tool_calls.empty()) {
            const json calls = calls_of(m, "parameters");
            if (!body.empty()) body += '\n';
            body += spaced(calls.size() == 1 ? calls[0] : calls);
        }
        out += "<|start_header_id|>" + role + "<|end_header_id|>\n\n" + body + "<|eot_id|>";
    }
    return out;
}

// Mistral's calls and results carry ids of nine letters and digits: the client's id, cut or padded to that.
std::string mistral_id(std::string_view id) {
    std::string a;
    for (char c : id)
        if (std::isalnum(static_cast<unsigned char>(c))) a += c;
    if (a.size() > 9) a = a.substr(a.size() - 9);
    return std::string(9 - a.size(), '0') + a;
}

// Mistral: the tools in [AVAILABLE_TOOLS] before the last user turn, calls after [TOOL_CALLS], each result
// in [TOOL_RESULTS] with its call's id.
std::string render_mistral(const std::vector<chat_message>& in, const chat_tools* tools) {
    const std::vector<chat_message> messages = fold_system(in);
    size_t last_user = messages.size();
    for (size_t i = 0; i < messages.size(); ++i)
        if (messages[i].role == "user") last_user = i;
    std::string out;
    for (size_t i = 0; i < messages.size(); ++i) {
        const auto& m = messages[i];
        if (i == last_user && has_tools(tools)) {
            json list = json::array();
            for (const auto& t : tools->list) list.push_back(tool_object(t));
            out += "[AVAILABLE_TOOLS] " + spaced(list) + "[/AVAILABLE_TOOLS]";
        }
        if (m.role == "assistant") {
            out += m.content;
            if (!m.tool_calls.empty()) {
                json calls = calls_of(m, "arguments");
                for (size_t c = 0; c < calls.size(); ++c) calls[c]["id"] = mistral_id(m.tool_calls[c].id);
                out += "[TOOL_CALLS] " + spaced(calls);
            }
            out += "</s>";
        } else if (m.role == "tool") {
            json content = parsed(m.content);
            if (!content.is_object() && !content.is_array()) content = m.content;
            out += "[TOOL_RESULTS] " + spaced(json{{"content", content}, {"call_id", mistral_id(m.tool_call_id)}}) +
                   "[/TOOL_RESULTS]";
        } else {
            out += "[INST] " + m.content + " [/INST]";
        }
    }
    return out;
}

}  // namespace

const char* chat_format_name(chat_format f) { return k_names[static_cast<int>(f)]; }

result<chat_format> chat_format_parse(std::string_view name) {
    for (int i = 0; i < 6; ++i)
        if (name == k_names[i]) return static_cast<chat_format>(i);
    return status(errc::invalid_argument,
                  "unknown chat template '" + std::string(name) + "' (chatml, llama2, llama3, mistral, gemma, phi3)");
}

std::optional<chat_format> chat_format_detect(std::string_view t) {
    auto has = [&](std::string_view s) { return t.find(s) != std::string_view::npos; };
    if (has("<|im_start|>")) return chat_format::chatml;
    if (has("<|start_header_id|>")) return chat_format::llama3;
    if (has("<start_of_turn>")) return chat_format::gemma;
    if (has("<|user|>") && has("<|end|>")) return chat_format::phi3;
    if (has("[INST]") && has("<<SYS>>")) return chat_format::llama2;
    if (has("[INST]")) return chat_format::mistral;
    return std::nullopt;
}

std::string_view chat_turn_end(chat_format f) {
    switch (f) {
        case chat_format::chatml: return "<|im_end|>";
        case chat_format::llama2: return "</s>";
        case chat_format::llama3: return "<|eot_id|>";
        case chat_format::mistral: return "</s>";
        case chat_format::gemma: return "<end_of_turn>";
        case chat_format::phi3: return "<|end|>";
    }
    return {};
}

result<std::string> chat_render(chat_format f, const std::vector<chat_message>& messages, bool add_generation_prompt,
                                const chat_tools* tools) {
    if (messages.empty()) return status(errc::invalid_argument, "messages must not be empty");
    for (size_t i = 0; i < messages.size(); ++i)
        if (!known_role(messages[i].role))
            return status(errc::invalid_argument, "messages[" + std::to_string(i) + "].role '" + messages[i].role +
                                                      "' is not one of system, developer, user, assistant, tool");
    std::string out;
    switch (f) {
        case chat_format::chatml:
            out = render_chatml(messages, tools);
            if (add_generation_prompt) out += "<|im_start|>assistant\n";
            break;
        case chat_format::llama3:
            out = render_llama3(messages, tools);
            if (add_generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
            break;
        case chat_format::mistral:
            out = render_mistral(messages, tools);
            break;
        case chat_format::phi3:
            for (const auto& m : plain_tools(messages, tools))
                out += "<|" + (is_system(m) ? std::string("system") : m.role) + "|>\n" + m.content + "<|end|>\n";
            if (add_generation_prompt) out += "<|assistant|>\n";
            break;
        case chat_format::gemma:
            for (const auto& m : fold_system(plain_tools(messages, tools)))
                out += "<start_of_turn>" + (m.role == "assistant" ? std::string("model") : std::string("user")) + "\n" +
                       m.content + "<end_of_turn>\n";
            if (add_generation_prompt) out += "<start_of_turn>model\n";
            break;
        case chat_format::llama2: {
            // [INST] <<SYS>>\nsystem\n<</SYS>>\n\nuser [/INST] answer </s><s>[INST] user [/INST]
            std::string system;
            bool first_user = true;
            for (const auto& m : plain_tools(messages, tools)) {
                if (is_system(m)) {
                    system += m.content;
                } else if (m.role == "assistant") {
                    out += " " + m.content + " </s>";
                } else {
                    if (!first_user) out += "<s>";
                    out += "[INST] ";
                    if (!system.empty()) out += "<<SYS>>\n" + system + "\n<</SYS>>\n\n", system.clear();
                    out += m.content + " [/INST]";
                    first_user = false;
                }
            }
            break;
        }
    }
    return out;
}

}  // namespace mm::text
