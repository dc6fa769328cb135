// Dispatches a request to the route whose method and path match, as a table: (method, path, handler).
// Thread safety: immutable after construction; share freely across sessions.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <boost/beast/http/verb.hpp>

#include "common/status.h"
#include "http_message.h"

namespace mm::services {

// What a route answers when it succeeds; a failure is a status, turned into HTTP by http_errors.
struct route_reply {
    unsigned status = 200;
    std::string content_type = "application/json";
    std::string body;
};

using route_handler = std::function<result<route_reply>(const http_request&)>;

struct route {
    boost::beast::http::verb method;
    std::string path;  // exact match against the target without its query string
    route_handler handler;
};

class router {
public:
    explicit router(std::vector<route> routes);

    // Always answers: the route's reply, its status as an error, 404 for an unknown path, or 405 with an Allow
    // header for a known path asked with another method. keep_alive is the connection's decision.
    http_response handle(const http_request& req, bool keep_alive) const;

private:
    std::vector<route> routes_;
};

}  // namespace mm::services
