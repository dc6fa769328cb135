// The one map from an internal errc to an HTTP status and an OpenAI error body
// {"error":{"message","type","param","code"}}. Routes return a status; only this map turns it into HTTP.
// Thread safety: pure functions over constant tables; call from anywhere.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"

namespace mm::services {

struct http_error_kind {
    unsigned status;   // HTTP status code
    const char* type;  // OpenAI error type, e.g. "invalid_request_error"
    const char* code;  // OpenAI error code; nullptr is written as JSON null
};

// Every errc has a row; anything without one (ok included: an ok status is never an error) is 500 server_error.
http_error_kind http_error_for(errc c);

// 405 is a protocol answer with no errc behind it; only the router gives it, together with an Allow header.
http_error_kind http_error_method_not_allowed();

// The JSON body. message and param may hold client bytes (a path, a field name): invalid UTF-8 is replaced,
// never thrown on. An empty param is written as null.
std::string http_error_body(std::string_view message, const http_error_kind& kind, std::string_view param = {});
inline std::string http_error_body(const status& s) {
    return http_error_body(s.message(), http_error_for(s.code()), s.param());
}

}  // namespace mm::services
