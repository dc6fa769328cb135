// chat_template: each family's rendering of one conversation, spelled out as the family's published format,
// and recognition from fragments of the families' Jinja templates.
#include <gtest/gtest.h>

#include "text/chat_template.h"

namespace mm::text {
namespace {

const std::vector<chat_message> k_chat = {
    {"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello."}, {"user", "Name a color."}};

TEST(chat_template, every_family_renders_its_own_format) {
    struct row { chat_format f; std::string want; };
    const row rows[] = {
        {chat_format::chatml,
         "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello.<|im_end|>\n"
         "<|im_start|>user\nName a color.<|im_end|>\n<|im_start|>assistant\n"},
        {chat_format::llama3,
         "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
         "<|start_header_id|>assistant<|end_header_id|>\n\nHello.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n"
         "Name a color.<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"},
        {chat_format::phi3,
         "<|system|>\nBe brief.<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>\nHello.<|end|>\n<|user|>\nName a color.<|end|>\n<|assistant|>\n"},
        {chat_format::gemma,
         "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello.<end_of_turn>\n"
         "<start_of_turn>user\nName a color.<end_of_turn>\n<start_of_turn>model\n"},
        {chat_format::llama2,
         "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello. </s><s>[INST] Name a color. [/INST]"},
        {chat_format::mistral, "[INST] Be brief.\n\nHi [/INST]Hello.</s>[INST] Name a color. [/INST]"},
    };
    for (const auto& r : rows) {
        auto got = chat_render(r.f, k_chat, true);
        ASSERT_TRUE(got) << chat_format_name(r.f);
        EXPECT_EQ(*got, r.want) << chat_format_name(r.f);
    }
}

// A conversation with two parallel calls and their results, and one tool on offer.
const chat_tools k_tools = {{{"get_weather", "Current weather", R"({"type":"object","properties":{"city":{"type":"string"}}})"}}};
const std::vector<chat_message> k_tool_chat = {
    {"system", "Be brief."},
    {"user", "Weather in Paris and Rome?"},
    {"assistant", "", {{"call_0123456789abc", "get_weather", R"({"city":"Paris"})"}, {"call_x", "get_weather", "not json"}}},
    {"tool", "sunny", {}, "call_0123456789abc", "get_weather"},
    {"tool", R"({"temp":20})", {}, "call_x", "get_weather"},
};
// The tool as the families' templates print it (Jinja's tojson: Python's separators).
const std::string k_tool_json =
    R"({"type": "function", "function": {"name": "get_weather", "description": "Current weather", )"
    R"("parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}})";

std::string after(const std::string& s, const std::string& marker) {
    const size_t at = s.find(marker);
    return at == std::string::npos ? "<" + marker + " missing>" : s.substr(at);
}

TEST(chat_template, chatml_tools_calls_and_results_are_hermes_blocks) {
    auto got = chat_render(chat_format::chatml, k_tool_chat, true, &k_tools);
    ASSERT_TRUE(got);
    EXPECT_TRUE(got->starts_with("<|im_start|>system\nBe brief.\n\n# Tools\n\n")) << *got;
    EXPECT_NE(got->find("<tools>\n" + k_tool_json + "\n</tools>\n\n"), std::string::npos) << *got;
    EXPECT_NE(got->find("one block for each call:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": "
                        "<args-json-object>}\n</tool_call><|im_end|>\n<|im_start|>user\n"),
              std::string::npos) << *got;
    EXPECT_EQ(after(*got, "<|im_start|>user\n"),
              "<|im_start|>user\nWeather in Paris and Rome?<|im_end|>\n"
              "<|im_start|>assistant\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n"
              "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {}}\n</tool_call><|im_end|>\n"
              "<|im_start|>user\n<tool_response>\nsunny\n</tool_response>\n<tool_response>\n{\"temp\":20}\n</tool_response><|im_end|>\n"
              "<|im_start|>assistant\n");
    const chat_tools one_at_a_time{k_tools.list, /*parallel=*/false};
    auto single = chat_render(chat_format::chatml, {{"user", "x"}}, true, &one_at_a_time);
    ASSERT_TRUE(single);
    EXPECT_NE(single->find("call one function at a time"), std::string::npos) << *single;
    EXPECT_TRUE(single->starts_with("<|im_start|>system\n# Tools\n\n")) << "no system message: the tools turn alone";
}

