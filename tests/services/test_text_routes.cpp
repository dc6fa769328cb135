// /v1/chat/completions and /v1/completions through a real server, meter and the stories260K text stage:
// shapes, streaming, errors, billing, the response cache and client disconnects.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "account_routes.h"
#include "key_hash.h"
#include "meter.h"
#include "services/model_routes.h"
#include "services/server.h"
#include "sqlite_ledger.h"
#include "test_client.h"
#include "text_routes.h"
#include "ref/shared_files.h"

namespace mm::services {
namespace {

using json = nlohmann::json;
using mm::test::test_client;
namespace fs = std::filesystem;
namespace http = boost::beast::http;

constexpr const char* k_admin = "admin-key-for-text-tests-0123";
constexpr micros k_price = 1000;
const fs::path k_model = fs::path(MM_SHARED_DIR) / "models" / "text" / "stories260K-f32.gguf";

struct fixture {
    fs::path dir;
    system_clock clk;
    std::unique_ptr<sqlite_ledger> book;
    server_config config;
    std::unique_ptr<meter> m;
    thread_pool pool{2};
    model_registry registry;
    text_models text;
    std::unique_ptr<server> srv;
    std::string key;

    explicit fixture(int n_ctx = 128) {
        dir = fs::temp_directory_path() / ("mm_text_routes_" + std::to_string(::getpid()) + "_" + request_id_generate());
        fs::create_directories(dir);
        auto secret = server_secret_load_or_create(dir);
        auto opened = sqlite_ledger::open({.path = dir / "ledger.sqlite3", .server_secret = *secret, .clk = &clk});
        EXPECT_TRUE(opened);
        book = std::move(*opened);
        config.prices["chat.completions"] = k_price;
        config.prices["completions"] = k_price;
        m = std::make_unique<meter>(meter_params{.config = config, .book = *book, .time = clk, .server_secret = *secret,
                                                 .admin_key_hash = key_hash(*secret, k_admin)});
        registry.add("stories", model_kind::llm);
        auto stage = text::text_stage::load({.id = "stories", .path = k_model, .n_parallel = 2, .n_ctx = n_ctx, .max_queue = 4},
                                            pool);
        EXPECT_TRUE(stage) << stage.error().to_string();
        text.add(std::move(*stage));
        registry.ready("stories", 1);
        auto table = server_routes();
        for (auto& r : account_routes(*m)) table.push_back(std::move(r));
        for (auto& r : model_routes(registry)) table.push_back(std::move(r));
        for (auto& r : text_routes(*m, text, registry)) table.push_back(std::move(r));
        server_params p;
        p.host = "127.0.0.1";
        p.port = 0;
        srv = std::make_unique<server>(p, std::move(table));
        EXPECT_TRUE(srv->start());
        auto a = call("POST", "/v1/admin/keys", json{{"user", "u"}, {"budget", 1'000'000}}.dump(), k_admin);
        key = a.body.value("key", "");
    }
    ~fixture() {
        srv->stop();
        srv.reset();
        m.reset();
        book.reset();
        fs::remove_all(dir);
    }

