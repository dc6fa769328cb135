// The server's route table. Each area adds its rows here; its handlers live in their own files.
#pragma once

#include <vector>

#include "services/router.h"

namespace mm::services {

class metrics;

std::vector<route> server_routes();

// GET /metrics: Prometheus text from stats (which must outlive the server).
route metrics_route(const metrics& stats);

// GET /health: liveness only; answers while the process can serve HTTP at all.
result<route_reply> handle_health(const http_request& req);

}  // namespace mm::services
