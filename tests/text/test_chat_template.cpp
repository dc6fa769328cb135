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
