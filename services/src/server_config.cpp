#include "services/server_config.h"

#include <fstream>
#include <functional>
#include <sstream>

#include <nlohmann/json.hpp>

namespace mm::services {
namespace {

using json = nlohmann::json;

status bad(const std::string& key, const std::string& what) {
    return status(errc::invalid_argument, key + ": " + what);
}

// Typed readers: each names the key it reads in its error, and never falls back to a default on a wrong type.
status read_string(const json& v, const std::string& key, std::string& out, bool allow_empty = false) {
    if (!v.is_string()) return bad(key, "expected a string");
    out = v.get<std::string>();
    if (!allow_empty && out.empty()) return bad(key, "must not be empty");
    return ok_status();
}

status read_int(const json& v, const std::string& key, int64_t lo, int64_t hi, int64_t& out) {
    if (!v.is_number_integer()) return bad(key, "expected an integer");
    if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) return bad(key, "out of range");
    const int64_t x = v.get<int64_t>();
    if (x < lo || x > hi) return bad(key, "expected " + std::to_string(lo) + ".." + std::to_string(hi) + ", got " + std::to_string(x));
    out = x;
    return ok_status();
}

// One declared field: its key, its help, and how a JSON value lands in the config.
struct field {
    const char* key;
    const char* help;
    std::function<status(const json&, server_config&, const std::filesystem::path& base)> apply;
};

template <class T>
std::function<status(const json&, server_config&, const std::filesystem::path&)> int_field(const char* key, int64_t lo,
                                                                                          int64_t hi, T server_config::*m) {
    return [=](const json& v, server_config& c, const std::filesystem::path&) {
        int64_t x = 0;
        MM_TRY(read_int(v, key, lo, hi, x));
        c.*m = static_cast<T>(x);
        return ok_status();
    };
}

constexpr int64_t k_max_i64 = INT64_MAX;

const std::vector<field>& limit_fields() {
    static const std::vector<field> f = {
        {"body_bytes", "largest JSON request body in bytes (default 1 MiB); larger gets 413",
         [](const json& v, server_config& c, auto&) {
             int64_t x = 0;
             MM_TRY(read_int(v, "limits.body_bytes", 1, int64_t{1} << 32, x));
             c.limits.body_bytes = static_cast<uint64_t>(x);
             return ok_status();
         }},
        {"upload_bytes", "largest multipart upload in bytes (default 25 MiB); larger gets 413",
         [](const json& v, server_config& c, auto&) {
             int64_t x = 0;
             MM_TRY(read_int(v, "limits.upload_bytes", 1, int64_t{1} << 34, x));
             c.limits.upload_bytes = static_cast<uint64_t>(x);
             return ok_status();
         }},
        {"ws_message_bytes", "largest WebSocket message a client may send, in bytes (default 1 MiB); larger closes with 1009",
         [](const json& v, server_config& c, auto&) {
             int64_t x = 0;
             MM_TRY(read_int(v, "limits.ws_message_bytes", 1, int64_t{1} << 30, x));
             c.limits.ws_message_bytes = static_cast<uint64_t>(x);
             return ok_status();
         }},
        {"header_timeout_ms", "time allowed for a request's headers (default 30000)",
         [](const json& v, server_config& c, auto&) { return read_int(v, "limits.header_timeout_ms", 1, 3'600'000, c.limits.header_timeout_ms); }},
        {"body_timeout_ms", "time allowed for a request's body after its header, uploads included (default 60000)",
         [](const json& v, server_config& c, auto&) { return read_int(v, "limits.body_timeout_ms", 1, 3'600'000, c.limits.body_timeout_ms); }},
        {"idle_timeout_ms", "how long a kept-alive connection may wait for its next request (default 30000)",
         [](const json& v, server_config& c, auto&) { return read_int(v, "limits.idle_timeout_ms", 1, 3'600'000, c.limits.idle_timeout_ms); }},
        {"shutdown_timeout_ms", "on SIGTERM/SIGINT, how long requests in flight get to finish before they are cancelled (default 5000)",
         [](const json& v, server_config& c, auto&) { return read_int(v, "limits.shutdown_timeout_ms", 1, 3'600'000, c.limits.shutdown_timeout_ms); }},
        {"max_connections", "open connections before new ones get 503 (default 256)",
         [](const json& v, server_config& c, auto&) { return read_int(v, "limits.max_connections", 1, 1'000'000, c.limits.max_connections); }},
        {"queue_depth", "requests waiting per stage before 429 (default 16)",
         [](const json& v, server_config& c, auto&) { return read_int(v, "limits.queue_depth", 1, 100'000, c.limits.queue_depth); }},
        {"memory_bytes", "memory all models may take, weights and caches (default 0: no budget); a model over it fails to load",
         [](const json& v, server_config& c, auto&) { return read_int(v, "limits.memory_bytes", 0, int64_t{1} << 50, c.limits.memory_bytes); }},
    };
    return f;
}

status apply_object(const json& v, const std::string& prefix, const std::vector<field>& fields, server_config& c,
                    const std::filesystem::path& base) {
    if (!v.is_object()) return bad(prefix, "expected an object");
    for (auto it = v.begin(); it != v.end(); ++it) {
        const field* f = nullptr;
        for (const auto& d : fields)
            if (it.key() == d.key) f = &d;
        const std::string name = prefix.empty() ? it.key() : prefix + "." + it.key();
        if (!f) return bad(name, "unknown key");
        MM_TRY(f->apply(it.value(), c, base));
    }
    return ok_status();
}

status apply_models(const json& v, server_config& c, const std::filesystem::path& base) {
    if (!v.is_array()) return bad("models", "expected a list of {\"id\", \"kind\", \"path\"}");
    for (size_t i = 0; i < v.size(); ++i) {
        const std::string at = "models[" + std::to_string(i) + "]";
        const json& m = v[i];
        if (!m.is_object()) return bad(at, "expected an object");
        model_config mc;
        bool has_kind = false, has_path = false;
        for (auto it = m.begin(); it != m.end(); ++it) {
            const std::string key = at + "." + it.key();
            if (it.key() == "id") {
                MM_TRY(read_string(it.value(), key, mc.id));
            } else if (it.key() == "kind") {
                std::string k;
                MM_TRY(read_string(it.value(), key, k));
                if (k == "llm") mc.kind = model_kind::llm;
                else if (k == "whisper") mc.kind = model_kind::whisper;
                else if (k == "diffusion") mc.kind = model_kind::diffusion;
                else return bad(key, "expected \"llm\", \"whisper\" or \"diffusion\", got \"" + k + "\"");
                has_kind = true;
            } else if (it.key() == "path") {
                std::string p;
                MM_TRY(read_string(it.value(), key, p));
                mc.path = std::filesystem::path(p).is_absolute() ? std::filesystem::path(p) : base / p;
                has_path = true;
            } else if (it.key() == "tokenizer") {
                std::string p;
                MM_TRY(read_string(it.value(), key, p));
                mc.tokenizer = std::filesystem::path(p).is_absolute() ? std::filesystem::path(p) : base / p;
            } else if (it.key() == "n_ctx" || it.key() == "n_parallel") {
                if (!it.value().is_number_integer()) return bad(key, "expected an integer");
                const int64_t n = it.value().get<int64_t>();
                const int64_t hi = it.key() == "n_ctx" ? 1 << 20 : 256;
                if (n < 1 || n > hi) return bad(key, "expected 1.." + std::to_string(hi));
                (it.key() == "n_ctx" ? mc.n_ctx : mc.n_parallel) = n;
            } else if (it.key() == "chat_template") {
                MM_TRY(read_string(it.value(), key, mc.chat_template));
            } else {
                return bad(key, "unknown key");
            }
        }
        if (mc.id.empty()) return bad(at + ".id", "required");
        if (!has_kind) return bad(at + ".kind", "required");
        if (!has_path) return bad(at + ".path", "required");
        for (const auto& other : c.models)
            if (other.id == mc.id) return bad(at + ".id", "duplicate model id \"" + mc.id + "\"");
        c.models.push_back(std::move(mc));
    }
    return ok_status();
}

status apply_prices(const json& v, server_config& c) {
    if (!v.is_object()) return bad("prices", "expected an object of endpoint -> integer micro-units");
    for (auto it = v.begin(); it != v.end(); ++it) {
        const std::string key = "prices." + it.key();
        bool known = false;
        for (auto e : price_endpoints()) known = known || e == it.key();
        if (!known) return bad(key, "unknown endpoint");
        int64_t x = 0;
        MM_TRY(read_int(it.value(), key, 0, k_max_i64, x));
        c.prices[it.key()] = x;
    }
    return ok_status();
}

const std::vector<field>& top_fields() {
    static const std::vector<field> f = {
        {"host", "address to listen on (default 127.0.0.1; 0.0.0.0 serves every interface)",
         [](const json& v, server_config& c, auto&) { return read_string(v, "host", c.host); }},
        {"port", "TCP port (default 8080; 0 lets the OS pick)", int_field("port", 0, 65535, &server_config::port)},
        {"data_dir", "folder for the ledger and the server secret (default ./data, relative to the config file)",
         [](const json& v, server_config& c, const std::filesystem::path& base) {
             std::string d;
             MM_TRY(read_string(v, "data_dir", d));
             c.data_dir = std::filesystem::path(d).is_absolute() ? std::filesystem::path(d) : base / d;
             return ok_status();
         }},
        {"admin_key", "the admin bearer key (or MMSERVE_ADMIN_KEY); generated and printed once if neither is set",
         [](const json& v, server_config& c, auto&) {
             MM_TRY(read_string(v, "admin_key", c.admin_key));
             if (c.admin_key.size() < 16) return bad("admin_key", "must be at least 16 characters");
             return ok_status();
         }},
        {"models", "list of {\"id\", \"kind\": \"llm\"|\"whisper\"|\"diffusion\", \"path\"} loaded at start-up",
         [](const json& v, server_config& c, const std::filesystem::path& base) { return apply_models(v, c, base); }},
        {"prices", "flat price per request in integer micro-units, by endpoint (see price endpoints)",
         [](const json& v, server_config& c, auto&) { return apply_prices(v, c); }},
        {"cache_price", "price of a request answered from the response cache (default 0)",
         [](const json& v, server_config& c, auto&) { return read_int(v, "cache_price", 0, k_max_i64, c.cache_price); }},
        {"limits", "object: body_bytes, upload_bytes, ws_message_bytes, header_timeout_ms, body_timeout_ms, idle_timeout_ms, shutdown_timeout_ms, max_connections, queue_depth, memory_bytes",
         [](const json& v, server_config& c, const std::filesystem::path& base) { return apply_object(v, "limits", limit_fields(), c, base); }},
        {"alerts", "object: webhook_url (budget alerts at 50/80/100% are POSTed there)",
         [](const json& v, server_config& c, auto&) {
             if (!v.is_object()) return bad("alerts", "expected an object");
             for (auto it = v.begin(); it != v.end(); ++it) {
                 if (it.key() != "webhook_url") return bad("alerts." + it.key(), "unknown key");
                 MM_TRY(read_string(it.value(), "alerts.webhook_url", c.alerts.webhook_url, true));
                 const auto& u = c.alerts.webhook_url;
                 if (!u.empty() && u.rfind("http://", 0) != 0)
                     return bad("alerts.webhook_url", u.rfind("https://", 0) == 0
                                                          ? "https is not supported yet: use an http:// URL (e.g. a relay on this host)"
                                                          : "expected an http:// URL");
             }
             return ok_status();
         }},
    };
    return f;
}

}  // namespace

std::string_view model_kind_name(model_kind k) {
    switch (k) {
        case model_kind::llm: return "llm";
        case model_kind::whisper: return "whisper";
        case model_kind::diffusion: return "diffusion";
    }
    return "llm";
}

const std::vector<std::string_view>& price_endpoints() {
    static const std::vector<std::string_view> e = {
        "chat.completions",        "completions",
        "audio.transcriptions",    "audio.translations",
        "images.generations",      "pipelines.transcribe_summarize",
        "pipelines.text_to_image", "pipelines.speech_to_image",
    };
    return e;
}

micros server_config::price(std::string_view endpoint) const {
    auto it = prices.find(endpoint);
    return it == prices.end() ? 0 : it->second;
}

result<server_config> server_config_parse(std::string_view json_text, const std::filesystem::path& base_dir) {
    json doc;
    try {
        doc = json::parse(json_text.begin(), json_text.end());
    } catch (const json::exception& e) {  // a syntax error, or a number too large to hold (found by fuzz_config)
        return status(errc::invalid_argument, std::string("config is not valid JSON: ") + e.what());
    }
    server_config c;
    c.data_dir = base_dir / c.data_dir;
    try {
        MM_TRY(apply_object(doc, "", top_fields(), c, base_dir));
    } catch (const json::exception& e) {  // a type surprise the readers missed is still a config error
        return status(errc::invalid_argument, std::string("config: ") + e.what());
    }
    return c;
}

result<server_config> server_config_load(const std::filesystem::path& file) {
    std::ifstream in(file, std::ios::binary);
    if (!in) return status(errc::not_found, "cannot read config file " + file.string());
    std::ostringstream ss;
    ss << in.rdbuf();
    auto c = server_config_parse(ss.str(), file.has_parent_path() ? file.parent_path() : std::filesystem::path("."));
    if (!c) return c.error().context(file.string());
    return c;
}

std::string server_config_help() {
    std::string out;
    for (const auto& f : top_fields()) {
        const std::string_view key = f.key;
        out += "  ";
        out += key;
        out.append(key.size() < 14 ? 14 - key.size() : 1, ' ');
        out += f.help;
        out += '\n';
    }
    out += "\n  price endpoints:";
    for (auto e : price_endpoints()) {
        out += ' ';
        out += e;
    }
    out += '\n';
    return out;
}

}  // namespace mm::services
