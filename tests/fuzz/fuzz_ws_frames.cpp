// libFuzzer target: WebSocket frames from a client, read by Beast's websocket stream configured exactly as the
// server's ws_session configures it (message limit, no compression), over an in-memory stream fed in small
// reads. Every input ends in messages no larger than the limit and then an orderly error: no crash, no hang.
#include <cstddef>
#include <cstdint>

#include <boost/asio/io_context.hpp>
#include <boost/beast/_experimental/test/stream.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;

// Small enough that fuzzed lengths cross it often (the server's default is 1 MiB; the code path is the same).
constexpr uint64_t k_message_limit = 4096;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    boost::asio::io_context ioc;
    beast::test::stream client(ioc);
    websocket::stream<beast::test::stream> ws(ioc);
    ws.next_layer().connect(client);
    // The first byte picks how many bytes each socket read returns, so frames arrive split at every offset.
    ws.next_layer().read_size(1 + data[0] % 64);

    http::request<http::empty_body> upgrade{http::verb::get, "/v1/realtime", 11};
    upgrade.set(http::field::host, "a");
    upgrade.set(http::field::upgrade, "websocket");
    upgrade.set(http::field::connection, "Upgrade");
    upgrade.set(http::field::sec_websocket_key, "dGhlIHNhbXBsZSBub25jZQ==");
    upgrade.set(http::field::sec_websocket_version, "13");
    ws.read_message_max(k_message_limit);
    ws.auto_fragment(false);
    beast::error_code ec;
    ws.accept(upgrade, ec);
    if (ec) __builtin_trap();  // a valid upgrade must be accepted

    ws.next_layer().append(beast::string_view(reinterpret_cast<const char*>(data + 1), size - 1));
    client.close();  // then EOF: every read loop below ends
    for (int n = 0; n < 100'000; ++n) {
        beast::flat_buffer buf;
        ws.read(buf, ec);
        if (ec) return 0;
        if (buf.size() > k_message_limit) __builtin_trap();
    }
    __builtin_trap();  // more messages than bytes could encode: the reader loops
}
