// model_registry: every configured model and where its loading stands, filled by the stages as they load
// at start-up; /v1/models lists the loaded ones, /ready waits for all of them.
// Thread safety: thread-safe (stages report from their loading threads; routes read).
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "services/server_config.h"

namespace mm::services {

enum class model_state { loading, ready, failed };

struct model_entry {
    std::string id;
    model_kind kind = model_kind::llm;
    model_state state = model_state::loading;
    int64_t done = 0, total = 0;  // load progress, in the stage's own units (bytes, tensors)
    std::string error = {};       // why it failed
    int64_t created = 0;          // unix seconds when it became ready (OpenAI's "created")
};

class model_registry {
public:
    void add(const std::string& id, model_kind kind);  // as configured, before loading starts
    void progress(const std::string& id, int64_t done, int64_t total);
    void ready(const std::string& id, int64_t unix_secs);
    void failed(const std::string& id, std::string error);

    std::vector<model_entry> all() const;
    std::optional<model_entry> find(const std::string& id) const;
    bool all_ready() const;  // true with no models at all

private:
    model_entry* find_locked(const std::string& id);
    mutable std::mutex mu_;
    std::vector<model_entry> models_;  // guarded by mu_; configuration order
};

}  // namespace mm::services
