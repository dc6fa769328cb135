#include "services/routes.h"

#include "services/metrics.h"

namespace mm::services {

namespace http = boost::beast::http;

result<route_reply> handle_health(const http_request&) { return route_reply{.body = R"({"status":"ok"})"}; }

route metrics_route(const metrics& stats) {
    return {http::verb::get, "/metrics", [&stats](const http_request&) -> result<route_reply> {
                return route_reply{.content_type = "text/plain; version=0.0.4; charset=utf-8", .body = stats.render()};
            }};
}

std::vector<route> server_routes() {
    return {
        {http::verb::get, "/health", handle_health},
    };
}

}  // namespace mm::services
