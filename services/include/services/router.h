// Dispatches a request to the route whose method and path match, as a table: (method, path, handler).
// Thread safety: immutable after construction; share freely across sessions.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <boost/beast/http/verb.hpp>

#include "common/status.h"
#include "services/http_message.h"
#include "services/responder.h"
#include "services/route_reply.h"
#include "services/ws_channel.h"

namespace mm::services {

// Answers at once, on the session's strand: for cheap routes (health, models, admin reads).
using route_handler = std::function<result<route_reply>(const http_request&)>;

// Answers later, from any thread, through the responder: for routes that wait on the ledger or a stage,
// which must not hold an io thread, and for streams (SSE). The request stays alive while the responder does.
using async_route_handler = std::function<void(std::shared_ptr<const http_request>, std::shared_ptr<responder>)>;

struct route {
    boost::beast::http::verb method;
    std::string path;  // matched against the target without its query; a "{name}" segment matches any one segment
    route_handler handler;                      // one of the three is set
    async_route_handler async_handler = nullptr;
    uint64_t body_limit = 0;                    // bytes; 0: the server's body_limit (uploads set their own)
    ws_route_handler ws_handler = nullptr;      // a WebSocket endpoint (method GET): answers upgrades only
};

// Segment `index` of the request's path (0: "v1" in "/v1/models/x"), percent-decoded; empty past the end.
std::string path_segment(const http_request& req, size_t index);

class router {
public:
    explicit router(std::vector<route> routes);

    // Always answers through out: the route's answer, its status as an error, 404 for an unknown path, or 405
    // with an Allow header for a known path asked with another method.
    void dispatch(std::shared_ptr<const http_request> req, std::shared_ptr<responder> out) const;

    // The WebSocket route an upgrade request asks for, or null (then it is dispatched as plain HTTP).
    const route* ws_route(const http_request& req) const;

    // The largest body any route takes (fallback when none asks for more): the limit while a header is read,
    // since Beast checks Content-Length against it as soon as the header ends.
    uint64_t body_limit_max(uint64_t fallback) const;
    // The body limit for a request with this method and target, known from its header alone.
    uint64_t body_limit(boost::beast::http::verb method, std::string_view target, uint64_t fallback) const;

    // The table path a request matches (a 405 counts under its path), or "unmatched": the metrics label.
    std::string_view route_label(const http_request& req) const;

private:
    std::vector<route> routes_;
    uint64_t largest_body_limit_ = 0;  // the largest route-specific limit, fixed at construction
};

}  // namespace mm::services
