// ledger_response_cache: the meter's response cache (DESIGN meter rule 8), in memory, least recently
// used out first once it holds max_entries. Not persisted: a cache entry is only a saved recomputation,
// so losing it on restart costs time, never money or correctness, and keeps response bodies off the
// ledger's fsync path.
// Thread safety: thread-safe.
#pragma once

#include <cstddef>
#include <list>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "ledger.h"

namespace mm::services {

class ledger_response_cache {
public:
    explicit ledger_response_cache(size_t max_entries) : max_entries_(max_entries) {}

    std::optional<stored_response> get(std::string_view key);
    void put(std::string_view key, stored_response response);  // replaces an entry with the same key
    size_t size() const;

private:
    struct entry {
        std::string key;
        stored_response response;
    };
    const size_t max_entries_;  // 0: caching off
    mutable std::mutex mu_;
    std::list<entry> lru_;                                              // guarded by mu_; most recent first
    std::unordered_map<std::string_view, std::list<entry>::iterator> index_;  // guarded by mu_; views into lru_
};

}  // namespace mm::services
