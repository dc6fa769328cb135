// WebSocket routes: a route accepts an upgrade by returning the ws_handler that will receive the connection's
// messages, and talks back through the ws_channel it was given. The session applies every channel call in
// order on its strand; the handler's callbacks run on that strand too, so they must be quick (post compute to
// a stage, never run it there).
// Thread safety: ws_channel is thread-safe; a ws_handler is called from one strand at a time.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/cancel.h"
#include "common/status.h"
#include "services/http_message.h"

namespace mm::services {

struct ws_message {
    std::string data;
    bool binary = false;
};

// RFC 6455 close codes a route uses.
enum class ws_close_code : uint16_t {
    normal = 1000,
    going_away = 1001,     // the server is stopping
    policy = 1008,         // the client broke the endpoint's rules (bad event, over budget)
    too_big = 1009,
    internal_error = 1011,
    try_again_later = 1013,
};

class ws_channel {
public:
    virtual ~ws_channel() = default;
    // Queued behind earlier sends; dropped once the connection is closing. A client that lets too many queue
    // up (it does not read) is disconnected.
    virtual void send(ws_message m) = 0;
    // Sends what is queued, then the close frame; the client's reply ends the connection.
    virtual void close(ws_close_code code, std::string reason) = 0;
    // Fires when the connection ends for any reason: the client closed or vanished, a limit was hit, the
    // server is stopping. Work started for this connection stops when it fires.
    virtual const cancel_token& cancel() const = 0;
};

class ws_handler {
public:
    virtual ~ws_handler() = default;
    virtual void on_message(ws_message m) = 0;
    // The connection has ended (after cancel() fired); no more messages come. Called once.
    virtual void on_close() = 0;
};

// Called on the session's strand with the upgrade request, before the handshake is answered: an error is
// answered as plain HTTP (401, 404, ...) and no upgrade happens. Sends on the channel before the handshake
// completes wait for it.
using ws_route_handler =
    std::function<result<std::shared_ptr<ws_handler>>(const http_request&, std::shared_ptr<ws_channel>)>;

}  // namespace mm::services
