// chat_messages_read: a conversation with tool turns reaches the template with every call and result in it,
// each tool result tied to its call's name; bad messages name their field.
#include <gtest/gtest.h>

#include "chat_messages.h"

namespace mm::services {
namespace {

using json = nlohmann::ordered_json;

TEST(chat_messages, tool_turns_keep_every_call_and_name_each_result) {
    const json body = json::parse(R"({"messages": [
        {"role": "user", "content": "Weather in Paris and the time in UTC?"},
        {"role": "assistant", "content": "Checking both.", "tool_calls": [
            {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
            {"id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": "{\"zone\":\"UTC\"}"}}]},
        {"role": "tool", "tool_call_id": "call_b", "content": "12:00"},
        {"role": "tool", "tool_call_id": "call_a", "content": [{"type": "text", "text": "sunny"}]},
        {"role": "tool", "name": "legacy", "content": "named by itself"},
        {"role": "assistant", "content": null, "tool_calls": [
            {"id": "call_c", "type": "function", "function": {"name": "get_time", "arguments": "not json"}}]}
    ]})");
    auto m = chat_messages_read(body);
    ASSERT_TRUE(m) << m.error().to_string();
    ASSERT_EQ(m->size(), 6u);
    EXPECT_EQ((*m)[1].role, "assistant");
    EXPECT_EQ((*m)[1].content,
              "Checking both.\n"
              R"([{"name":"get_weather","arguments":{"city":"Paris"}},{"name":"get_time","arguments":{"zone":"UTC"}}])")
        << "several calls are one array, as the model is told to write them";
    EXPECT_EQ((*m)[2].content, R"({"name":"get_time","content":"12:00"})");
    EXPECT_EQ((*m)[3].content, R"({"name":"get_weather","content":"sunny"})");
    EXPECT_EQ((*m)[4].content, R"({"name":"legacy","content":"named by itself"})");
    EXPECT_EQ((*m)[5].content, R"({"name":"get_time","arguments":{}})") << "unparseable arguments go back empty";
}

TEST(chat_messages, bad_messages_name_their_field) {
    struct row { const char* body; const char* param; };
    const row rows[] = {
        {R"({"messages": []})", "messages"},
        {R"({"messages": [3]})", "messages[0]"},
        {R"({"messages": [{"content": "x"}]})", "messages[0].role"},
        {R"({"messages": [{"role": "user"}]})", "messages[0].content"},
        {R"({"messages": [{"role": "user", "content": 5}]})", "messages[0].content"},
        {R"({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})", "messages[0].content[0].type"},
        {R"({"messages": [{"role": "assistant", "tool_calls": {}}]})", "messages[0].tool_calls"},
        {R"({"messages": [{"role": "assistant", "tool_calls": [{"function": {"arguments": "{}"}}]}]})",
         "messages[0].tool_calls[0].function.name"},
        {R"({"messages": [{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": {}}}]}]})",
         "messages[0].tool_calls[0].function.arguments"},
    };
    for (const auto& r : rows) {
        auto m = chat_messages_read(json::parse(r.body));
        ASSERT_FALSE(m) << r.body;
        EXPECT_EQ(m.error().code(), errc::invalid_argument) << r.body;
        EXPECT_EQ(m.error().param(), r.param) << r.body << ": " << m.error().message();
    }
}

}  // namespace
}  // namespace mm::services
