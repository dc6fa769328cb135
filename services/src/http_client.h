// A small blocking HTTP/1.1 client for the server's own outgoing calls (alert webhooks, the admin CLI).
// http:// only; https needs a TLS proxy in front. Thread safety: each call is independent.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/beast/http/verb.hpp>

#include "common/status.h"

namespace mm::services {

struct http_url {
    std::string host, port, target;  // target: the path and query, "/" when the URL has none
};
// "http://host[:port][/path]"; invalid_argument otherwise.
result<http_url> http_url_parse(std::string_view url);

struct http_client_reply {
    unsigned status = 0;
    std::string body;
};

// One request on a fresh connection, everything bounded by timeout. io_error when the server cannot be
// reached or the exchange fails; any HTTP status is a reply.
result<http_client_reply> http_call(const http_url& to, boost::beast::http::verb verb, std::string_view target,
                                    std::string body, const std::vector<std::pair<std::string, std::string>>& headers,
                                    std::chrono::milliseconds timeout);

}  // namespace mm::services
