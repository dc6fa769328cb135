// Dispatches a request to the route whose method and path match, as a table: (method, path, handler).
// Thread safety: immutable after construction; share freely across sessions.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <boost/beast/http/verb.hpp>

#include "common/status.h"
#include "services/http_message.h"

namespace mm::services {

// What a route answers when it succeeds; a failure is a status, turned into HTTP by http_errors.
struct route_reply {
    unsigned status = 200;
    std::string content_type = "application/json";
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers = {};  // extra ones: Retry-After, x-ratelimit-*, ...
};

// Segment `index` of the request's path (0: "v1" in "/v1/models/x"), percent-decoded; empty past the end.
std::string path_segment(const http_request& req, size_t index);

// An error that must carry headers too (429 with Retry-After): the body still comes from http_errors.
route_reply error_reply(const status& s, std::vector<std::pair<std::string, std::string>> headers = {});

// Answers at once, on the session's strand: for cheap routes (health, models, admin reads).
using route_handler = std::function<result<route_reply>(const http_request&)>;

// Answers later, from any thread: reply must be called exactly once. For routes that wait on the ledger or a
// stage, which must not hold an io thread. The request stays alive until reply is called.
using reply_fn = std::function<void(result<route_reply>)>;
using async_route_handler = std::function<void(std::shared_ptr<const http_request>, reply_fn)>;

struct route {
    boost::beast::http::verb method;
    std::string path;  // matched against the target without its query; a "{name}" segment matches any one segment
    route_handler handler;              // one of the two is set
    async_route_handler async_handler = nullptr;
};

class metrics;

class router {
public:
    // stats: where each answered request is counted (may be null).
    explicit router(std::vector<route> routes, metrics* stats = nullptr);

    // Always answers, through done (inline for a plain route, from any thread for an async one): the route's
    // reply, its status as an error, 404 for an unknown path, or 405 with an Allow header for a known path
    // asked with another method. keep_alive is the connection's decision.
    void dispatch(std::shared_ptr<const http_request> req, bool keep_alive,
                  std::function<void(http_response)> done) const;
    // The plain-route answer, for callers that know the route is not async (tests).
    http_response handle(const http_request& req, bool keep_alive) const;

private:
    // The table path a request matched (a 405 counts under its path), or "unmatched".
    std::string_view route_label(const http_request& req) const;

    std::vector<route> routes_;
    metrics* stats_;
};

}  // namespace mm::services
