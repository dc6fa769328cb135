// The model routes: /v1/models, /v1/models/{id}, /ready. models must outlive the server.
#pragma once

#include <vector>

#include "services/model_registry.h"
#include "services/router.h"

namespace mm::services {

std::vector<route> model_routes(const model_registry& models);

}  // namespace mm::services