TEST(chat_template, llama3_tools_lead_the_first_user_turn_and_results_come_from_ipython) {
    auto got = chat_render(chat_format::llama3, k_tool_chat, true, &k_tools);
    ASSERT_TRUE(got);
    const std::string tool4 =  // tojson(indent=4)
        "{\n    \"type\": \"function\",\n    \"function\": {\n        \"name\": \"get_weather\",\n"
        "        \"description\": \"Current weather\",\n        \"parameters\": {\n            \"type\": \"object\",\n"
        "            \"properties\": {\n                \"city\": {\n                    \"type\": \"string\"\n"
        "                }\n            }\n        }\n    }\n}";
    EXPECT_TRUE(got->starts_with("<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
                                 "<|start_header_id|>user<|end_header_id|>\n\n")) << *got;
    EXPECT_NE(got->find("\"parameters\": <an object of its arguments>}"), std::string::npos) << *got;
    EXPECT_EQ(after(*got, "\n\n" + tool4),
              "\n\n" + tool4 + "\n\nWeather in Paris and Rome?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
              "[{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}, {\"name\": \"get_weather\", \"parameters\": {}}]"
              "<|eot_id|><|start_header_id|>ipython<|end_header_id|>\n\nsunny<|eot_id|>"
              "<|start_header_id|>ipython<|end_header_id|>\n\n{\"temp\":20}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
}

TEST(chat_template, mistral_tools_calls_and_results_carry_its_markers_and_nine_character_ids) {
    auto got = chat_render(chat_format::mistral, k_tool_chat, true, &k_tools);
    ASSERT_TRUE(got);
    EXPECT_EQ(*got, "[AVAILABLE_TOOLS] [" + k_tool_json + "][/AVAILABLE_TOOLS][INST] Be brief.\n\nWeather in Paris and Rome? [/INST]"
                    "[TOOL_CALLS] [{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}, \"id\": \"456789abc\"}, "
                    "{\"name\": \"get_weather\", \"arguments\": {}, \"id\": \"0000callx\"}]</s>"
                    "[TOOL_RESULTS] {\"content\": \"sunny\", \"call_id\": \"456789abc\"}[/TOOL_RESULTS]"
                    "[TOOL_RESULTS] {\"content\": {\"temp\": 20}, \"call_id\": \"0000callx\"}[/TOOL_RESULTS]");
    // A result that is JSON nested past the bound is text: rendering it as JSON would recurse per level.
    const std::string deep = std::string(150000, '[') + std::string(150000, ']');
    auto deep_result = chat_render(chat_format::mistral, {{"user", "a"}, {"tool", deep, {}, "c1", "f"}}, true);
    ASSERT_TRUE(deep_result);
    EXPECT_NE(deep_result->find("[TOOL_RESULTS] {\"content\": \"[[[["), std::string::npos);
    // The tools go before the last user turn.
    auto later = chat_render(chat_format::mistral, {{"user", "a"}, {"assistant", "b"}, {"user", "c"}}, true, &k_tools);
    ASSERT_TRUE(later);
    EXPECT_EQ(*later, "[INST] a [/INST]b</s>[AVAILABLE_TOOLS] [" + k_tool_json + "][/AVAILABLE_TOOLS][INST] c [/INST]");
}

TEST(chat_template, families_without_tool_syntax_get_the_tools_in_system_text_and_calls_as_json) {
    auto got = chat_render(chat_format::gemma, k_tool_chat, true, &k_tools);
    ASSERT_TRUE(got);
    EXPECT_TRUE(got->starts_with("<start_of_turn>user\nBe brief.\n\nYou can call these functions.")) << *got;
    EXPECT_NE(got->find("To call several at once, answer with a JSON array of such objects.\nFunctions: "
                        R"([{"name":"get_weather","description":"Current weather","parameters":)"),
              std::string::npos) << *got;
    EXPECT_EQ(after(*got, "\n\nWeather"),
              "\n\nWeather in Paris and Rome?<end_of_turn>\n<start_of_turn>model\n"
              R"([{"name":"get_weather","arguments":{"city":"Paris"}},{"name":"get_weather","arguments":{}}])"
              "<end_of_turn>\n<start_of_turn>user\n"
              R"({"name":"get_weather","content":"sunny"})"
              "<end_of_turn>\n<start_of_turn>user\n"
              R"({"name":"get_weather","content":"{\"temp\":20}"})"
              "<end_of_turn>\n<start_of_turn>model\n");
    // One call goes back as one object, and no tools on offer means no description.
    auto one = chat_render(chat_format::phi3, {{"user", "x"}, {"assistant", "", {{"c1", "get_weather", R"({"city":"Oslo"})"}}}}, false);
    ASSERT_TRUE(one);
    EXPECT_EQ(*one, "<|user|>\nx<|end|>\n<|assistant|>\n" R"({"name":"get_weather","arguments":{"city":"Oslo"}})" "<|end|>\n");
}

TEST(chat_template, families_are_recognised_from_their_templates) {
    EXPECT_EQ(chat_format_detect("{% for message in messages %}{{'<|im_start|>' + message['role']"), chat_format::chatml);
    EXPECT_EQ(chat_format_detect("{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' }}"), chat_format::llama3);
    EXPECT_EQ(chat_format_detect("{{ '<start_of_turn>' + role + '\n' }}"), chat_format::gemma);
    EXPECT_EQ(chat_format_detect("{{'<|user|>' + '\n' + message['content'] + '<|end|>'}}"), chat_format::phi3);
    EXPECT_EQ(chat_format_detect("{{ bos_token + '[INST] ' + '<<SYS>>\\n' }}"), chat_format::llama2);
    EXPECT_EQ(chat_format_detect("{{ '[INST] ' + message['content'] + ' [/INST]' }}"), chat_format::mistral);
    EXPECT_EQ(chat_format_detect("{{ message.content }}"), std::nullopt);
}

TEST(chat_template, bad_conversations_are_refused) {
    EXPECT_EQ(chat_render(chat_format::chatml, {}, true).error().code(), errc::invalid_argument);
    EXPECT_EQ(chat_render(chat_format::chatml, {{"wizard", "x"}}, true).error().code(), errc::invalid_argument);
    EXPECT_EQ(chat_format_parse("jinja").error().code(), errc::invalid_argument);
    EXPECT_EQ(*chat_format_parse("gemma"), chat_format::gemma);
}

}  // namespace
}  // namespace mm::text