    mm::test::api_answer call(const std::string& method, const std::string& target, const std::string& body,
                              std::string auth = "") {
        return mm::test::api_call(srv->port(), method, target, auth.empty() ? key : auth, body);
    }
    micros spent() { return call("GET", "/v1/me", "").body["key_budget"]["spent"].get<micros>(); }
};

// The SSE events of a body: the JSON of each "data:" line, and whether it ended with [DONE].
std::pair<std::vector<json>, bool> events(const std::string& body) {
    std::vector<json> out;
    bool done = false;
    size_t at = 0;
    while ((at = body.find("data: ", at)) != std::string::npos) {
        const size_t end = body.find("\n\n", at);
        const std::string data = body.substr(at + 6, end - at - 6);
        if (data == "[DONE]") done = true;
        else out.push_back(json::parse(data));
        at = end;
    }
    return {out, done};
}

TEST(text_routes, a_greedy_completion_is_llama_servers_text_with_usage_and_one_charge) {
    fixture f;
    const json c = test::text_golden("server_greedy_f32.json")["cases"][1];  // once_upon
    auto a = f.call("POST", "/v1/completions",
                    json{{"model", "stories"}, {"prompt", c["prompt"]}, {"max_tokens", 12}, {"temperature", 0}}.dump());
    ASSERT_EQ(a.status, 200u) << a.body.dump();
    EXPECT_EQ(a.body["object"], "text_completion");
    EXPECT_EQ(a.body["model"], "stories");
    EXPECT_TRUE(a.body["id"].get<std::string>().starts_with("cmpl-"));
    const std::string want_prefix = c["content"].get<std::string>();
    const std::string text = a.body["choices"][0]["text"];
    EXPECT_EQ(want_prefix.substr(0, text.size()), text) << "the first 12 tokens of llama-server's greedy run";
    EXPECT_FALSE(text.empty());
    EXPECT_EQ(a.body["choices"][0]["finish_reason"], "length");
    EXPECT_EQ(a.body["usage"]["prompt_tokens"], c["prompt_ids"].size());
    EXPECT_EQ(a.body["usage"]["completion_tokens"], 12);
    EXPECT_EQ(a.body["usage"]["total_tokens"], c["prompt_ids"].size() + 12);
    EXPECT_EQ(f.spent(), k_price);
}

TEST(text_routes, a_streamed_chat_adds_up_to_the_whole_answer) {
    fixture f;
    const json req = {{"model", "stories"}, {"messages", {{{"role", "user"}, {"content", "Lily saw a dog"}}}},
                      {"max_tokens", 20}, {"temperature", 0}};
    auto whole = f.call("POST", "/v1/chat/completions", req.dump());
    ASSERT_EQ(whole.status, 200u) << whole.body.dump();
    EXPECT_EQ(whole.body["object"], "chat.completion");
    EXPECT_EQ(whole.body["choices"][0]["message"]["role"], "assistant");

    json sreq = req;
    sreq["stream"] = true;
    sreq["stream_options"] = {{"include_usage", true}};
    auto streamed = f.call("POST", "/v1/chat/completions", sreq.dump());
    ASSERT_EQ(streamed.status, 200u);
    EXPECT_EQ(streamed.raw[http::field::content_type], "text/event-stream");
    auto [evs, done] = events(streamed.raw.body());
    EXPECT_TRUE(done) << "ends with data: [DONE]";
    ASSERT_GE(evs.size(), 3u);
    EXPECT_EQ(evs.front()["choices"][0]["delta"]["role"], "assistant");
    std::string content;
    std::string finish;
    for (const auto& e : evs) {
        EXPECT_EQ(e["object"], "chat.completion.chunk");
        EXPECT_EQ(e["id"], evs.front()["id"]) << "one id for the whole stream";
        for (const auto& ch : e["choices"]) {
            if (ch["delta"].contains("content")) content += ch["delta"]["content"].get<std::string>();
            if (!ch["finish_reason"].is_null()) finish = ch["finish_reason"];
        }
    }
    EXPECT_EQ(content, whole.body["choices"][0]["message"]["content"]);
    EXPECT_EQ(finish, "length");
    EXPECT_TRUE(evs.back()["choices"].empty());
    for (const char* k : {"prompt_tokens", "completion_tokens", "total_tokens"}) EXPECT_EQ(evs.back()["usage"][k], whole.body["usage"][k]) << k;
    EXPECT_EQ(f.spent(), 2 * k_price) << "streamed and whole are different requests, each billed once";
    // The same greedy request again is answered from the response cache (cache_price 0): the same answer,
    // as a response of its own (its own id).
    auto again = f.call("POST", "/v1/chat/completions", req.dump());
    ASSERT_EQ(again.status, 200u);
    EXPECT_EQ(again.raw["x-mmserve-cache"], "hit");
    EXPECT_NE(again.body["id"], whole.body["id"]);
    EXPECT_EQ(again.body["id"].get<std::string>().rfind("chatcmpl-", 0), 0u);
    EXPECT_GE(again.body["created"].get<int64_t>(), whole.body["created"].get<int64_t>());
    json same = again.body;
    same["id"] = whole.body["id"];
    same["created"] = whole.body["created"];
    EXPECT_EQ(same, whole.body) << "everything else as first answered";
    EXPECT_EQ(f.spent(), 2 * k_price);
    // A streamed answer from the cache: every event carries the one new id, the events otherwise unchanged.
    auto streamed_again = f.call("POST", "/v1/chat/completions", sreq.dump());
    ASSERT_EQ(streamed_again.status, 200u);
    EXPECT_EQ(streamed_again.raw["x-mmserve-cache"], "hit");
    auto [evs2, done2] = events(streamed_again.raw.body());
    EXPECT_TRUE(done2);
    ASSERT_EQ(evs2.size(), evs.size());
    for (size_t i = 0; i < evs.size(); ++i) {
        EXPECT_EQ(evs2[i]["id"], evs2.front()["id"]);
        EXPECT_NE(evs2[i]["id"], evs[i]["id"]);
        json e = evs2[i];
        e["id"] = evs[i]["id"];
        e["created"] = evs[i]["created"];
        EXPECT_EQ(e, evs[i]) << i;
    }
    EXPECT_EQ(f.spent(), 2 * k_price);
}

TEST(text_routes, bad_requests_get_openai_errors_and_cost_nothing) {
    fixture f;
    // param: the field OpenAI's error names ("" for null).
    struct row { const char* name; const char* path; std::string body; unsigned status; std::string code; std::string in_message; std::string param; };
    const row rows[] = {
        {"not json", "/v1/completions", "{nope", 400, "", "JSON", ""},
        {"no model", "/v1/completions", R"({"prompt":"x"})", 400, "", "model", "model"},
        {"unknown model", "/v1/completions", R"({"model":"gpt-9","prompt":"x"})", 404, "model_not_found", "stories", ""},
        {"no prompt", "/v1/completions", R"({"model":"stories"})", 400, "", "prompt", "prompt"},
        {"wrong type", "/v1/completions", R"({"model":"stories","prompt":"x","max_tokens":"lots"})", 400, "", "max_tokens", "max_tokens"},
        {"hot", "/v1/completions", R"({"model":"stories","prompt":"x","temperature":3})", 400, "", "temperature", "temperature"},
        {"n", "/v1/completions", R"({"model":"stories","prompt":"x","n":17})", 400, "", "between 1 and 16", "n"},
        {"n zero", "/v1/completions", R"({"model":"stories","prompt":"x","n":0})", 400, "", "between 1 and 16", "n"},
        {"n past the queue", "/v1/completions", R"({"model":"stories","prompt":"x","n":5})", 400, "", "queue holds", "n"},
        {"hot with n", "/v1/completions", R"({"model":"stories","prompt":"x","n":2,"temperature":3})", 400, "", "temperature", "temperature"},
        {"echo", "/v1/completions", R"({"model":"stories","prompt":"x","echo":true})", 400, "unsupported", "echo", "echo"},
        {"suffix", "/v1/completions", R"({"model":"stories","prompt":"x","suffix":"end"})", 400, "unsupported", "suffix", "suffix"},
        {"best_of", "/v1/completions", R"({"model":"stories","prompt":"x","best_of":3})", 400, "unsupported", "best_of", "best_of"},
        {"zero max_tokens", "/v1/completions", R"({"model":"stories","prompt":"x","max_tokens":0})", 400, "", "max_tokens", "max_tokens"},
        {"zero max_completion_tokens", "/v1/chat/completions", R"({"model":"stories","messages":[{"role":"user","content":"x"}],"max_completion_tokens":0})", 400, "", "max_completion_tokens", "max_completion_tokens"},
        {"too long", "/v1/completions", R"({"model":"stories","prompt":"x","max_tokens":500})", 400, "context_length_exceeded", "context", "prompt"},
        {"too long chat", "/v1/chat/completions", R"({"model":"stories","messages":[{"role":"user","content":"x"}],"max_tokens":500})", 400, "context_length_exceeded", "context", "messages"},
        {"no messages", "/v1/chat/completions", R"({"model":"stories","messages":[]})", 400, "", "messages", "messages"},
        {"bad role", "/v1/chat/completions", R"({"model":"stories","messages":[{"role":"king","content":"x"}]})", 400, "", "role", ""},
        {"image part", "/v1/chat/completions",
         R"({"model":"stories","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]})", 400, "", "text", "messages[0].content[0].type"},
        {"top_logprobs without logprobs", "/v1/chat/completions",
         R"({"model":"stories","messages":[{"role":"user","content":"x"}],"top_logprobs":2})", 400, "", "logprobs", "top_logprobs"},
        // nlohmann's dump recurses per level (the tool's parameters are dumped for the schema parser): without
        // the bound this body overflows the stack and the server dies.
        {"nested 150000 deep", "/v1/chat/completions",
         R"({"model":"stories","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f","parameters":)" +
             std::string(150000, '[') + std::string(150000, ']') + "}}]}", 400, "", "deeper", ""},
    };
    for (const auto& r : rows) {
        auto a = f.call("POST", r.path, r.body);
        EXPECT_EQ(a.status, r.status) << r.name << ": " << a.body.dump();
        ASSERT_TRUE(a.body.contains("error")) << r.name;
        EXPECT_NE(a.body["error"]["message"].get<std::string>().find(r.in_message), std::string::npos)
            << r.name << ": " << a.body["error"]["message"];
        if (!r.code.empty()) {
            EXPECT_EQ(a.body["error"]["code"], r.code) << r.name;
        }
        EXPECT_EQ(a.body["error"]["param"], r.param.empty() ? json(nullptr) : json(r.param)) << r.name;
    }
    EXPECT_EQ(f.spent(), 0);
    EXPECT_EQ(f.call("POST", "/v1/completions", R"({"model":"stories","prompt":"x"})", "sk-wrong").status, 401u);
}

