#include "unserved_routes.h"

#include <string>

namespace mm::services {
namespace {

namespace http = boost::beast::http;

std::string no_model(const char* stage, const char* kind, const char* example_path) {
    return std::string("This server has no ") + stage + " model. Add one to the config's \"models\" list, e.g. {\"id\": \"" +
           kind + "\", \"kind\": \"" + kind + "\", \"path\": \"" + example_path + "\"}, once this build has the " + stage +
           " stage (it does not yet; only \"llm\" models load today).";
}

// Authenticates (a bad key is still 401), then answers model_not_found.
async_route_handler missing(meter& m, std::string message) {
    return [&m, message = std::move(message)](std::shared_ptr<const http_request> req, std::shared_ptr<responder> out) {
        m.run_blocking([&m, message, req, out] {
            auto who = m.authenticate(*req);
            if (!who) return out->reply(who.error());
            out->reply(status(errc::model_not_found, message));
        });
    };
}

// WebSocket endpoints refuse the upgrade with the same 404 (before any key check: the handshake runs on the
// network strand, which must not wait on the ledger).
ws_route_handler missing_ws(std::string message) {
    return [message = std::move(message)](const http_request&, std::shared_ptr<ws_channel>) -> result<std::shared_ptr<ws_handler>> {
        return status(errc::model_not_found, message);
    };
}

}  // namespace

std::vector<route> unserved_routes(meter& m, uint64_t upload_limit) {
    const std::string speech = no_model("speech", "whisper", "ggml-base.bin");
    const std::string image = no_model("image", "diffusion", "shapes-t2i.safetensors");
    const std::string pipeline =
        "No pipeline runs here yet: transcribe_summarize, text_to_image and speech_to_image need the speech and "
        "image stages, which this build does not have. " + speech;
    std::vector<route> out = {
        {http::verb::post, "/v1/audio/transcriptions", nullptr, missing(m, speech), upload_limit},
        {http::verb::post, "/v1/audio/translations", nullptr, missing(m, speech), upload_limit},
        {http::verb::post, "/v1/images/generations", nullptr, missing(m, image)},
        {http::verb::post, "/v1/pipelines/{name}", nullptr, missing(m, pipeline), upload_limit},
    };
    route realtime{http::verb::get, "/v1/realtime", nullptr};
    realtime.ws_handler = missing_ws(speech);
    out.push_back(std::move(realtime));
    route pipeline_ws{http::verb::get, "/v1/pipelines/{name}", nullptr};
    pipeline_ws.ws_handler = missing_ws(pipeline);
    out.push_back(std::move(pipeline_ws));
    return out;
}

}  // namespace mm::services
