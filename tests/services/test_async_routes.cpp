// Routes that answer later, from another thread (what metered and compute routes need), and replies that
// carry headers (429 with Retry-After), through a real server on 127.0.0.1.
#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "services/server.h"
#include "test_client.h"

namespace mm::services {
namespace {

using mm::test::test_client;
namespace http = boost::beast::http;

// An async route whose answer is released by the test, from a thread of its own.
struct held_route {
    std::mutex mu;
    std::vector<reply_fn> waiting;  // guarded by mu
    std::promise<void> arrived;
    std::atomic<int> n_arrived{0};
};

std::vector<route> routes_with(held_route& held) {
    auto table = server_routes();
    table.push_back({http::verb::post, "/test/held", nullptr,
                     [&held](std::shared_ptr<const http_request> req, reply_fn reply) {
                         std::lock_guard lock(held.mu);
                         held.waiting.push_back(std::move(reply));
                         if (++held.n_arrived == 1) held.arrived.set_value();
                     }});
    table.push_back({http::verb::get, "/test/limited",
                     [](const http_request&) -> result<route_reply> {
                         return error_reply(status(errc::rate_limited, "slow down"), {{"Retry-After", "7"}});
                     }});
    return table;
}

std::unique_ptr<server> start(std::vector<route> table) {
    server_params p;
    p.host = "127.0.0.1";
    p.port = 0;
    auto s = std::make_unique<server>(p, std::move(table));
    EXPECT_TRUE(s->start());
    return s;
}

TEST(async_routes, answer_from_another_thread_while_the_server_serves_others) {
    held_route held;
    auto srv = start(routes_with(held));
    test_client slow(srv->port());
    ASSERT_FALSE(slow.write("POST /test/held HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"));
    ASSERT_EQ(held.arrived.get_future().wait_for(std::chrono::seconds(10)), std::future_status::ready);

    // The held request occupies no io thread: health answers meanwhile, on another connection.
    test_client other(srv->port());
    auto health = other.request("GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    ASSERT_TRUE(health);
    EXPECT_EQ(health->result_int(), 200u);

    reply_fn reply;
    {
        std::lock_guard lock(held.mu);
        reply = held.waiting.at(0);
    }
    std::thread([reply] { reply(route_reply{.status = 201, .body = R"({"done":true})", .headers = {{"X-Mm", "1"}}}); })
        .join();
    auto res = slow.read();
    ASSERT_TRUE(res);
    EXPECT_EQ(res->result_int(), 201u);
    EXPECT_EQ(res->body(), R"({"done":true})");
    EXPECT_EQ(res->at("X-Mm"), "1");

    // Kept alive after an async answer: the same connection serves the next request.
    auto again = slow.request("GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    ASSERT_TRUE(again);
    EXPECT_EQ(again->result_int(), 200u);
}

TEST(async_routes, an_async_error_is_openai_shaped) {
    held_route held;
    auto srv = start(routes_with(held));
    test_client c(srv->port());
    ASSERT_FALSE(c.write("POST /test/held HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"));
    ASSERT_EQ(held.arrived.get_future().wait_for(std::chrono::seconds(10)), std::future_status::ready);
    {
        std::lock_guard lock(held.mu);
        held.waiting.at(0)(status(errc::budget_exhausted, "key budget spent"));
    }
    auto res = c.read();
    ASSERT_TRUE(res);
    EXPECT_EQ(res->result_int(), 429u);
    const auto body = nlohmann::json::parse(res->body());
    EXPECT_EQ(body["error"]["code"], "insufficient_quota");
    EXPECT_EQ(body["error"]["message"], "key budget spent");
}

TEST(async_routes, error_reply_carries_its_headers) {
    held_route held;
    auto srv = start(routes_with(held));
    test_client c(srv->port());
    auto res = c.request("GET /test/limited HTTP/1.1\r\nHost: x\r\n\r\n");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->result_int(), 429u);
    EXPECT_EQ(res->at(http::field::retry_after), "7");
    EXPECT_EQ(nlohmann::json::parse(res->body())["error"]["code"], "rate_limit_exceeded");
}

}  // namespace
}  // namespace mm::services