// n > 1: each choice is its own sequence, sampled from seed + index, so choice i is what a single request
// with that seed answers (whatever it was batched with); streamed, each index adds up to its whole choice;
// the prompt counts once in usage, and the request is one charge.
TEST(text_routes, n_choices_are_independent_answers_for_one_charge) {
    fixture f;
    auto body = [](int n, uint64_t seed) {
        return json{{"model", "stories"}, {"prompt", "Once upon a time"}, {"max_tokens", 12}, {"temperature", 0.9},
                    {"seed", seed}, {"ignore_eos", true}, {"n", n}};
    };
    const micros before = f.spent();
    auto a = f.call("POST", "/v1/completions", body(3, 5).dump());
    ASSERT_EQ(a.status, 200u) << a.body.dump();
    EXPECT_EQ(f.spent() - before, k_price) << "one charge for three choices";
    const json& choices = a.body["choices"];
    ASSERT_EQ(choices.size(), 3u);
    std::set<std::string> texts;
    for (size_t i = 0; i < 3; ++i) {
        EXPECT_EQ(choices[i]["index"], i);
        EXPECT_EQ(choices[i]["finish_reason"], "length");
        auto one = f.call("POST", "/v1/completions", body(1, 5 + i).dump());
        ASSERT_EQ(one.status, 200u) << one.body.dump();
        EXPECT_EQ(choices[i]["text"], one.body["choices"][0]["text"]) << "choice " << i << " is seed " << 5 + i << "'s answer";
        texts.insert(choices[i]["text"].get<std::string>());
    }
    EXPECT_EQ(texts.size(), 3u) << "different seeds, different answers";
    const int prompt = a.body["usage"]["prompt_tokens"];
    EXPECT_EQ(a.body["usage"]["completion_tokens"], 36);
    EXPECT_EQ(a.body["usage"]["total_tokens"], prompt + 36);

    json streamed = body(3, 5);
    streamed["stream"] = true;
    streamed["stream_options"] = {{"include_usage", true}};
    auto st = f.call("POST", "/v1/completions", streamed.dump());
    ASSERT_EQ(st.status, 200u);
    auto [evs, done] = events(st.raw.body());
    EXPECT_TRUE(done);
    std::vector<std::string> joined(3);
    std::vector<int> finishes(3, 0);
    for (const auto& e : evs) {
        if (e.contains("usage") && !e["usage"].is_null()) {
            for (const char* k : {"prompt_tokens", "completion_tokens", "total_tokens"}) EXPECT_EQ(e["usage"][k], a.body["usage"][k]) << k;
        }
        for (const auto& c : e["choices"]) {
            const size_t i = c["index"];
            ASSERT_LT(i, 3u);
            joined[i] += c["text"].get<std::string>();
            if (!c["finish_reason"].is_null()) ++finishes[i];
        }
    }
    for (size_t i = 0; i < 3; ++i) {
        EXPECT_EQ(joined[i], choices[i]["text"]) << i;
        EXPECT_EQ(finishes[i], 1) << i;
    }

    // Chat: a message per choice.
    const json chat = {{"model", "stories"}, {"messages", {{{"role", "user"}, {"content", "Hi"}}}}, {"max_tokens", 8},
                       {"temperature", 0}, {"n", 2}};
    auto c = f.call("POST", "/v1/chat/completions", chat.dump());
    ASSERT_EQ(c.status, 200u) << c.body.dump();
    ASSERT_EQ(c.body["choices"].size(), 2u);
    EXPECT_EQ(c.body["choices"][1]["index"], 1);
    EXPECT_EQ(c.body["choices"][0]["message"], c.body["choices"][1]["message"]) << "greedy: the same answer twice";
}

