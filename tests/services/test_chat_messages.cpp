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
    EXPECT_EQ((*m)[1].content, "Checking both.");
    ASSERT_EQ((*m)[1].tool_calls.size(), 2u);
    EXPECT_EQ((*m)[1].tool_calls[0].id, "call_a");
    EXPECT_EQ((*m)[1].tool_calls[0].name, "get_weather");
    EXPECT_EQ((*m)[1].tool_calls[0].arguments, R"({"city":"Paris"})");
    EXPECT_EQ((*m)[1].tool_calls[1].name, "get_time");
    EXPECT_EQ((*m)[2].content, "12:00");
    EXPECT_EQ((*m)[2].tool_call_id, "call_b");
    EXPECT_EQ((*m)[2].name, "get_time") << "a result is named by the call it answers";
    EXPECT_EQ((*m)[3].content, "sunny");
    EXPECT_EQ((*m)[3].name, "get_weather");
    EXPECT_EQ((*m)[4].name, "legacy");
    EXPECT_TRUE((*m)[4].tool_call_id.empty());
    EXPECT_TRUE((*m)[5].content.empty());
    ASSERT_EQ((*m)[5].tool_calls.size(), 1u);
    EXPECT_EQ((*m)[5].tool_calls[0].arguments, "not json") << "the template decides what unparseable arguments become";
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
