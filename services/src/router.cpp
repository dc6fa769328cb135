#include "services/router.h"

#include <atomic>
#include <chrono>
#include <exception>
#include <string_view>

#include "common/log.h"
#include "services/metrics.h"

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

http_response to_response(result<route_reply> reply, unsigned version, bool keep_alive) {
    if (!reply) return make_error_response(reply.error(), version, keep_alive);
    http_response res = make_response(reply->status, reply->content_type, std::move(reply->body), version, keep_alive);
    for (auto& [name, value] : reply->headers) res.set(beast_view(name), beast_view(value));
    return res;
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

void router::dispatch(std::shared_ptr<const http_request> req, bool keep_alive,
                      std::function<void(http_response)> done) const {
    if (stats_) {
        stats_->request_started();
        done = [stats = stats_, label = std::string(route_label(*req)), method = std::string(req->method_string()),
                start = std::chrono::steady_clock::now(), inner = std::move(done)](http_response res) {
            const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
            stats->request_finished(label, method, res.result_int(), secs);
            inner(std::move(res));
        };
    }
    const std::string_view path = target_path(std_view(req->target()));
    for (const auto& r : routes_) {
        if (!path_matches(r.path, path) || r.method != req->method() || !r.async_handler) continue;
        const unsigned version = req->version();
        auto once = std::make_shared<std::atomic<bool>>(false);
        reply_fn reply = [done, version, keep_alive, once](result<route_reply> rep) {
            MM_ASSERT(!once->exchange(true));  // a second reply is a bug in the route
            done(to_response(std::move(rep), version, keep_alive));
        };
        try {
            r.async_handler(req, reply);
        } catch (const std::exception& e) {
            log_error("route_threw", {{"path", r.path}, {"what", e.what()}});
            if (!once->load()) reply(status(errc::internal, "route threw"));
        }
        return;
    }
    done(handle(*req, keep_alive));
}

router::router(std::vector<route> routes, metrics* stats) : routes_(std::move(routes)), stats_(stats) {}

std::string_view router::route_label(const http_request& req) const {
    const std::string_view path = target_path(std_view(req.target()));
    for (const auto& r : routes_)
        if (path_matches(r.path, path)) return r.path;
    return "unmatched";
}

http_response router::handle(const http_request& req, bool keep_alive) const {
    const std::string_view path = target_path(std_view(req.target()));
    std::string allow;  // methods the path does answer, for a 405
    for (const auto& r : routes_) {
        if (!path_matches(r.path, path)) continue;
        if (r.method != req.method()) {
            if (!allow.empty()) allow += ", ";
            allow += std_view(http::to_string(r.method));
            continue;
        }
        MM_ASSERT(r.handler);  // async routes go through dispatch()
        result<route_reply> reply = status(errc::internal, "route threw");
        try {
            reply = r.handler(req);
        } catch (const std::exception& e) {
            // A throw reaching here is a bug in the route, not bad input; answer 500 and keep serving.
            log_error("route_threw", {{"path", r.path}, {"what", e.what()}});
        }
        return to_response(std::move(reply), req.version(), keep_alive);
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
