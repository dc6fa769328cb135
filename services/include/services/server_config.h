// server_config: the one configuration, filled once at start-up from the JSON file and then the flags,
// validated, and passed down by const&. Its JSON keys are a contract outside acceptance tests use: extend,
// never rename. Each field is declared once (name, default, help) in server_config.cpp; --help and the
// start-up log come from that declaration.
// Thread safety: immutable after load; share freely.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "services/money.h"

namespace mm::services {

enum class model_kind { llm, whisper, diffusion };
std::string_view model_kind_name(model_kind k);

struct model_config {
    std::string id;
    model_kind kind = model_kind::llm;
    std::filesystem::path path;  // relative paths resolve against the config file's folder
    // llm options (optional): a llama2.c checkpoint's tokenizer file, the serving context per sequence,
    // sequences decoded together, and the chat format used when the model names none.
    std::filesystem::path tokenizer{};
    int64_t n_ctx = 0;       // 0: the model's own, at most 4096
    int64_t n_parallel = 4;
    std::string chat_template{};
};

struct limits_config {
    uint64_t body_bytes = 1 << 20;          // JSON request bodies
    uint64_t upload_bytes = 25ull << 20;    // multipart uploads (audio)
    uint64_t ws_message_bytes = 1 << 20;    // one WebSocket message from a client
    int64_t header_timeout_ms = 30'000;     // the whole request header, from its first byte
    int64_t body_timeout_ms = 60'000;       // the whole request body, after its header (uploads included)
    int64_t idle_timeout_ms = 30'000;       // a kept-alive connection between requests
    int64_t shutdown_timeout_ms = 5'000;    // a graceful stop: what requests in flight get to finish
    int64_t max_connections = 256;
    int64_t queue_depth = 16;               // waiting requests per stage before 429
    int64_t memory_bytes = 0;               // all models' weights and caches; 0: no budget
};

struct alerts_config {
    std::string webhook_url;  // empty: alerts are recorded and logged only
};

struct server_config {
    std::string host = "127.0.0.1";
    uint16_t port = 8080;
    std::filesystem::path data_dir = "data";
    std::string admin_key;  // empty: taken from MMSERVE_ADMIN_KEY, else generated at first start
    std::vector<model_config> models;
    std::map<std::string, micros, std::less<>> prices;  // endpoint -> flat price per request
    micros cache_price = 0;
    limits_config limits;
    alerts_config alerts;

    // The price of one request to endpoint ("chat.completions", "pipelines.text_to_image"); 0 when unset.
    micros price(std::string_view endpoint) const;
};

// The endpoints a price can name: the API's billable routes and the pipelines.
const std::vector<std::string_view>& price_endpoints();

// Parses a config document. base_dir resolves relative paths. Unknown keys and bad values are errors that
// name the key ("limits.body_bytes: expected a positive integer").
result<server_config> server_config_parse(std::string_view json_text, const std::filesystem::path& base_dir);
result<server_config> server_config_load(const std::filesystem::path& file);

// The documented keys, one line each, for --help.
std::string server_config_help();

}  // namespace mm::services
