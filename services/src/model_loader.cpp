#include "model_loader.h"

#include <algorithm>
#include <ctime>

#include "common/log.h"
#include "common/progress.h"

namespace mm::services {

void load_models(const server_config& config, model_registry& registry, text_models& text, thread_pool& pool,
                 metrics* stats) {
    int64_t left = config.limits.memory_bytes;  // 0: no budget
    for (const auto& m : config.models) {
        if (m.kind != model_kind::llm) {
            // Only the text stage is built into this binary so far: say so on /ready rather than "loading".
            registry.failed(m.id, "this build has no " + std::string(model_kind_name(m.kind)) + " stage yet");
            log_error("model_not_loaded", {{"model", m.id}, {"reason", "no stage for its kind in this build"}});
            continue;
        }
        terminal_progress bar("loading " + m.id);
        text::text_stage_params p{.id = m.id,
                                  .path = m.path,
                                  .tokenizer = m.tokenizer,
                                  .n_parallel = static_cast<int>(m.n_parallel),
                                  .n_ctx = static_cast<int>(m.n_ctx),
                                  .max_queue = static_cast<int>(config.limits.queue_depth)};
        if (!m.chat_template.empty()) p.chat_template = m.chat_template;
        if (config.limits.memory_bytes > 0) p.memory_budget = std::max<int64_t>(left, 1);
        auto stage = text::text_stage::load(p, pool, [&](int64_t done, int64_t total) {
            registry.progress(m.id, done, total);
            bar.update({.stage = "load", .done = done, .total = total});
        });
        if (!stage) {
            registry.failed(m.id, stage.error().message());
            log_error("model_load_failed", {{"model", m.id}, {"error", stage.error().to_string()}});
            continue;
        }
        if (config.limits.memory_bytes > 0) left -= (*stage)->memory_bytes();
        if (stats) stats->queue_depth_source("text:" + m.id, [s = stage->get()] { return int64_t{s->queued()}; });
        text.add(std::move(*stage));
        registry.ready(m.id, static_cast<int64_t>(std::time(nullptr)));
    }
}

}  // namespace mm::services