// A chat's next turn starts from the slot that holds the earlier turn, and usage says how much of the
// prompt it found there (prompt_tokens_details.cached_tokens, as OpenAI reports prompt caching).
TEST(text_routes, a_chats_next_turn_reports_the_prompt_it_found_cached) {
    fixture f;
    json chat = {{"model", "stories"}, {"messages", {{{"role", "user"}, {"content", "Tell me a story about a cat."}}}},
                 {"max_tokens", 10}, {"temperature", 0}};
    auto first = f.call("POST", "/v1/chat/completions", chat.dump());
    ASSERT_EQ(first.status, 200u) << first.body.dump();
    EXPECT_EQ(first.body["usage"]["prompt_tokens_details"]["cached_tokens"], 0) << "a fresh stage holds nothing";
    const int first_prompt = first.body["usage"]["prompt_tokens"];
    chat["messages"].push_back({{"role", "assistant"}, {"content", first.body["choices"][0]["message"]["content"]}});
    chat["messages"].push_back({{"role", "user"}, {"content", "And then?"}});
    auto second = f.call("POST", "/v1/chat/completions", chat.dump());
    ASSERT_EQ(second.status, 200u) << second.body.dump();
    const int cached = second.body["usage"]["prompt_tokens_details"]["cached_tokens"];
    EXPECT_GT(cached, first_prompt / 2) << second.body["usage"].dump();
    EXPECT_LT(cached, second.body["usage"]["prompt_tokens"].get<int>());
}

TEST(text_routes, logprobs_have_openais_shapes) {
    fixture f;
    auto chat = f.call("POST", "/v1/chat/completions",
                       R"({"model":"stories","messages":[{"role":"user","content":"Hi"}],"max_tokens":4,"temperature":0,
                           "logprobs":true,"top_logprobs":3})");
    ASSERT_EQ(chat.status, 200u) << chat.body.dump();
    const json& content = chat.body["choices"][0]["logprobs"]["content"];
    ASSERT_EQ(content.size(), 4u);
    for (const auto& t : content) {
        EXPECT_LE(t["logprob"].get<double>(), 0.0);
        ASSERT_EQ(t["top_logprobs"].size(), 3u);
        EXPECT_EQ(t["top_logprobs"][0]["token"], t["token"]) << "greedy: the chosen token is the top one";
        EXPECT_TRUE(t["bytes"].is_array());
    }
    auto comp = f.call("POST", "/v1/completions",
                       R"({"model":"stories","prompt":"Once","max_tokens":3,"temperature":0,"logprobs":2})");
    ASSERT_EQ(comp.status, 200u) << comp.body.dump();
    const json& lp = comp.body["choices"][0]["logprobs"];
    EXPECT_EQ(lp["tokens"].size(), 3u);
    EXPECT_EQ(lp["token_logprobs"].size(), 3u);
    EXPECT_EQ(lp["top_logprobs"][0].size(), 2u);
    EXPECT_EQ(lp["text_offset"][0], 0);
}

