// model_loader: loads every configured model at start-up, in configuration order, reporting progress to
// the registry (/ready) and to the terminal, and hands each loaded stage to its routes. A model that fails
// is marked failed with the reason; the others still load.
#pragma once

#include "common/thread_pool.h"
#include "services/metrics.h"
#include "services/model_registry.h"
#include "services/server_config.h"
#include "text_routes.h"

namespace mm::services {

// Blocks until every model has loaded or failed; run it beside the server so /ready can report meanwhile.
// stats (optional) gets each stage's queue depth for /metrics.
void load_models(const server_config& config, model_registry& registry, text_models& text, thread_pool& pool,
                 metrics* stats = nullptr);

}  // namespace mm::services
