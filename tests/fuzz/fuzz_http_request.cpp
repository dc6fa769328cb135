// libFuzzer target: HTTP/1.1 request framing as the server reads it (Beast's parser with the server's header
// and body limits, fed in two pieces as a socket would), then the router: path matching, percent-decoded
// segments, 404/405 answers. Every input is refused by the parser or answered exactly once with a real status.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include <boost/beast/http.hpp>

#include "services/responder.h"
#include "services/router.h"

namespace {

namespace http = boost::beast::http;
using namespace mm::services;

// As the server's defaults: 8 KiB of header, the JSON body limit.
constexpr uint32_t k_header_limit = 8 << 10;
constexpr uint64_t k_body_limit = 1 << 20;

struct counting_responder : responder {
    int answers = 0;
    unsigned status = 0;
    mm::cancel_token token;
    void reply(mm::result<route_reply> r) override {
        ++answers;
        status = r ? r->status : 500;
    }
    void stream_begin(route_reply head) override {
        ++answers;
        status = head.status;
    }
    void stream_write(std::string) override {}
    void stream_end(std::string) override {}
    void stream_fail(mm::status) override {}
    const mm::cancel_token& cancel() const override { return token; }
};

const router& table() {
    static const router r([] {
        std::vector<route> routes;
        auto echo = [](const http_request& req) -> mm::result<route_reply> {
            return route_reply{.body = path_segment(req, 2) + path_segment(req, 3)};
        };
        routes.push_back({http::verb::get, "/v1/models", echo});
        routes.push_back({http::verb::get, "/v1/models/{id}", echo});
        routes.push_back({http::verb::delete_, "/v1/admin/keys/{id}", echo});
        routes.push_back({http::verb::post, "/v1/audio/transcriptions", echo, nullptr, 25 << 20});
        return routes;
    }());
    return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view in(reinterpret_cast<const char*>(data), size);
    http::request_parser<http::string_body> parser;
    parser.header_limit(k_header_limit);
    parser.body_limit(k_body_limit);
    parser.eager(true);
    boost::beast::error_code ec;
    // Like a socket read loop: bytes the parser did not take stay buffered and are offered again, with the next
    // piece after them (Beast's need_more contract).
    const size_t split = size ? data[0] % (size + 1) : 0;
    std::string buffered;
    for (std::string_view piece : {in.substr(0, split), in.substr(split)}) {
        buffered.append(piece);
        while (!buffered.empty() && !parser.is_done()) {
            const size_t n = parser.put(boost::asio::buffer(buffered.data(), buffered.size()), ec);
            buffered.erase(0, n);
            if (ec == http::error::need_more) {
                ec = {};
                break;  // wait for the next piece
            }
            if (ec) return 0;
            if (n == 0) break;
        }
    }
    if (!parser.is_done()) return 0;
    auto req = std::make_shared<const http_request>(parser.release());
    auto out = std::make_shared<counting_responder>();
    table().dispatch(req, out);
    if (out->answers != 1 || out->status < 200 || out->status > 599) __builtin_trap();
    for (size_t i = 0; i < 6; ++i) (void)path_segment(*req, i);
    return 0;
}
