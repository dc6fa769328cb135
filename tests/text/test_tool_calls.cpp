// tool_calls: the calls read out of an answer in the text stage's own JSON form and in the family syntaxes
// models are trained on; anything else is text.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "text/tool_calls.h"

namespace mm::text {
namespace {

const std::vector<std::string> k_tools = {"get_weather", "get_time"};

TEST(tool_calls, each_form_reads_as_the_same_calls) {
    struct row { const char* answer; std::vector<std::string> names; std::vector<std::string> args; };
    const row rows[] = {
        {R"({"name":"get_weather","arguments":{"city":"Paris"}})", {"get_weather"}, {R"({"city":"Paris"})"}},
        {" \n[{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Paris\"}},{\"name\":\"get_time\",\"arguments\":{}}]\n",
         {"get_weather", "get_time"}, {R"({"city":"Paris"})", "{}"}},
        // Llama 3 names them "parameters"; some models send the arguments as a string of JSON.
        {R"({"name":"get_time","parameters":{"zone":"UTC"}})", {"get_time"}, {R"({"zone":"UTC"})"}},
        {R"({"name":"get_time","arguments":"{\"zone\":\"UTC\"}"})", {"get_time"}, {R"({"zone":"UTC"})"}},
        // Hermes / Qwen: one block per call, the last one possibly unclosed.
        {"<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Rome\"}}\n</tool_call>", {"get_weather"},
         {R"({"city":"Rome"})"}},
        {"<tool_call>{\"name\":\"get_weather\",\"arguments\":{\"b\":1,\"a\":2}}</tool_call>\n<tool_call>\n"
         "{\"name\":\"get_time\",\"arguments\":{}}",
         {"get_weather", "get_time"}, {R"({"b":1,"a":2})", "{}"}},
        // Mistral: its marker, then an array of calls with ids.
        {"[TOOL_CALLS] [{\"name\": \"get_time\", \"arguments\": {\"zone\": \"UTC\"}, \"id\": \"a1b2c3d4e\"}]", {"get_time"},
         {R"({"zone":"UTC"})"}},
    };
    for (const auto& r : rows) {
        const auto calls = parse_tool_calls(r.answer, k_tools, /*parallel=*/true);
        ASSERT_TRUE(calls) << r.answer;
        ASSERT_EQ(calls->size(), r.names.size()) << r.answer;
        for (size_t i = 0; i < calls->size(); ++i) {
            EXPECT_EQ((*calls)[i].name, r.names[i]) << r.answer;
            EXPECT_EQ((*calls)[i].arguments, r.args[i]) << r.answer << ": the arguments in the model's key order";
        }
    }
}

TEST(tool_calls, anything_else_is_text) {
    const char* texts[] = {
        "The weather in Paris is sunny.",
        R"({"name":"delete_all","arguments":{}})",                  // not one of the tools
        R"({"name":"get_time","arguments":[1]})",                   // arguments not an object
        R"({"name":"get_time"})",                                   // no arguments
        "[]",                                                       // no call at all
        R"({"name":"get_time","arguments":{}} and more)",           // text after the call
        "Sure! <tool_call>{\"name\":\"get_time\",\"arguments\":{}}</tool_call>",  // text before it
        "<tool_call>{\"name\":\"get_time\",\"arguments\":{}}</tool_call> done",
        "<tool_call>not json</tool_call>",
        "",
    };
    for (const char* t : texts) EXPECT_FALSE(parse_tool_calls(t, k_tools, true)) << t;
    // Without parallel calls, several are not calls; an array of one is one.
    EXPECT_FALSE(parse_tool_calls(R"([{"name":"get_time","arguments":{}},{"name":"get_time","arguments":{}}])", k_tools, false));
    EXPECT_TRUE(parse_tool_calls(R"([{"name":"get_time","arguments":{}}])", k_tools, false));
    EXPECT_FALSE(parse_tool_calls("<tool_call>{\"name\":\"get_time\",\"arguments\":{}}</tool_call><tool_call>"
                                  "{\"name\":\"get_time\",\"arguments\":{}}</tool_call>",
                                  k_tools, false));
    EXPECT_TRUE(parse_tool_calls("<tool_call>{\"name\":\"get_time\",\"arguments\":{}}</tool_call>", k_tools, false));
}

TEST(tool_calls, a_streamed_answer_is_told_by_its_start) {
    EXPECT_EQ(classify_answer_start(""), answer_start::undecided);
    EXPECT_EQ(classify_answer_start("{"), answer_start::calls);
    EXPECT_EQ(classify_answer_start("["), answer_start::undecided);
    EXPECT_EQ(classify_answer_start("[ \n{"), answer_start::calls);
    EXPECT_EQ(classify_answer_start("[link](x)"), answer_start::text) << "markdown streams as it comes";
    EXPECT_EQ(classify_answer_start("[TOOL"), answer_start::undecided);
    EXPECT_EQ(classify_answer_start("[TOOL_CALLS]"), answer_start::calls);
    EXPECT_EQ(classify_answer_start("[TOOLS are"), answer_start::text);
    EXPECT_EQ(classify_answer_start("<tool"), answer_start::undecided);
    EXPECT_EQ(classify_answer_start("<tool_call>"), answer_start::calls);
    EXPECT_EQ(classify_answer_start("<tool_call>\n{\"na"), answer_start::calls);
    EXPECT_EQ(classify_answer_start("<b>bold</b>"), answer_start::text);
    EXPECT_EQ(classify_answer_start("Hello"), answer_start::text);
}

}  // namespace
}  // namespace mm::text
