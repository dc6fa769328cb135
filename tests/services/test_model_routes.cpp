// /v1/models, /v1/models/{id} and /ready through a real server, as models load.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "services/model_routes.h"
#include "services/server.h"
#include "test_client.h"

namespace mm::services {
namespace {

using json = nlohmann::json;
using mm::test::test_client;

TEST(model_routes, ready_waits_for_every_model_and_models_lists_the_loaded) {
    model_registry models;
    models.add("stories", model_kind::llm);
    models.add("whisper-tiny", model_kind::whisper);
    auto table = server_routes();
    for (auto& r : model_routes(models)) table.push_back(std::move(r));
    server_params p;
    p.host = "127.0.0.1";
    p.port = 0;
    server srv(p, std::move(table));
    ASSERT_TRUE(srv.start());
    test_client c(srv.port());
    auto get = [&](const std::string& path) {
        auto res = c.request("GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n");
        EXPECT_TRUE(res) << path;
        return std::make_pair(res ? res->result_int() : 0u, res ? json::parse(res->body()) : json());
    };

    models.progress("stories", 3, 4);
    auto [st, body] = get("/ready");
    EXPECT_EQ(st, 503u);
    EXPECT_EQ(body["status"], "loading");
    EXPECT_EQ(body["models"][0]["state"], "loading");
    EXPECT_DOUBLE_EQ(body["models"][0]["progress"].get<double>(), 0.75);
    EXPECT_EQ(get("/v1/models").second["data"].size(), 0u) << "a model still loading is not listed";

    models.ready("stories", 1700000000);
    models.failed("whisper-tiny", "file not found");
    std::tie(st, body) = get("/ready");
    EXPECT_EQ(st, 503u) << "a failed model keeps the server not ready";
    EXPECT_EQ(body["models"][1]["error"], "file not found");

    auto [lst, list] = get("/v1/models");
    EXPECT_EQ(lst, 200u);
    EXPECT_EQ(list["object"], "list");
    ASSERT_EQ(list["data"].size(), 1u);
    EXPECT_EQ(list["data"][0], (json{{"id", "stories"}, {"object", "model"}, {"created", 1700000000},
                                     {"owned_by", "mmserve"}, {"kind", "llm"}}));

    auto [one_st, one] = get("/v1/models/stories");
    EXPECT_EQ(one_st, 200u);
    EXPECT_EQ(one["id"], "stories");
    auto [missing_st, missing] = get("/v1/models/gpt-4%2Fturbo");
    EXPECT_EQ(missing_st, 404u);
    EXPECT_EQ(missing["error"]["code"], "model_not_found");
    EXPECT_NE(missing["error"]["message"].get<std::string>().find("gpt-4/turbo"), std::string::npos) << "decoded id";
    EXPECT_EQ(get("/v1/models/").first, 404u) << "an empty id segment matches no route";
    EXPECT_EQ(get("/v1/models/a/b").first, 404u);
}

TEST(model_routes, no_models_is_ready) {
    model_registry models;
    EXPECT_TRUE(models.all_ready());
}

}  // namespace
}  // namespace mm::services
