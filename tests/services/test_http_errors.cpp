// The errc -> HTTP map: every errc has the row clients expect, and the body has exactly the OpenAI fields.
#include <set>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/status.h"
#include "services/http_errors.h"

namespace {

using mm::errc;
using mm::services::http_error_body;
using mm::services::http_error_for;
using json = nlohmann::json;

struct error_case {
    errc code;
    unsigned status;
    const char* type;
    const char* error_code;  // nullptr: JSON null
};

// One row per errc, written out by hand from the OpenAI API's statuses, types and codes.
constexpr error_case k_cases[] = {
    {errc::ok,                   500, "server_error",          nullptr},  // never an error: unmapped
    {errc::invalid_argument,     400, "invalid_request_error", nullptr},
    {errc::not_found,            404, "invalid_request_error", "not_found"},
    {errc::model_not_found,      404, "invalid_request_error", "model_not_found"},
    {errc::queue_full,           429, "requests",              "queue_full"},
    {errc::context_length_exceeded, 400, "invalid_request_error", "context_length_exceeded"},
    {errc::out_of_range,         400, "invalid_request_error", nullptr},
    {errc::corrupt_file,         500, "server_error",          nullptr},
    {errc::unsupported,          400, "invalid_request_error", "unsupported"},
    {errc::io_error,             500, "server_error",          nullptr},
    {errc::resource_exhausted,   413, "invalid_request_error", "request_too_large"},
    {errc::cancelled,            503, "server_error",          "cancelled"},
    {errc::deadline_exceeded,    504, "server_error",          "timeout"},
    {errc::unauthenticated,      401, "invalid_request_error", "invalid_api_key"},
    {errc::permission_denied,    403, "invalid_request_error", "permission_denied"},
    {errc::rate_limited,         429, "requests",              "rate_limit_exceeded"},
    {errc::budget_exhausted,     429, "insufficient_quota",    "insufficient_quota"},
    {errc::request_timeout,      408, "invalid_request_error", "request_timeout"},
    {errc::idempotency_running,  409, "invalid_request_error", "idempotency_key_in_use"},
    {errc::idempotency_mismatch, 422, "invalid_request_error", "idempotency_key_reused"},
    {errc::idempotency_unreplayable, 409, "invalid_request_error", "idempotency_answer_not_kept"},
    {errc::overloaded,           503, "server_error",          "overloaded"},
    {errc::internal,             500, "server_error",          nullptr},
};

json code_json(const char* c) { return c ? json(c) : json(nullptr); }

TEST(http_errors, every_errc_maps_to_its_row) {
    for (const auto& c : k_cases) {
        const auto kind = http_error_for(c.code);
        const char* name = mm::errc_name(c.code);
        EXPECT_EQ(kind.status, c.status) << name;
        EXPECT_STREQ(kind.type, c.type) << name;
        EXPECT_EQ(code_json(kind.code), code_json(c.error_code)) << name;
    }
}

// errc::internal is the last enumerator; a new errc added before it without a row here fails this test.
TEST(http_errors, table_covers_every_errc) {
    std::set<int> covered;
    for (const auto& c : k_cases) covered.insert(static_cast<int>(c.code));
    for (int i = 0; i <= static_cast<int>(errc::internal); ++i)
        EXPECT_TRUE(covered.count(i)) << "no test row for errc " << mm::errc_name(static_cast<errc>(i));
    EXPECT_STREQ(mm::errc_name(static_cast<errc>(static_cast<int>(errc::internal) + 1)), "unknown")
        << "an errc after internal: add its row here and in http_errors.cpp";
}

TEST(http_errors, unknown_errc_is_500) {
    const auto kind = http_error_for(static_cast<errc>(1000));
    EXPECT_EQ(kind.status, 500u);
    EXPECT_STREQ(kind.type, "server_error");
}

TEST(http_errors, method_not_allowed_is_405) {
    const auto kind = mm::services::http_error_method_not_allowed();
    EXPECT_EQ(kind.status, 405u);
    EXPECT_STREQ(kind.type, "invalid_request_error");
    EXPECT_STREQ(kind.code, "method_not_allowed");
}

struct body_case {
    const char* name;
    mm::status s;
    json want;  // the whole body
};

TEST(http_errors, body_has_exactly_the_openai_fields) {
    const body_case cases[] = {
        {"null_code_null_param", mm::status(errc::invalid_argument, "bad field"),
         {{"error",
           {{"message", "bad field"}, {"type", "invalid_request_error"}, {"param", nullptr}, {"code", nullptr}}}}},
        {"code_and_param", mm::status(errc::rate_limited, "slow down", "model"),
         {{"error",
           {{"message", "slow down"}, {"type", "requests"}, {"param", "model"}, {"code", "rate_limit_exceeded"}}}}},
        {"quotes_and_newlines", mm::status(errc::not_found, "no \"x\"\nhere"),
         {{"error", {{"message", "no \"x\"\nhere"}, {"type", "invalid_request_error"}, {"param", nullptr},
                     {"code", "not_found"}}}}},
        {"invalid_utf8_replaced", mm::status(errc::not_found, "path /\xff"),
         {{"error", {{"message", "path /\xef\xbf\xbd"}, {"type", "invalid_request_error"}, {"param", nullptr},
                     {"code", "not_found"}}}}},
    };
    for (const auto& c : cases) {
        const std::string body = http_error_body(c.s);
        json got;
        ASSERT_NO_THROW(got = json::parse(body)) << c.name << ": " << body;
        EXPECT_EQ(got, c.want) << c.name << ": " << body;
        ASSERT_TRUE(got.contains("error")) << c.name;
        EXPECT_EQ(got.size(), 1u) << c.name;
        EXPECT_EQ(got["error"].size(), 4u) << c.name;
    }
}

TEST(http_errors, body_fields_in_openai_order) {
    const std::string body = http_error_body(mm::status(errc::overloaded, "busy"));
    EXPECT_EQ(body, R"({"error":{"message":"busy","type":"server_error","param":null,"code":"overloaded"}})");
}

}  // namespace
