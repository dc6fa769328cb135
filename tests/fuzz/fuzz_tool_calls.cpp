// libFuzzer target: the calls read out of a model's answer (text::parse_tool_calls), which a prompt can steer.
// Input: the answer's bytes. Calls that are read name a known tool with object arguments, and the streaming
// check never takes an answer that reads as calls for text, at any point of it.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include <nlohmann/json.hpp>

#include "text/tool_calls.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view answer(reinterpret_cast<const char*>(data), size);
    static const std::vector<std::string> names = {"get_weather", "a"};
    for (bool parallel : {false, true}) {
        const auto calls = mm::text::parse_tool_calls(answer, names, parallel);
        if (!calls) continue;
        if (calls->empty() || (!parallel && calls->size() > 1)) __builtin_trap();
        for (const auto& c : *calls) {
            if (c.name != names[0] && c.name != names[1]) __builtin_trap();
            if (!nlohmann::json::parse(c.arguments, nullptr, false).is_object()) __builtin_trap();
        }
        const size_t first = answer.find_first_not_of(" \n\t\r");
        const std::string_view visible = answer.substr(first == std::string_view::npos ? answer.size() : first);
        for (size_t n = 0; n <= visible.size(); ++n)
            if (mm::text::classify_answer_start(visible.substr(0, n)) == mm::text::answer_start::text) __builtin_trap();
    }
    return 0;
}
