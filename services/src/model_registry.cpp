#include "services/model_registry.h"

namespace mm::services {

model_entry* model_registry::find_locked(const std::string& id) {
    for (auto& m : models_)
        if (m.id == id) return &m;
    return nullptr;
}

void model_registry::add(const std::string& id, model_kind kind) {
    std::lock_guard lock(mu_);
    if (!find_locked(id)) models_.push_back({.id = id, .kind = kind});
}

void model_registry::progress(const std::string& id, int64_t done, int64_t total) {
    std::lock_guard lock(mu_);
    if (auto* m = find_locked(id)) {
        m->done = done;
        m->total = total;
    }
}

void model_registry::ready(const std::string& id, int64_t unix_secs) {
    std::lock_guard lock(mu_);
    if (auto* m = find_locked(id)) {
        m->state = model_state::ready;
        m->created = unix_secs;
        m->done = m->total;
    }
}

void model_registry::failed(const std::string& id, std::string error) {
    std::lock_guard lock(mu_);
    if (auto* m = find_locked(id)) {
        m->state = model_state::failed;
        m->error = std::move(error);
    }
}

std::vector<model_entry> model_registry::all() const {
    std::lock_guard lock(mu_);
    return models_;
}

std::optional<model_entry> model_registry::find(const std::string& id) const {
    std::lock_guard lock(mu_);
    for (const auto& m : models_)
        if (m.id == id) return m;
    return std::nullopt;
}

bool model_registry::all_ready() const {
    std::lock_guard lock(mu_);
    for (const auto& m : models_)
        if (m.state != model_state::ready) return false;
    return true;
}

}  // namespace mm::services
