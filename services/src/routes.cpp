#include "services/routes.h"

namespace mm::services {

namespace http = boost::beast::http;

result<route_reply> handle_health(const http_request&) { return route_reply{.body = R"({"status":"ok"})"}; }

std::vector<route> server_routes() {
    return {
        {http::verb::get, "/health", handle_health},
    };
}

}  // namespace mm::services
