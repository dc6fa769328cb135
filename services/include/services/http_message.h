// The request and response types every session and route shares, and the few ways a response is built.
// Error responses take a status (or an http_error_kind) so their bodies always come from http_errors.
#pragma once

#include <string>
#include <string_view>

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include "common/status.h"
#include "services/http_errors.h"

namespace mm::services {

using http_request = boost::beast::http::request<boost::beast::http::string_body>;
using http_response = boost::beast::http::response<boost::beast::http::string_body>;

// Boost 1.74's Beast speaks boost::string_view; these cross to and from std::string_view without copying.
inline std::string_view std_view(boost::beast::string_view s) { return {s.data(), s.size()}; }
inline boost::beast::string_view beast_view(std::string_view s) { return {s.data(), s.size()}; }

// version: the request's (10 or 11); keep_alive: whether the connection stays open after this response.
http_response make_response(unsigned status, std::string_view content_type, std::string body, unsigned version,
                            bool keep_alive);
http_response make_error_response(const status& s, unsigned version, bool keep_alive);
http_response make_error_response(std::string_view message, const http_error_kind& kind, unsigned version,
                                  bool keep_alive);

}  // namespace mm::services
