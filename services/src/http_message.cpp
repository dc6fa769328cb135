#include "services/http_message.h"

#include <boost/beast/http/field.hpp>

namespace mm::services {

namespace http = boost::beast::http;

http_response make_response(unsigned status, std::string_view content_type, std::string body, unsigned version,
                            bool keep_alive) {
    http_response res{static_cast<http::status>(status), version};
    res.set(http::field::server, "mmserve");
    res.set(http::field::content_type, beast_view(content_type));
    res.body() = std::move(body);
    res.keep_alive(keep_alive);
    res.prepare_payload();
    return res;
}

http_response make_error_response(const status& s, unsigned version, bool keep_alive) {
    return make_response(http_error_for(s.code()).status, "application/json", http_error_body(s), version, keep_alive);
}

http_response make_error_response(std::string_view message, const http_error_kind& kind, unsigned version,
                                  bool keep_alive) {
    return make_response(kind.status, "application/json", http_error_body(message, kind), version, keep_alive);
}

}  // namespace mm::services
