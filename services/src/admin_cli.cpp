#include "admin_cli.h"

#include <cctype>
#include <cstdio>

#include <boost/beast/http/verb.hpp>
#include <nlohmann/json.hpp>

#include "http_client.h"

namespace mm::services {
namespace {

namespace http = boost::beast::http;
using json = nlohmann::json;

constexpr int k_usage_error = 2;

const char* k_help =
    "usage:\n"
    "  mmserve keys create --user U [--budget MICROS] [--period month|day|none] [--rpm N] [--max-concurrent N]\n"
    "  mmserve keys list\n"
    "  mmserve keys revoke KEY_ID\n"
    "  mmserve users get USER\n"
    "  mmserve users set USER [--budget MICROS|none] [--period month|day|none]   (all of the user's keys together)\n"
    "  mmserve usage [--group-by key|endpoint|day|outcome] [--start UNIX_SECS] [--end UNIX_SECS] [--key KEY_ID]\n"
    "\n"
    "common options:\n"
    "  --url URL          the running server (default http://127.0.0.1:8080)\n"
    "  --admin-key KEY    the admin key (default: MMSERVE_ADMIN_KEY)\n";

struct parsed {
    std::vector<std::string_view> positional;
    std::vector<std::pair<std::string, std::string>> flags;  // --name value
};

bool parse(const std::vector<std::string_view>& args, parsed& out, std::string& error) {
    for (size_t i = 0; i < args.size(); ++i) {
        std::string_view a = args[i];
        if (a.rfind("--", 0) != 0) {
            out.positional.push_back(a);
            continue;
        }
        std::string name(a), value;
        if (auto eq = a.find('='); eq != std::string_view::npos) {
            name = std::string(a.substr(0, eq));
            value = std::string(a.substr(eq + 1));
        } else if (i + 1 < args.size()) {
            value = std::string(args[++i]);
        } else {
            error = name + ": missing value";
            return false;
        }
        out.flags.emplace_back(name, value);
    }
    return true;
}

std::optional<std::string> flag(const parsed& p, std::string_view name) {
    for (const auto& [n, v] : p.flags)
        if (n == name) return v;
    return std::nullopt;
}

// Sets body[field] from an integer flag; false (after saying why) when it is not one.
bool integer_flag(const parsed& p, const char* name, const char* field, json& body) {
    auto v = flag(p, name);
    if (!v) return true;
    try {
        size_t used = 0;
        body[field] = std::stoll(*v, &used);
        if (used != v->size()) throw std::invalid_argument(*v);
        return true;
    } catch (const std::exception&) {
        std::fprintf(stderr, "mmserve: %s: expected an integer, got '%s'\n", name, v->c_str());
        return false;
    }
}

// A path segment: every byte outside the unreserved set percent-escaped.
std::string path_escape(std::string_view s) {
    std::string out;
    for (unsigned char c : s) {
        if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
            out += static_cast<char>(c);
        } else {
            char esc[4];
            std::snprintf(esc, sizeof esc, "%%%02X", c);
            out += esc;
        }
    }
    return out;
}

// One request to the server; prints its JSON answer (pretty) on stdout, or its error on stderr.
int call(const std::string& url, const std::string& key, http::verb verb, const std::string& target,
         const std::string& body) {
    auto to = http_url_parse(url);
    if (!to) {
        std::fprintf(stderr, "mmserve: --url: %s\n", to.error().message().c_str());
        return k_usage_error;
    }
    auto res = http_call(*to, verb, target, body, {{"Authorization", "Bearer " + key}}, std::chrono::seconds(30));
    if (!res) {
        std::fprintf(stderr, "mmserve: cannot reach %s: %s\n", url.c_str(), res.error().message().c_str());
        return 1;
    }
    const json j = json::parse(res->body, nullptr, false);
    const std::string text = j.is_discarded() ? res->body : j.dump(2);
    if (res->status >= 400) {
        std::fprintf(stderr, "mmserve: the server answered %u:\n%s\n", res->status, text.c_str());
        return 1;
    }
    std::printf("%s\n", text.c_str());
    return 0;
}

}  // namespace

