#include "http_client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace mm::services {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

result<http_url> http_url_parse(std::string_view url) {
    constexpr std::string_view scheme = "http://";
    if (url.substr(0, scheme.size()) != scheme)
        return status(errc::invalid_argument, "expected an http:// URL, got '" + std::string(url) + "'");
    url.remove_prefix(scheme.size());
    const size_t slash = url.find('/');
    const std::string_view hostport = url.substr(0, slash);
    const size_t colon = hostport.rfind(':');
    http_url out{std::string(hostport.substr(0, colon)),
                 colon == std::string_view::npos ? "80" : std::string(hostport.substr(colon + 1)),
                 slash == std::string_view::npos ? "/" : std::string(url.substr(slash))};
    if (out.host.empty() || out.port.empty()) return status(errc::invalid_argument, "URL without a host or port");
    return out;
}

result<http_client_reply> http_call(const http_url& to, http::verb verb, std::string_view target, std::string body,
                                    const std::vector<std::pair<std::string, std::string>>& headers,
                                    std::chrono::milliseconds timeout) {
    const std::string where = "http://" + to.host + ":" + to.port;
    try {
        net::io_context ioc;
        beast::error_code ec;
        const auto endpoints = net::ip::tcp::resolver(ioc).resolve(to.host, to.port, ec);
        if (ec) return status(errc::io_error, where + ": " + ec.message());
        http::request<http::string_body> req{verb, beast::string_view(target.data(), target.size()), 11};
        req.set(http::field::host, to.host);
        req.set(http::field::user_agent, "mmserve");
        req.set(http::field::content_type, "application/json");
        for (const auto& [name, value] : headers) req.set(name, value);
        req.body() = std::move(body);
        req.prepare_payload();
        // Asynchronous, because the stream's deadline covers only asynchronous operations: a peer that
        // accepts and never answers costs `timeout`, not the caller forever.
        beast::tcp_stream stream(ioc);
        beast::flat_buffer buf;
        http::response<http::string_body> res;
        stream.expires_after(timeout);
        stream.async_connect(endpoints, [&](beast::error_code e, const auto&) {
            if ((ec = e)) return;
            http::async_write(stream, req, [&](beast::error_code e, size_t) {
                if ((ec = e)) return;
                http::async_read(stream, buf, res, [&](beast::error_code e, size_t) { ec = e; });
            });
        });
        ioc.run();
        if (ec) return status(errc::io_error, where + ": " + ec.message());
        stream.socket().shutdown(net::ip::tcp::socket::shutdown_both, ec);
        return http_client_reply{res.result_int(), std::move(res.body())};
    } catch (const std::exception& e) {
        return status(errc::io_error, where + ": " + e.what());
    }
}

}  // namespace mm::services
