#include "account_routes.h"

#include <charconv>

#include <nlohmann/json.hpp>

#include "common/json_nesting.h"

namespace mm::services {
namespace {

namespace http = boost::beast::http;
using json = nlohmann::json;

enum class allowed { admin, user, both };

// Runs a ledger-calling handler on the meter's workers after checking who may call it.
async_route_handler on_workers(meter& m, allowed who_may,
                               std::function<result<route_reply>(const http_request&, const caller&)> fn) {
    return [&m, who_may, fn = std::move(fn)](std::shared_ptr<const http_request> req, std::shared_ptr<responder> out) {
        m.run_blocking([&m, who_may, fn, req, out] {
            auto who = m.authenticate(*req);
            if (!who) return out->reply(who.error());
            if (who_may == allowed::admin && !who->admin)
                return out->reply(status(errc::permission_denied, "this route needs the admin key"));
            if (who_may == allowed::user && who->admin)
                return out->reply(status(errc::permission_denied, "the admin key has no budget; use a user key"));
            try {
                out->reply(fn(*req, *who));
            } catch (const json::exception& e) {
                out->reply(status(errc::invalid_argument, std::string("bad request body: ") + e.what()));
            }
        });
    };
}

result<json> parse_body(const http_request& req) {
    if (req.body().empty()) return json::object();
    if (!json_nesting_within(req.body()))
        return status(errc::invalid_argument, "request body nests deeper than " + std::to_string(k_json_max_nesting) + " levels");
    json j = json::parse(req.body(), nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return status(errc::invalid_argument, "request body is not valid JSON");
    if (!j.is_object()) return status(errc::invalid_argument, "request body must be a JSON object");
    return j;
}

status read_nonneg(const json& body, const char* field, int64_t& out) {
    if (!body.contains(field)) return ok_status();
    const json& v = body[field];
    if (!v.is_number_integer() || v.get<int64_t>() < 0 || (v.is_number_unsigned() && v.get<uint64_t>() > INT64_MAX))
        return status(errc::invalid_argument, std::string(field) + ": expected a non-negative integer", field);
    out = v.get<int64_t>();
    return ok_status();
}

// budget (integer micro-units, or null / absent for none) and period, as both key and user bodies carry them.
status read_budget(const json& body, std::optional<micros>& budget, period& p) {
    if (body.contains("budget") && !body["budget"].is_null()) {
        int64_t b = 0;
        MM_TRY(read_nonneg(body, "budget", b));
        budget = b;
    }
    if (body.contains("period")) {
        const status wrong(errc::invalid_argument, "period: expected \"month\", \"day\" or \"none\"", "period");
        if (!body["period"].is_string()) return wrong;
        auto parsed = period_parse(body["period"].get<std::string>());
        if (!parsed) return wrong;
        p = *parsed;
    }
    return ok_status();
}

status only_fields(const json& body, std::initializer_list<const char*> allowed) {
    for (auto it = body.begin(); it != body.end(); ++it) {
        bool ok = false;
        for (const char* a : allowed) ok = ok || it.key() == a;
        if (!ok) return status(errc::invalid_argument, it.key() + ": unknown field", it.key());
    }
    return ok_status();
}

json budget_json(const budget_view& b) {
    json j = {{"budget", b.budget ? json(*b.budget) : json(nullptr)},
              {"period", period_name(b.budget_period)},
              {"period_start", b.range.start_ms / 1000},
              {"period_end", b.range.end_ms == INT64_MAX ? json(nullptr) : json(b.range.end_ms / 1000)},
              {"spent", b.spent},
              {"reserved", b.reserved},
              {"remaining", b.remaining ? json(*b.remaining) : json(nullptr)}};
    return j;
}

json key_json(const key_info& k) {
    return {{"id", k.id},
            {"object", "api_key"},
            {"user", k.user},
            {"prefix", k.prefix},
            {"budget", k.limits.budget ? json(*k.limits.budget) : json(nullptr)},
            {"period", period_name(k.limits.budget_period)},
            {"rpm", k.limits.rpm},
            {"max_concurrent", k.limits.max_concurrent},
            {"created", k.created_ms / 1000},
            {"revoked", k.revoked_ms ? json(*k.revoked_ms / 1000) : json(nullptr)}};
}

// ?name=value from the query string, undecoded (the values here are numbers and enum words).
std::optional<std::string> query_param(const http_request& req, std::string_view name) {
    std::string_view t = std_view(req.target());
    const size_t q = t.find('?');
    if (q == std::string_view::npos) return std::nullopt;
    t.remove_prefix(q + 1);
    while (!t.empty()) {
        const std::string_view pair = t.substr(0, t.find('&'));
        const size_t eq = pair.find('=');
        if (pair.substr(0, eq) == name) return std::string(eq == std::string_view::npos ? "" : pair.substr(eq + 1));
        if (pair.size() == t.size()) break;
        t.remove_prefix(pair.size() + 1);
    }
    return std::nullopt;
}

status query_seconds(const http_request& req, const char* name, int64_t& ms) {
    auto v = query_param(req, name);
    if (!v) return ok_status();
    int64_t s = 0;
    auto [end, ec] = std::from_chars(v->data(), v->data() + v->size(), s);
    if (ec != std::errc() || end != v->data() + v->size() || s < 0 || s > INT64_MAX / 1000)
        return status(errc::invalid_argument, std::string(name) + ": expected unix seconds", name);
    ms = s * 1000;
    return ok_status();
}

result<route_reply> create_key(meter& m, const http_request& req) {
    auto body = parse_body(req);
    if (!body) return body.error();
    MM_TRY(only_fields(*body, {"user", "budget", "period", "rpm", "max_concurrent"}));
    if (!body->contains("user") || !(*body)["user"].is_string() || (*body)["user"].get<std::string>().empty())
        return status(errc::invalid_argument, "user: required, a non-empty string", "user");
    key_create_params p{.user = (*body)["user"].get<std::string>(), .limits = {}};
    MM_TRY(read_budget(*body, p.limits.budget, p.limits.budget_period));
    MM_TRY(read_nonneg(*body, "rpm", p.limits.rpm));
    MM_TRY(read_nonneg(*body, "max_concurrent", p.limits.max_concurrent));
    auto created = m.book().key_create(p);
    if (!created) return created.error();
    auto info = m.book().key_get(created->id);
    if (!info) return info.error();
    json j = key_json(*info);
    j["key"] = created->secret;  // shown once
    return route_reply{.status = 201, .body = j.dump()};
}

result<route_reply> set_user(meter& m, const http_request& req) {
    const std::string user = path_segment(req, 3);
    auto body = parse_body(req);
    if (!body) return body.error();
    MM_TRY(only_fields(*body, {"budget", "period"}));
    std::optional<micros> budget;
    period p = period::month;
    MM_TRY(read_budget(*body, budget, p));
    MM_TRY(m.book().user_set_budget(user, budget, p));
    return route_reply{.body = json{{"user", user}, {"budget", budget ? json(*budget) : json(nullptr)},
                                    {"period", period_name(p)}}.dump()};
}

result<route_reply> get_user(meter& m, const http_request& req) {
    auto r = m.book().user_report_get(path_segment(req, 3));
    if (!r) return r.error();
    json j = budget_json(r->budget);
    j["object"] = "user";
    j["user"] = r->user.name;
    json keys = json::array();
    for (const auto& k : r->keys) keys.push_back(key_json(k));
    j["keys"] = keys;
    return route_reply{.body = j.dump()};
}

result<route_reply> usage(meter& m, const http_request& req, const caller& who) {
    usage_query q;
    MM_TRY(query_seconds(req, "start", q.start_ms));
    int64_t end = INT64_MAX;
    if (query_param(req, "end")) MM_TRY(query_seconds(req, "end", end));
    q.end_ms = end;
    if (auto g = query_param(req, "group_by")) {
        auto parsed = usage_group_parse(*g);
        if (!parsed) return status(errc::invalid_argument, "group_by: expected key, endpoint, day or outcome", "group_by");
        q.group_by = *parsed;
    }
    if (!who.admin) {
        q.key_id = who.key.id;  // a user key sees its own requests
    } else if (auto k = query_param(req, "key")) {
        q.key_id = *k;
    }
    auto rows = m.book().usage(q);
    if (!rows) return rows.error();
    json data = json::array();
    for (const auto& r : *rows)
        data.push_back({{"group", r.group}, {"requests", r.requests}, {"billed_requests", r.billed_requests},
                        {"charged", r.charged}, {"outcomes", r.outcomes}});
    return route_reply{.body = json{{"object", "list"}, {"group_by", query_param(req, "group_by").value_or("day")},
                                    {"data", data}}.dump()};
}

}  // namespace

std::vector<route> account_routes(meter& m) {
    return {
        {http::verb::post, "/v1/admin/keys", nullptr,
         on_workers(m, allowed::admin, [&m](const http_request& req, const caller&) { return create_key(m, req); })},
        {http::verb::get, "/v1/admin/keys", nullptr,
         on_workers(m, allowed::admin, [&m](const http_request&, const caller&) -> result<route_reply> {
             json data = json::array();
             for (const auto& k : m.book().key_list()) data.push_back(key_json(k));
             return route_reply{.body = json{{"object", "list"}, {"data", data}}.dump()};
         })},
        {http::verb::delete_, "/v1/admin/keys/{id}", nullptr,
         on_workers(m, allowed::admin, [&m](const http_request& req, const caller&) -> result<route_reply> {
             const std::string id = path_segment(req, 3);
             MM_TRY(m.book().key_revoke(id));
             return route_reply{.body = json{{"id", id}, {"object", "api_key"}, {"deleted", true}}.dump()};
         })},
        {http::verb::put, "/v1/admin/users/{user}", nullptr,
         on_workers(m, allowed::admin, [&m](const http_request& req, const caller&) { return set_user(m, req); })},
        {http::verb::get, "/v1/admin/users/{user}", nullptr,
         on_workers(m, allowed::admin, [&m](const http_request& req, const caller&) { return get_user(m, req); })},
        {http::verb::get, "/v1/me", nullptr,
         on_workers(m, allowed::user, [&m](const http_request&, const caller& who) -> result<route_reply> {
             auto me = m.book().me(who.key.id);
             if (!me) return me.error();
             json j = {{"key", key_json(me->key)}, {"user", me->key.user}, {"key_budget", budget_json(me->key_budget)}};
             j["user_budget"] = me->user_budget ? budget_json(*me->user_budget) : json(nullptr);
             return route_reply{.body = j.dump()};
         })},
        {http::verb::get, "/v1/usage", nullptr,
         on_workers(m, allowed::both, [&m](const http_request& req, const caller& who) { return usage(m, req, who); })},
    };
}

}  // namespace mm::services