int admin_cli(std::string_view command, const std::vector<std::string_view>& args,
              const std::optional<std::string>& admin_key_env) {
    for (auto a : args)
        if (a == "--help" || a == "-h") {
            std::printf("%s", k_help);
            return 0;
        }
    parsed p;
    std::string error;
    if (!parse(args, p, error)) {
        std::fprintf(stderr, "mmserve: %s\n\n%s", error.c_str(), k_help);
        return k_usage_error;
    }
    const std::string url = flag(p, "--url").value_or("http://127.0.0.1:8080");
    const std::string key = flag(p, "--admin-key").value_or(admin_key_env.value_or(""));
    if (key.empty()) {
        std::fprintf(stderr, "mmserve: no admin key: set MMSERVE_ADMIN_KEY or pass --admin-key\n");
        return k_usage_error;
    }
    auto known = [&](std::initializer_list<std::string_view> names) {
        for (const auto& [n, v] : p.flags) {
            bool ok = n == "--url" || n == "--admin-key";
            for (auto k : names) ok = ok || n == k;
            if (!ok) {
                std::fprintf(stderr, "mmserve: unknown option '%s'\n\n%s", n.c_str(), k_help);
                return false;
            }
        }
        return true;
    };

    if (command == "usage") {
        if (!known({"--group-by", "--start", "--end", "--key"}) || !p.positional.empty()) return k_usage_error;
        std::string target = "/v1/usage?group_by=" + flag(p, "--group-by").value_or("day");
        for (auto [f, q] : {std::pair{"--start", "start"}, std::pair{"--end", "end"}, std::pair{"--key", "key"}})
            if (auto v = flag(p, f)) target += std::string("&") + q + "=" + *v;
        return call(url, key, http::verb::get, target, "");
    }
    const std::string_view sub = p.positional.empty() ? "" : p.positional[0];
    if (command == "users") {
        if (p.positional.size() != 2 || (sub != "get" && sub != "set")) {
            std::fprintf(stderr, "mmserve: expected 'users get USER' or 'users set USER ...'\n\n%s", k_help);
            return k_usage_error;
        }
        const std::string target = "/v1/admin/users/" + path_escape(p.positional[1]);
        if (sub == "get" && known({})) return call(url, key, http::verb::get, target, "");
        if (sub == "set" && known({"--budget", "--period"})) {
            json body = json::object();
            if (flag(p, "--budget") == "none") body["budget"] = nullptr;
            else if (!integer_flag(p, "--budget", "budget", body)) return k_usage_error;
            if (auto v = flag(p, "--period")) body["period"] = *v;
            return call(url, key, http::verb::put, target, body.dump());
        }
        return k_usage_error;  // known() said which option
    }
    // keys
    if (sub == "list" && p.positional.size() == 1 && known({})) return call(url, key, http::verb::get, "/v1/admin/keys", "");
    if (sub == "revoke" && p.positional.size() == 2 && known({}))
        return call(url, key, http::verb::delete_, "/v1/admin/keys/" + std::string(p.positional[1]), "");
    if (sub == "create" && p.positional.size() == 1 && known({"--user", "--budget", "--period", "--rpm", "--max-concurrent"})) {
        json body = json::object();
        for (auto [f, field] : {std::pair{"--budget", "budget"}, std::pair{"--rpm", "rpm"},
                                std::pair{"--max-concurrent", "max_concurrent"}})
            if (!integer_flag(p, f, field, body)) return k_usage_error;
        if (auto v = flag(p, "--user")) body["user"] = *v;
        if (auto v = flag(p, "--period")) body["period"] = *v;
        return call(url, key, http::verb::post, "/v1/admin/keys", body.dump());
    }
    std::fprintf(stderr, "mmserve: expected 'keys create|list|revoke', 'users get|set' or 'usage'\n\n%s", k_help);
    return k_usage_error;
}

}  // namespace mm::services
