#include "ledger_response_cache.h"

namespace mm::services {

std::optional<stored_response> ledger_response_cache::get(std::string_view key) {
    std::lock_guard lock(mu_);
    auto it = index_.find(key);
    if (it == index_.end()) return std::nullopt;
    lru_.splice(lru_.begin(), lru_, it->second);  // list iterators (and the key's view) survive a splice
    return it->second->response;
}

void ledger_response_cache::put(std::string_view key, stored_response response) {
    if (max_entries_ == 0) return;
    std::lock_guard lock(mu_);
    if (auto it = index_.find(key); it != index_.end()) {
        it->second->response = std::move(response);
        lru_.splice(lru_.begin(), lru_, it->second);
        return;
    }
    if (lru_.size() >= max_entries_) {
        index_.erase(lru_.back().key);
        lru_.pop_back();
    }
    lru_.push_front(entry{std::string(key), std::move(response)});
    index_.emplace(lru_.front().key, lru_.begin());
}

size_t ledger_response_cache::size() const {
    std::lock_guard lock(mu_);
    return lru_.size();
}

}  // namespace mm::services