TEST(text_routes, structured_output_and_tool_calls_always_parse) {
    fixture f(1024);  // the tool description alone is ~300 of this tiny vocabulary's tokens
    // An enum and an integer: documents a story model is sure to finish (a free string might run on for as
    // long as max_tokens allows, which is a length finish, not a malformed one).
    const json weather = {{"type", "object"},
                          {"properties", {{"city", {{"enum", {"Paris", "Rome"}}}}, {"days", {{"type", "integer"}}}}},
                          {"required", {"city", "days"}}};
    for (int seed = 0; seed < 3; ++seed) {
        json req = {{"model", "stories"}, {"messages", {{{"role", "user"}, {"content", "Weather in Paris?"}}}},
                    {"max_tokens", 300}, {"seed", seed}, {"temperature", 0.8}};
        auto with_schema = [&](const json& schema) {
            json r = req;
            r["response_format"] = {{"type", "json_schema"}, {"json_schema", {{"name", "w"}, {"schema", schema}}}};
            return f.call("POST", "/v1/chat/completions", r.dump());
        };
        auto a = with_schema(weather);
        ASSERT_EQ(a.status, 200u) << a.body.dump();
        EXPECT_EQ(a.body["choices"][0]["finish_reason"], "stop");
        const json doc = json::parse(a.body["choices"][0]["message"]["content"].get<std::string>());
        EXPECT_TRUE(doc["city"] == "Paris" || doc["city"] == "Rome") << doc;
        EXPECT_TRUE(doc["days"].is_number_integer()) << doc;

        // The same in pydantic's spelling: a $ref into $defs and an optional (anyOf with null) field.
        const json pyd_schema = {{"$defs", {{"City", {{"enum", {"Paris", "Rome"}}}}}},
                                 {"type", "object"},
                                 {"properties", {{"city", {{"$ref", "#/$defs/City"}}},
                                                 {"days", {{"anyOf", {{{"type", "integer"}}, {{"type", "null"}}}}}}}},
                                 {"required", {"city", "days"}}};
        auto b = with_schema(pyd_schema);
        ASSERT_EQ(b.status, 200u) << b.body.dump();
        EXPECT_EQ(b.body["choices"][0]["finish_reason"], "stop");
        const json pdoc = json::parse(b.body["choices"][0]["message"]["content"].get<std::string>());
        EXPECT_TRUE(pdoc["city"] == "Paris" || pdoc["city"] == "Rome") << pdoc;
        EXPECT_TRUE(pdoc["days"].is_number_integer() || pdoc["days"].is_null()) << pdoc;

        json tool = req;
        tool["tools"] = {{{"type", "function"}, {"function", {{"name", "get_weather"}, {"parameters", weather}}}}};
        tool["tool_choice"] = "required";
        tool["parallel_tool_calls"] = false;  // exactly one call
        auto t = f.call("POST", "/v1/chat/completions", tool.dump());
        ASSERT_EQ(t.status, 200u) << t.body.dump();
        const json& choice = t.body["choices"][0];
        EXPECT_EQ(choice["finish_reason"], "tool_calls") << choice.dump();
        ASSERT_EQ(choice["message"]["tool_calls"].size(), 1u) << choice.dump();
        EXPECT_TRUE(choice["message"]["content"].is_null());
        const json& call = choice["message"]["tool_calls"][0];
        EXPECT_EQ(call["type"], "function");
        EXPECT_TRUE(call["id"].get<std::string>().starts_with("call_"));
        EXPECT_EQ(call["function"]["name"], "get_weather");
        const json args = json::parse(call["function"]["arguments"].get<std::string>());
        EXPECT_TRUE(args["city"] == "Paris" || args["city"] == "Rome") << args;
        EXPECT_TRUE(args["days"].is_number_integer()) << args;

        tool["stream"] = true;
        auto st = f.call("POST", "/v1/chat/completions", tool.dump());
        auto [evs, done] = events(st.raw.body());
        EXPECT_TRUE(done);
        bool saw_call = false;
        for (const auto& e : evs)
            for (const auto& c : e["choices"])
                if (c["delta"].contains("tool_calls")) {
                    saw_call = true;
                    EXPECT_EQ(c["delta"]["tool_calls"][0]["index"], 0);
                    EXPECT_EQ(c["delta"]["tool_calls"][0]["function"]["name"], "get_weather");
                }
        EXPECT_TRUE(saw_call) << st.raw.body();
    }

    // Parallel calls: biased to open an array and to continue it, the answer is several calls, each its own
    // tool_calls entry (and its own streamed delta, indexed in order), each fitting the tool's parameters.
    const text::text_stage* stage = f.text.find("stories");
    json bias = json::object();
    for (int32_t id = 0; id < stage->n_vocab(); ++id)
        if (stage->piece(id) == "[" || stage->piece(id) == ",") bias[std::to_string(id)] = 100;
    ASSERT_GE(bias.size(), 2u) << "the vocabulary has '[' and ',' tokens (a piece, a byte token or both)";
    json par = {{"model", "stories"}, {"messages", {{{"role", "user"}, {"content", "Weather in Paris and Rome?"}}}},
                {"max_tokens", 200}, {"temperature", 0}, {"logit_bias", bias}, {"tool_choice", "required"},
                {"tools", {{{"type", "function"}, {"function", {{"name", "get_weather"}, {"parameters", weather}}}}}}};
    auto calls_fit = [&](const json& calls) {
        for (const auto& c : calls) {
            EXPECT_EQ(c["function"]["name"], "get_weather") << c;
            const json args = json::parse(c["function"]["arguments"].get<std::string>());
            EXPECT_TRUE(args["city"] == "Paris" || args["city"] == "Rome") << args;
            EXPECT_TRUE(args["days"].is_number_integer()) << args;
        }
    };
    auto many = f.call("POST", "/v1/chat/completions", par.dump());
    ASSERT_EQ(many.status, 200u) << many.body.dump();
    const json& calls = many.body["choices"][0]["message"]["tool_calls"];
    ASSERT_GE(calls.size(), 2u) << many.body.dump();
    calls_fit(calls);
    std::set<std::string> ids;
    for (const auto& c : calls) ids.insert(c["id"].get<std::string>());
    EXPECT_EQ(ids.size(), calls.size()) << "each call its own id";
    // Greedy, so the same request again is a cache hit: the same calls, under new ids.
    auto replay = f.call("POST", "/v1/chat/completions", par.dump());
    ASSERT_EQ(replay.status, 200u);
    const json& again = replay.body["choices"][0]["message"]["tool_calls"];
    ASSERT_EQ(again.size(), calls.size());
    for (size_t i = 0; i < calls.size(); ++i) {
        EXPECT_EQ(again[i]["function"], calls[i]["function"]);
        EXPECT_TRUE(again[i]["id"].get<std::string>().starts_with("call_"));
        EXPECT_FALSE(ids.count(again[i]["id"].get<std::string>())) << "a replayed call gets a new id";
    }
    par["stream"] = true;
    auto many_st = f.call("POST", "/v1/chat/completions", par.dump());
    auto [many_evs, many_done] = events(many_st.raw.body());
    EXPECT_TRUE(many_done);
    json streamed = json::array();
    for (const auto& e : many_evs)
        for (const auto& c : e["choices"])
            if (c["delta"].contains("tool_calls"))
                for (const auto& d : c["delta"]["tool_calls"]) {
                    EXPECT_EQ(d["index"], streamed.size());
                    streamed.push_back(d);
                }
    ASSERT_EQ(streamed.size(), calls.size()) << many_st.raw.body();
    for (size_t i = 0; i < calls.size(); ++i) EXPECT_EQ(streamed[i]["function"], calls[i]["function"]) << "greedy: the same calls";
    // Without parallel calls the same bias cannot open an array.
    par["stream"] = false;
    par["parallel_tool_calls"] = false;
    auto one = f.call("POST", "/v1/chat/completions", par.dump());
    ASSERT_EQ(one.status, 200u) << one.body.dump();
    ASSERT_EQ(one.body["choices"][0]["message"]["tool_calls"].size(), 1u) << one.body.dump();
    calls_fit(one.body["choices"][0]["message"]["tool_calls"]);

    struct row { const char* name; std::string body; const char* in_message; };
    const row bad[] = {
        {"unknown tool", R"({"model":"stories","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"a"}}],"tool_choice":{"type":"function","function":{"name":"b"}}})", "tool_choice"},
        {"tool without name", R"({"model":"stories","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{}}]})", "name"},
        {"parallel_tool_calls", R"({"model":"stories","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"a"}}],"parallel_tool_calls":"yes"})", "boolean"},
        {"anyOf", R"({"model":"stories","messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema","json_schema":{"name":"a","schema":{"anyOf":[]}}}})", "anyOf"},
        {"format type", R"({"model":"stories","messages":[{"role":"user","content":"x"}],"response_format":{"type":"yaml"}})", "response_format"},
    };
    for (const auto& r : bad) {
        auto a = f.call("POST", "/v1/chat/completions", r.body);
        EXPECT_EQ(a.status, 400u) << r.name << ": " << a.body.dump();
        EXPECT_NE(a.body["error"]["message"].get<std::string>().find(r.in_message), std::string::npos) << r.name << ": " << a.body.dump();
    }
}

