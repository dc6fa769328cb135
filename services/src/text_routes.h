// text_routes: POST /v1/chat/completions and POST /v1/completions, OpenAI's request, response and stream
// chunk shapes, each request billed once through the meter. A client that leaves stops its generation
// within one decode step (each choice's cancel token is a child of the responder's).
// Thread safety: the routes are called from any thread; the stages must outlive the server.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "meter.h"
#include "services/model_registry.h"
#include "services/router.h"
#include "text/text_stage.h"

namespace mm::services {

// The loaded text stages, filled as models finish loading at start-up; they stay until the process ends.
// Thread safety: thread-safe.
class text_models {
public:
    void add(std::unique_ptr<text::text_stage> s);
    text::text_stage* find(std::string_view id) const;  // null when not loaded
    std::vector<std::string> ids() const;

private:
    mutable std::mutex mu_;
    std::vector<std::unique_ptr<text::text_stage>> stages_;  // guarded by mu_
};

// A request naming a model that is not loaded gets 404 model_not_found, or 503 while the registry says it is
// still loading.
std::vector<route> text_routes(meter& m, const text_models& stages, const model_registry& registry);

}  // namespace mm::services
