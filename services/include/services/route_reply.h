// route_reply: what a route answers when it succeeds; a failure is a status, turned into HTTP by http_errors.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "common/status.h"

namespace mm::services {

struct route_reply {
    unsigned status = 200;
    std::string content_type = "application/json";
    std::string body = {};
    std::vector<std::pair<std::string, std::string>> headers = {};  // extra ones: Retry-After, x-ratelimit-*, ...
};

// An error that must carry headers too (429 with Retry-After): the body still comes from http_errors.
route_reply error_reply(const status& s, std::vector<std::pair<std::string, std::string>> headers = {});

}  // namespace mm::services
