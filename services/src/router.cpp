#include "services/router.h"

#include <algorithm>
#include <exception>
#include <string_view>

#include "common/log.h"

namespace mm::services {

namespace http = boost::beast::http;

namespace {

std::string_view target_path(std::string_view target) { return target.substr(0, target.find('?')); }

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// A table path matches segment by segment; a "{name}" segment matches any one non-empty segment.
bool path_matches(std::string_view pattern, std::string_view path) {
    while (true) {
        const size_t pe = pattern.find('/'), te = path.find('/');
        const std::string_view ps = pattern.substr(0, pe), ts = path.substr(0, te);
        const bool wildcard = ps.size() > 2 && ps.front() == '{' && ps.back() == '}';
        if (wildcard ? ts.empty() : ps != ts) return false;
        if (pe == std::string_view::npos || te == std::string_view::npos) return pe == te;
        pattern.remove_prefix(pe + 1);
        path.remove_prefix(te + 1);
    }
}

std::string what_of(const http_request& req, std::string_view path) {
    return std::string(req.method_string()) + " " + std::string(path);
}

}  // namespace

std::string path_segment(const http_request& req, size_t index) {
    std::string_view path = target_path(std_view(req.target()));
    if (!path.empty() && path.front() == '/') path.remove_prefix(1);
    for (size_t i = 0; i < index && !path.empty(); ++i) {
        const size_t slash = path.find('/');
        path = slash == std::string_view::npos ? std::string_view{} : path.substr(slash + 1);
    }
    const std::string_view seg = path.substr(0, path.find('/'));
    std::string out;
    for (size_t i = 0; i < seg.size(); ++i) {  // percent-decoding; a malformed escape stays as it is
        if (seg[i] == '%' && i + 2 < seg.size() && hex_value(seg[i + 1]) >= 0 && hex_value(seg[i + 2]) >= 0) {
            out += static_cast<char>(hex_value(seg[i + 1]) * 16 + hex_value(seg[i + 2]));
            i += 2;
        } else {
            out += seg[i];
        }
    }
    return out;
}

route_reply error_reply(const status& s, std::vector<std::pair<std::string, std::string>> headers) {
    return {.status = http_error_for(s.code()).status, .body = http_error_body(s), .headers = std::move(headers)};
}

router::router(std::vector<route> routes) : routes_(std::move(routes)) {
    for (const auto& r : routes_) largest_body_limit_ = std::max(largest_body_limit_, r.body_limit);
}

uint64_t router::body_limit_max(uint64_t fallback) const { return std::max(fallback, largest_body_limit_); }

uint64_t router::body_limit(http::verb method, std::string_view target, uint64_t fallback) const {
    const std::string_view path = target_path(target);
    for (const auto& r : routes_)
        if (r.method == method && path_matches(r.path, path)) return r.body_limit ? r.body_limit : fallback;
    return fallback;
}

std::string_view router::route_label(const http_request& req) const {
    const std::string_view path = target_path(std_view(req.target()));
    for (const auto& r : routes_)
        if (path_matches(r.path, path)) return r.path;
    return "unmatched";
}

const route* router::ws_route(const http_request& req) const {
    const std::string_view path = target_path(std_view(req.target()));
    for (const auto& r : routes_)
        if (r.ws_handler && r.method == req.method() && path_matches(r.path, path)) return &r;
    return nullptr;
}

void router::dispatch(std::shared_ptr<const http_request> req, std::shared_ptr<responder> out) const {
    const std::string_view path = target_path(std_view(req->target()));
    std::string allow;  // methods the path does answer, for a 405
    for (const auto& r : routes_) {
        if (!path_matches(r.path, path)) continue;
        if (r.method != req->method()) {
            if (!allow.empty()) allow += ", ";
            allow += std_view(http::to_string(r.method));
            continue;
        }
        // A throw reaching here is a bug in the route, not bad input: answer 500 and keep serving. (An async
        // route that throws after answering is caught too; its second answer is ignored by the responder.)
        if (r.ws_handler)
            return out->reply(status(errc::invalid_argument, what_of(*req, path) +
                                                                 " is a WebSocket endpoint: connect with Upgrade: websocket"));
        try {
            if (r.async_handler) return r.async_handler(req, out);
            return out->reply(r.handler(*req));
        } catch (const std::exception& e) {
            log_error("route_threw", {{"path", r.path}, {"what", e.what()}});
            return out->reply(status(errc::internal, "route threw"));
        }
    }
    const std::string what = what_of(*req, path);
    if (allow.empty()) return out->reply(status(errc::not_found, "no route for " + what));
    const http_error_kind kind = http_error_method_not_allowed();
    out->reply(route_reply{.status = kind.status,
                           .body = http_error_body("method not allowed: " + what + " (allowed: " + allow + ")", kind),
                           .headers = {{"Allow", allow}}});
}

}  // namespace mm::services
