#include "router.h"

#include <exception>
#include <string_view>

#include "common/log.h"

namespace mm::services {

namespace http = boost::beast::http;

namespace {

std::string_view target_path(std::string_view target) { return target.substr(0, target.find('?')); }

}  // namespace

router::router(std::vector<route> routes) : routes_(std::move(routes)) {}

http_response router::handle(const http_request& req, bool keep_alive) const {
    const std::string_view path = target_path(std_view(req.target()));
    std::string allow;  // methods the path does answer, for a 405
    for (const auto& r : routes_) {
        if (r.path != path) continue;
        if (r.method != req.method()) {
            if (!allow.empty()) allow += ", ";
            allow += std_view(http::to_string(r.method));
            continue;
        }
        result<route_reply> reply = status(errc::internal, "route threw");
        try {
            reply = r.handler(req);
        } catch (const std::exception& e) {
            // A throw reaching here is a bug in the route, not bad input; answer 500 and keep serving.
            log_error("route_threw", {{"path", r.path}, {"what", e.what()}});
        }
        if (!reply) return make_error_response(reply.error(), req.version(), keep_alive);
        return make_response(reply->status, reply->content_type, std::move(reply->body), req.version(), keep_alive);
    }
    const std::string what = std::string(req.method_string()) + " " + std::string(path);
    if (allow.empty())
        return make_error_response(status(errc::not_found, "no route for " + what), req.version(), keep_alive);
    http_response res = make_error_response("method not allowed: " + what + " (allowed: " + allow + ")",
                                            http_error_method_not_allowed(), req.version(), keep_alive);
    res.set(http::field::allow, beast_view(allow));
    return res;
}

}  // namespace mm::services