// The request options that change how a generation ends or what it may say, each seen in the answer.
TEST(text_routes, request_options_shape_the_answer) {
    fixture f(1024);
    const json user = {{{"role", "user"}, {"content", "Tell me a story"}}};

    // max_completion_tokens (the newer name of max_tokens) caps the answer, over max_tokens: a length finish.
    auto capped = f.call("POST", "/v1/chat/completions",
                         json{{"model", "stories"}, {"messages", user}, {"max_completion_tokens", 5}, {"max_tokens", 9},
                              {"temperature", 0}}.dump());
    ASSERT_EQ(capped.status, 200u) << capped.body.dump();
    EXPECT_EQ(capped.body["usage"]["completion_tokens"], 5);
    EXPECT_EQ(capped.body["choices"][0]["finish_reason"], "length");

    // A stop string inside llama-server's greedy text ends the answer just before it (a stop finish).
    const json c = test::text_golden("server_greedy_f32.json")["cases"][1];  // once_upon
    const std::string golden = c["content"];
    const size_t at = golden.find("Lily");
    ASSERT_NE(at, std::string::npos);
    auto stopped = f.call("POST", "/v1/completions",
                          json{{"model", "stories"}, {"prompt", c["prompt"]}, {"max_tokens", 60}, {"temperature", 0},
                               {"stop", {"Lily", "never appears"}}}.dump());
    ASSERT_EQ(stopped.status, 200u) << stopped.body.dump();
    EXPECT_EQ(stopped.body["choices"][0]["text"], golden.substr(0, at));
    EXPECT_EQ(stopped.body["choices"][0]["finish_reason"], "stop");

    // The model's end of text (EOS, id 2, made certain by logit_bias): a stop finish, and
    // the EOS itself is neither text nor a counted completion token. Greedy stories260K never reaches EOS in
    // its first 128 positions (the goldens), so the bias is what ends it.
    auto eos = f.call("POST", "/v1/completions",
                      json{{"model", "stories"}, {"prompt", c["prompt"]}, {"max_tokens", 50}, {"temperature", 0},
                           {"logit_bias", {{"2", 100}}}}.dump());
    ASSERT_EQ(eos.status, 200u) << eos.body.dump();
    EXPECT_EQ(eos.body["choices"][0]["finish_reason"], "stop");
    EXPECT_EQ(eos.body["choices"][0]["text"], "");
    EXPECT_EQ(eos.body["usage"]["completion_tokens"], 0);

    // json_object: any JSON object, and it parses even when max_tokens cuts it (this story model writes
    // keys and values on and on): the last tokens close it, and the finish says length.
    for (int max_tokens : {2, 7, 40}) {
        auto obj = f.call("POST", "/v1/chat/completions",
                          json{{"model", "stories"}, {"messages", user}, {"max_tokens", max_tokens}, {"seed", 7},
                               {"temperature", 0.8}, {"response_format", {{"type", "json_object"}}}}.dump());
        ASSERT_EQ(obj.status, 200u) << obj.body.dump();
        const json doc = json::parse(obj.body["choices"][0]["message"]["content"].get<std::string>(), nullptr, false);
        EXPECT_TRUE(doc.is_object()) << obj.body.dump();
        EXPECT_EQ(obj.body["choices"][0]["finish_reason"], "length") << obj.body.dump();
        EXPECT_LE(obj.body["usage"]["completion_tokens"].get<int>(), max_tokens);
    }

    // A schema's properties come in the order the request declares them (not sorted by name).
    auto ordered = f.call("POST", "/v1/chat/completions",
                          R"({"model":"stories","messages":[{"role":"user","content":"x"}],"max_tokens":60,"temperature":0,
                              "response_format":{"type":"json_schema","json_schema":{"name":"o","schema":{"type":"object",
                              "properties":{"zeta":{"enum":[1]},"alpha":{"enum":[2]}},"required":["zeta","alpha"]}}}})");
    ASSERT_EQ(ordered.status, 200u) << ordered.body.dump();
    const std::string text = ordered.body["choices"][0]["message"]["content"];
    EXPECT_LT(text.find("zeta"), text.find("alpha")) << text;
    EXPECT_EQ(json::parse(text), (json{{"zeta", 1}, {"alpha", 2}}));

    // Tool choice: a named function is the one called; "none" answers in text; "auto" lets the model choose,
    // and whichever it chose comes back in its own shape.
    const json tools = {
        {{"type", "function"}, {"function", {{"name", "get_weather"}, {"parameters", {{"type", "object"}, {"properties", {{"city", {{"enum", {"Paris"}}}}}}, {"required", {"city"}}}}}}},
        {{"type", "function"}, {"function", {{"name", "get_time"}, {"parameters", {{"type", "object"}, {"properties", {{"zone", {{"enum", {"UTC"}}}}}}, {"required", {"zone"}}}}}}}};
    json named = {{"model", "stories"}, {"messages", user}, {"max_tokens", 300}, {"temperature", 0}, {"tools", tools},
                  {"tool_choice", {{"type", "function"}, {"function", {{"name", "get_time"}}}}}};
    auto t = f.call("POST", "/v1/chat/completions", named.dump());
    ASSERT_EQ(t.status, 200u) << t.body.dump();
    ASSERT_EQ(t.body["choices"][0]["message"]["tool_calls"].size(), 1u) << t.body.dump();
    EXPECT_EQ(t.body["choices"][0]["message"]["tool_calls"][0]["function"]["name"], "get_time");
    EXPECT_EQ(json::parse(t.body["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"].get<std::string>()),
              (json{{"zone", "UTC"}}));
    EXPECT_EQ(t.body["choices"][0]["finish_reason"], "tool_calls");

    named["tool_choice"] = "none";
    named["max_tokens"] = 8;
    auto none = f.call("POST", "/v1/chat/completions", named.dump());
    ASSERT_EQ(none.status, 200u) << none.body.dump();
    EXPECT_FALSE(none.body["choices"][0]["message"].contains("tool_calls")) << none.body.dump();
    EXPECT_TRUE(none.body["choices"][0]["message"]["content"].is_string());

    named["tool_choice"] = "auto";
    auto any = f.call("POST", "/v1/chat/completions", named.dump());
    ASSERT_EQ(any.status, 200u) << any.body.dump();
    const json& choice = any.body["choices"][0];
    if (choice["message"].contains("tool_calls")) {
        EXPECT_EQ(choice["finish_reason"], "tool_calls");
        EXPECT_TRUE(choice["message"]["content"].is_null());
    } else {
        EXPECT_TRUE(choice["message"]["content"].is_string()) << choice.dump();
        EXPECT_NE(choice["finish_reason"], "tool_calls");
    }
    // Streamed with tools on: a text answer streams as it is written (from its first visible byte), with its
    // logprobs; a call arrives whole. Either way the stream adds up to the answer above.
    json streamed = named;
    streamed["stream"] = true;
    streamed["logprobs"] = true;
    auto sst = f.call("POST", "/v1/chat/completions", streamed.dump());
    ASSERT_EQ(sst.status, 200u);
    auto [evs, done] = events(sst.raw.body());
    EXPECT_TRUE(done);
    std::string content;
    int content_chunks = 0, with_logprobs = 0;
    json calls = nullptr;
    for (const auto& e : evs) {
        if (e["choices"].empty()) continue;
        const json& d = e["choices"][0]["delta"];
        if (d.contains("tool_calls")) calls = d["tool_calls"];
        if (d.contains("content") && d["content"].is_string() && !d["content"].get<std::string>().empty()) {
            content += d["content"].get<std::string>();
            ++content_chunks;
            with_logprobs += e["choices"][0]["logprobs"].is_object();
        }
    }
    if (choice["message"].contains("tool_calls")) {
        ASSERT_FALSE(calls.is_null()) << sst.raw.body();
        EXPECT_EQ(calls[0]["function"], choice["message"]["tool_calls"][0]["function"]);
    } else {
        EXPECT_TRUE(calls.is_null()) << sst.raw.body();
        EXPECT_EQ(content, choice["message"]["content"].get<std::string>());
        EXPECT_GT(content_chunks, 1) << "a text answer came in one piece: " << sst.raw.body();
        EXPECT_EQ(with_logprobs, content_chunks);
    }
    // Without a seed, sampling differs from request to request (three identical 24-token samples at
    // temperature 1.5 would mean the seed is fixed); with one, it repeats.
    const json hot = {{"model", "stories"}, {"prompt", "Once upon a time"}, {"max_tokens", 24}, {"temperature", 1.5}};
    std::set<std::string> texts;
    for (int i = 0; i < 3; ++i) texts.insert(f.call("POST", "/v1/completions", hot.dump()).body["choices"][0]["text"].get<std::string>());
    EXPECT_GT(texts.size(), 1u) << "unseeded requests all sampled the same text";
    json seeded = hot;
    seeded["seed"] = 42;
    const std::string once = f.call("POST", "/v1/completions", seeded.dump()).body["choices"][0]["text"];
    seeded["max_tokens"] = 23;  // another request (not a cache hit), same seed: the same first 23 tokens
    const std::string twice = f.call("POST", "/v1/completions", seeded.dump()).body["choices"][0]["text"];
    EXPECT_EQ(once.substr(0, twice.size()), twice);
    EXPECT_EQ(f.spent(), 16 * k_price) << "sixteen requests, each billed once";
}

TEST(text_routes, a_client_that_leaves_mid_stream_stops_generation_and_is_not_billed) {
    fixture f(4096);  // room for a generation far longer than the client stays (4000 steps: ~seconds)
    test_client c(f.srv->port());
    const std::string body = R"({"model":"stories","prompt":"Once upon a time","max_tokens":4000,"stream":true,"seed":3})";
    ASSERT_FALSE(c.write("POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + f.key +
                         "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
                         "\r\n\r\n" + body));
    auto first = c.read_raw();
    ASSERT_TRUE(first);
    c.close();
    // Bounded wait for the stage to notice; the answer was never complete, so nothing is committed.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    json usage;
    while (std::chrono::steady_clock::now() < deadline) {
        usage = f.call("GET", "/v1/usage?group_by=outcome", "").body;
        if (usage["data"].size() == 1 && usage["data"][0]["group"] != "pending") break;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ASSERT_EQ(usage["data"].size(), 1u) << usage.dump();
    EXPECT_EQ(usage["data"][0]["group"], "cancelled");
    EXPECT_EQ(f.spent(), 0);
    EXPECT_EQ(f.text.find("stories")->running(), 0);
}

}  // namespace
}  // namespace mm::services
