#include "connection_registry.h"

#include <vector>

#include "http_session.h"

namespace mm::services {

admission connection_registry::admit(const std::shared_ptr<http_session>& s) {
    std::lock_guard lock(mu_);
    admission kind = admission::drop;
    if (closed_) return kind;
    if (n_serving_ < max_connections_) {
        kind = admission::serve;
        ++n_serving_;
    } else if (n_rejecting_ < max_connections_) {
        kind = admission::reject;
        ++n_rejecting_;
    } else {
        return kind;
    }
    open_.emplace(s.get(), entry{s, kind});
    return kind;
}

void connection_registry::release(const http_session* s) {
    std::lock_guard lock(mu_);
    auto it = open_.find(s);
    if (it == open_.end()) return;
    --(it->second.kind == admission::serve ? n_serving_ : n_rejecting_);
    open_.erase(it);
}

size_t connection_registry::n_serving() const {
    std::lock_guard lock(mu_);
    return n_serving_;
}

std::vector<std::shared_ptr<http_session>> connection_registry::sessions(bool close) {
    std::lock_guard lock(mu_);
    closed_ |= close;
    std::vector<std::shared_ptr<http_session>> out;
    for (auto& [ptr, e] : open_)
        if (auto s = e.session.lock()) out.push_back(std::move(s));
    return out;
}

// The sessions are locked under mu_ and called outside it: dropping the last reference runs a session's
// destructor, which takes mu_ again in release().
void connection_registry::close_all() {
    for (auto& s : sessions(/*close=*/true)) s->shutdown();
}

void connection_registry::cancel_all() {
    for (auto& s : sessions(/*close=*/false)) s->cancel();
}

}  // namespace mm::services
