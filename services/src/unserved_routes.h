// unserved_routes: the endpoints of stages this server has no model for (speech, images, pipelines). They
// are routed, so a client gets what a hosted API would say for a missing model (after its key is checked,
// 404 model_not_found with how to add one) rather than "no route"; upload endpoints take the upload limit,
// so a too-large file still gets 413 first. Unbilled: nothing runs.
// Thread safety: the routes are called from any thread; the meter must outlive the server.
#pragma once

#include <cstdint>
#include <vector>

#include "meter.h"
#include "services/router.h"

namespace mm::services {

std::vector<route> unserved_routes(meter& m, uint64_t upload_limit);

}  // namespace mm::services
