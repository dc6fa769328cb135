// Which connections are open, so the connection cap holds and stop() can reach every one of them.
// Thread safety: thread-safe.
#pragma once

#include <cstddef>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace mm::services {

class http_session;

enum class admission {
    serve,   // under the cap: a normal session
    reject,  // over the cap: answer 503 and close; at most max_connections of these at once
    drop,    // over both caps, or stopping: close without a word
};

class connection_registry {
public:
    explicit connection_registry(size_t max_connections) : max_connections_(max_connections) {}

    admission admit(const std::shared_ptr<http_session>& s);
    void release(const http_session* s);  // from the session's destructor; a no-op for one never admitted
    size_t n_serving() const;
    // Asks every open session to close (each on its own strand) and drops new connections from now on; a
    // request being handled keeps going, and its connection closes after the answer.
    void close_all();
    // Cancels the requests still being handled (their cancelled answers still go out).
    void cancel_all();

private:
    std::vector<std::shared_ptr<http_session>> sessions(bool close);  // the live ones; close: admit no more

    struct entry {
        std::weak_ptr<http_session> session;
        admission kind;
    };
    mutable std::mutex mu_;
    const size_t max_connections_;
    std::unordered_map<const http_session*, entry> open_;  // guarded by mu_
    size_t n_serving_ = 0;                                 // guarded by mu_
    size_t n_rejecting_ = 0;                               // guarded by mu_
    bool closed_ = false;                                  // guarded by mu_
};

}  // namespace mm::services
