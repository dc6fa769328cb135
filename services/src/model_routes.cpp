// GET /v1/models, GET /v1/models/{id} (OpenAI's shapes, plus our "kind") and GET /ready (503 with load
// progress until every configured model is loaded).
#include "services/model_routes.h"

#include <nlohmann/json.hpp>

namespace mm::services {
namespace {

namespace http = boost::beast::http;
using json = nlohmann::json;

json model_json(const model_entry& m) {
    return {{"id", m.id}, {"object", "model"}, {"created", m.created}, {"owned_by", "mmserve"},
            {"kind", std::string(model_kind_name(m.kind))}};
}

const char* state_name(model_state s) {
    switch (s) {
        case model_state::loading: return "loading";
        case model_state::ready: return "ready";
        case model_state::failed: return "failed";
    }
    return "loading";
}

}  // namespace

std::vector<route> model_routes(const model_registry& models) {
    return {
        {http::verb::get, "/v1/models",
         [&models](const http_request&) -> result<route_reply> {
             json data = json::array();
             for (const auto& m : models.all())
                 if (m.state == model_state::ready) data.push_back(model_json(m));
             return route_reply{.body = json{{"object", "list"}, {"data", data}}.dump()};
         }},
        {http::verb::get, "/v1/models/{id}",
         [&models](const http_request& req) -> result<route_reply> {
             const std::string id = path_segment(req, 2);
             auto m = models.find(id);
             if (!m || m->state != model_state::ready)
                 return status(errc::model_not_found, "The model '" + id + "' does not exist or is not loaded");
             return route_reply{.body = model_json(*m).dump()};
         }},
        {http::verb::get, "/ready",
         [&models](const http_request&) -> result<route_reply> {
             json list = json::array();
             for (const auto& m : models.all()) {
                 json e = {{"id", m.id}, {"kind", std::string(model_kind_name(m.kind))}, {"state", state_name(m.state)},
                           {"done", m.done}, {"total", m.total}};
                 if (m.total > 0) e["progress"] = static_cast<double>(m.done) / static_cast<double>(m.total);
                 if (m.state == model_state::failed) e["error"] = m.error;
                 list.push_back(std::move(e));
             }
             const bool ready = models.all_ready();
             return route_reply{.status = ready ? 200u : 503u,
                                .body = json{{"status", ready ? "ready" : "loading"}, {"models", list}}.dump(),
                                .headers = ready ? decltype(route_reply::headers){} : decltype(route_reply::headers){{"Retry-After", "1"}}};
         }},
    };
}

}  // namespace mm::services
