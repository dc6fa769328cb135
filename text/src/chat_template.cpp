#include "text/chat_template.h"

namespace mm::text {
namespace {

constexpr const char* k_names[] = {"chatml", "llama2", "llama3", "mistral", "gemma", "phi3"};

bool known_role(const std::string& r) {
    return r == "system" || r == "developer" || r == "user" || r == "assistant" || r == "tool";
}

// Families without a system role fold the system text into the first user turn.
std::vector<chat_message> fold_system(const std::vector<chat_message>& in) {
    std::vector<chat_message> out;
    std::string system;
    for (const auto& m : in) {
        if (m.role == "system" || m.role == "developer") {
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

result<std::string> chat_render(chat_format f, const std::vector<chat_message>& messages, bool add_generation_prompt) {
    if (messages.empty()) return status(errc::invalid_argument, "messages must not be empty");
    for (size_t i = 0; i < messages.size(); ++i)
        if (!known_role(messages[i].role))
            return status(errc::invalid_argument, "messages[" + std::to_string(i) + "].role '" + messages[i].role +
                                                      "' is not one of system, developer, user, assistant, tool");
    std::string out;
    switch (f) {
        case chat_format::chatml:
            for (const auto& m : messages)
                out += "<|im_start|>" + (m.role == "developer" ? std::string("system") : m.role) + "\n" + m.content + "<|im_end|>\n";
            if (add_generation_prompt) out += "<|im_start|>assistant\n";
            break;
        case chat_format::llama3:
            for (const auto& m : messages)
                out += "<|start_header_id|>" + (m.role == "developer" ? std::string("system") : m.role == "tool" ? std::string("ipython") : m.role) +
                       "<|end_header_id|>\n\n" + m.content + "<|eot_id|>";
            if (add_generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
            break;
        case chat_format::phi3:
            for (const auto& m : messages)
                out += "<|" + (m.role == "developer" ? std::string("system") : m.role) + "|>\n" + m.content + "<|end|>\n";
            if (add_generation_prompt) out += "<|assistant|>\n";
            break;
        case chat_format::gemma:
            for (const auto& m : fold_system(messages))
                out += "<start_of_turn>" + (m.role == "assistant" ? std::string("model") : std::string("user")) + "\n" +
                       m.content + "<end_of_turn>\n";
            if (add_generation_prompt) out += "<start_of_turn>model\n";
            break;
        case chat_format::llama2: {
            // [INST] <<SYS>>\nsystem\n<</SYS>>\n\nuser [/INST] answer </s><s>[INST] user [/INST]
            std::string system;
            bool first_user = true;
            for (const auto& m : messages) {
                if (m.role == "system" || m.role == "developer") {
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
        case chat_format::mistral:
            for (const auto& m : fold_system(messages)) {
                if (m.role == "assistant") out += m.content + "</s>";
                else out += "[INST] " + m.content + " [/INST]";
            }
            break;
    }
    return out;
}

}  // namespace mm::text
