// server_config: the JSON contract (keys outside acceptance tests rely on), defaults, and errors that
// name the key at fault.
#include <gtest/gtest.h>

#include <string>

#include "services/server_config.h"

namespace mm::services {
namespace {

TEST(server_config, empty_object_gives_the_documented_defaults) {
    auto c = server_config_parse("{}", "/srv/mm");
    ASSERT_TRUE(c) << c.error().to_string();
    EXPECT_EQ(c->host, "127.0.0.1");
    EXPECT_EQ(c->port, 8080);
    EXPECT_EQ(c->data_dir, std::filesystem::path("/srv/mm/data"));
    EXPECT_EQ(c->limits.body_bytes, 1u << 20);
    EXPECT_EQ(c->limits.upload_bytes, 25u << 20);
    EXPECT_EQ(c->cache_price, 0);
    EXPECT_EQ(c->price("chat.completions"), 0);
    EXPECT_TRUE(c->models.empty());
}

TEST(server_config, every_contract_key_is_read) {
    auto c = server_config_parse(R"({
        "host": "0.0.0.0", "port": 9000, "data_dir": "/var/lib/mm", "admin_key": "0123456789abcdef0123",
        "models": [{"id": "stories", "kind": "llm", "path": "models/demo/stories260K.gguf", "n_ctx": 256,
                    "n_parallel": 8, "chat_template": "llama3", "tokenizer": "tok.bin"},
                   {"id": "w", "kind": "whisper", "path": "/abs/w.bin"}],
        "prices": {"chat.completions": 2000, "pipelines.text_to_image": 50000, "images.generations": 0},
        "cache_price": 10,
        "limits": {"body_bytes": 2048, "upload_bytes": 4096, "header_timeout_ms": 500, "body_timeout_ms": 650, "idle_timeout_ms": 700,
                   "ws_message_bytes": 65536, "shutdown_timeout_ms": 900, "max_connections": 8, "queue_depth": 3, "memory_bytes": 1073741824},
        "alerts": {"webhook_url": "http://127.0.0.1:9/hook"}
    })", "/etc/mm");
    ASSERT_TRUE(c) << c.error().to_string();
    EXPECT_EQ(c->host, "0.0.0.0");
    EXPECT_EQ(c->port, 9000);
    EXPECT_EQ(c->data_dir, std::filesystem::path("/var/lib/mm"));
    EXPECT_EQ(c->admin_key, "0123456789abcdef0123");
    ASSERT_EQ(c->models.size(), 2u);
    EXPECT_EQ(c->models[0].path, std::filesystem::path("/etc/mm/models/demo/stories260K.gguf"));
    EXPECT_EQ(c->models[0].n_ctx, 256);
    EXPECT_EQ(c->models[0].n_parallel, 8);
    EXPECT_EQ(c->models[0].chat_template, "llama3");
    EXPECT_EQ(c->models[0].tokenizer, std::filesystem::path("/etc/mm/tok.bin"));
    EXPECT_EQ(c->models[1].kind, model_kind::whisper);
    EXPECT_EQ(c->models[1].n_parallel, 4) << "the default";
    EXPECT_EQ(c->price("chat.completions"), 2000);
    EXPECT_EQ(c->price("pipelines.text_to_image"), 50000);
    EXPECT_EQ(c->price("completions"), 0);
    EXPECT_EQ(c->cache_price, 10);
    EXPECT_EQ(c->limits.body_bytes, 2048u);
    EXPECT_EQ(c->limits.queue_depth, 3);
    EXPECT_EQ(c->limits.ws_message_bytes, 65536u);
    EXPECT_EQ(c->limits.shutdown_timeout_ms, 900);
    EXPECT_EQ(c->limits.header_timeout_ms, 500);
    EXPECT_EQ(c->limits.body_timeout_ms, 650);
    EXPECT_EQ(c->limits.memory_bytes, int64_t{1} << 30);
    EXPECT_EQ(c->alerts.webhook_url, "http://127.0.0.1:9/hook");
}

TEST(server_config, errors_name_the_key) {
    struct row { const char* name; const char* doc; const char* key_in_message; };
    const row rows[] = {
        {"not json", "{", "not valid JSON"},
        {"number past any type", " 8000000000000000000000e0000000006415901596434724406", "not valid JSON"},
        {"not an object", "[]", "expected an object"},
        {"unknown top key", R"({"hots": "x"})", "hots: unknown key"},
        {"port type", R"({"port": "80"})", "port: expected an integer"},
        {"port range", R"({"port": 70000})", "port: expected 0..65535"},
        {"port float", R"({"port": 80.5})", "port: expected an integer"},
        {"empty host", R"({"host": ""})", "host: must not be empty"},
        {"short admin key", R"({"admin_key": "abc"})", "admin_key: must be at least 16"},
        {"models not list", R"({"models": {}})", "models: expected a list"},
        {"model kind", R"({"models": [{"id": "a", "kind": "gpt", "path": "x"}]})", "models[0].kind: expected"},
        {"model missing path", R"({"models": [{"id": "a", "kind": "llm"}]})", "models[0].path: required"},
        {"ws message limit zero", R"({"limits": {"ws_message_bytes": 0}})", "limits.ws_message_bytes"},
        {"shutdown timeout type", R"({"limits": {"shutdown_timeout_ms": "5s"}})", "limits.shutdown_timeout_ms: expected an integer"},
        {"model unknown key", R"({"models": [{"id": "a", "kind": "llm", "path": "x", "gpu": 1}]})", "models[0].gpu: unknown key"},
        {"model n_ctx type", R"({"models": [{"id": "a", "kind": "llm", "path": "x", "n_ctx": "big"}]})", "models[0].n_ctx: expected an integer"},
        {"model n_parallel range", R"({"models": [{"id": "a", "kind": "llm", "path": "x", "n_parallel": 0}]})", "models[0].n_parallel: expected 1..256"},
        {"duplicate model", R"({"models": [{"id": "a", "kind": "llm", "path": "x"}, {"id": "a", "kind": "llm", "path": "y"}]})", "models[1].id: duplicate"},
        {"unknown price endpoint", R"({"prices": {"chat.completion": 1}})", "prices.chat.completion: unknown endpoint"},
        {"negative price", R"({"prices": {"completions": -1}})", "prices.completions: expected 0.."},
        {"fractional price", R"({"prices": {"completions": 0.5}})", "prices.completions: expected an integer"},
        {"price too large", R"({"prices": {"completions": 18446744073709551615}})", "prices.completions: out of range"},
        {"unknown limit", R"({"limits": {"body": 1}})", "limits.body: unknown key"},
        {"zero body limit", R"({"limits": {"body_bytes": 0}})", "limits.body_bytes: expected 1.."},
        {"bad webhook", R"({"alerts": {"webhook_url": "ftp://x"}})", "alerts.webhook_url: expected an http"},
        {"https webhook", R"({"alerts": {"webhook_url": "https://x/hook"}})", "alerts.webhook_url: https is not supported yet"},
        {"unknown alerts key", R"({"alerts": {"url": "http://x"}})", "alerts.url: unknown key"},
    };
    for (const auto& r : rows) {
        auto c = server_config_parse(r.doc, "/tmp");
        ASSERT_FALSE(c) << r.name;
        EXPECT_EQ(c.error().code(), errc::invalid_argument) << r.name;
        EXPECT_NE(c.error().message().find(r.key_in_message), std::string::npos)
            << r.name << ": " << c.error().message();
    }
}

TEST(server_config, help_lists_every_key) {
    const std::string h = server_config_help();
    for (const char* k : {"host", "port", "data_dir", "admin_key", "models", "prices", "cache_price", "limits", "alerts",
                          "chat.completions", "pipelines.speech_to_image"})
        EXPECT_NE(h.find(k), std::string::npos) << k;
}

}  // namespace
}  // namespace mm::services
