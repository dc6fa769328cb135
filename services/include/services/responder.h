// responder: how a route answers, exactly once: whole (reply) or as a stream of chunks (stream_begin,
// stream_write..., stream_end or stream_fail). Every call may come from any thread; the session applies them in order on
// its strand. cancel() fires when the client goes away (or the server is stopping), so a route can stop its
// stage within a step and void its charge; writes after that are dropped.
// Thread safety: thread-safe.
#pragma once

#include <string>

#include "common/cancel.h"
#include "common/status.h"
#include "services/route_reply.h"

namespace mm::services {

class responder {
public:
    virtual ~responder() = default;
    virtual void reply(result<route_reply> r) = 0;
    // Starts a chunked response with head's status, content type and headers (its body is ignored).
    virtual void stream_begin(route_reply head) = 0;
    virtual void stream_write(std::string chunk) = 0;
    // Ends the stream with last_chunk (may be empty) as its final data, e.g. SSE's "data: [DONE]": the meter
    // commits the charge before it, so a client that has the stream's end has been billed durably.
    virtual void stream_end(std::string last_chunk) = 0;
    // The last byte of a stream whose work failed after its head went out (the route has told the client,
    // e.g. with an error event): nothing is billed.
    virtual void stream_fail(status why) = 0;
    virtual const cancel_token& cancel() const = 0;
};

}  // namespace mm::services
