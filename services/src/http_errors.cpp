#include "services/http_errors.h"

#include <nlohmann/json.hpp>

namespace mm::services {
namespace {

struct http_error_row {
    errc code;
    http_error_kind kind;
};

// Types and codes are the ones the OpenAI API and SDKs use, so client error classes match.
constexpr http_error_row k_rows[] = {  // errc                    HTTP  type / code
    {errc::invalid_argument,     {400, "invalid_request_error", nullptr}},
    {errc::out_of_range,         {400, "invalid_request_error", nullptr}},
    {errc::unsupported,          {400, "invalid_request_error", "unsupported"}},
    {errc::unauthenticated,      {401, "invalid_request_error", "invalid_api_key"}},
    {errc::permission_denied,    {403, "invalid_request_error", "permission_denied"}},
    {errc::not_found,            {404, "invalid_request_error", "not_found"}},
    {errc::model_not_found,      {404, "invalid_request_error", "model_not_found"}},
    {errc::request_timeout,      {408, "invalid_request_error", "request_timeout"}},
    {errc::idempotency_running,  {409, "invalid_request_error", "idempotency_key_in_use"}},
    {errc::resource_exhausted,   {413, "invalid_request_error", "request_too_large"}},
    {errc::idempotency_mismatch, {422, "invalid_request_error", "idempotency_key_reused"}},
    {errc::idempotency_unreplayable, {409, "invalid_request_error", "idempotency_answer_not_kept"}},
    {errc::rate_limited,         {429, "requests",              "rate_limit_exceeded"}},
    {errc::budget_exhausted,     {429, "insufficient_quota",    "insufficient_quota"}},
    {errc::queue_full,           {429, "requests",              "queue_full"}},  // at once, with Retry-After
    {errc::context_length_exceeded, {400, "invalid_request_error", "context_length_exceeded"}},
    {errc::corrupt_file,         {500, "server_error",          nullptr}},  // a model file: the server's fault
    {errc::io_error,             {500, "server_error",          nullptr}},
    {errc::internal,             {500, "server_error",          nullptr}},
    {errc::cancelled,            {503, "server_error",          "cancelled"}},  // shutdown; a gone client reads nothing
    {errc::overloaded,           {503, "server_error",          "overloaded"}},
    {errc::deadline_exceeded,    {504, "server_error",          "timeout"}},
};

constexpr http_error_kind k_unmapped{500, "server_error", nullptr};

}  // namespace

http_error_kind http_error_for(errc c) {
    for (const auto& row : k_rows)
        if (row.code == c) return row.kind;
    return k_unmapped;
}

http_error_kind http_error_method_not_allowed() { return {405, "invalid_request_error", "method_not_allowed"}; }

std::string http_error_body(std::string_view message, const http_error_kind& kind, std::string_view param) {
    using json = nlohmann::ordered_json;  // fields in the order OpenAI writes them
    json error = {
        {"message", message},
        {"type", kind.type},
        {"param", param.empty() ? json(nullptr) : json(param)},
        {"code", kind.code ? json(kind.code) : json(nullptr)},
    };
    // replace: message and param may carry a client's invalid UTF-8, which must not throw here.
    return json{{"error", std::move(error)}}.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace mm::services
