// stage_gate: the bounded queue in front of a stage. A request holds a ticket from admission until its
// answer is out; when depth tickets are out, the next request is refused at once (429 with Retry-After)
// instead of waiting unbounded.
// Thread safety: thread-safe. A ticket may be released from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>

namespace mm::services {

class stage_gate {
public:
    // Held while a request is queued or running; releases its place when destroyed.
    class ticket {
    public:
        ticket(ticket&& o) noexcept : gate_(std::exchange(o.gate_, nullptr)) {}
        ticket& operator=(ticket&&) = delete;
        ticket(const ticket&) = delete;
        ~ticket() {
            if (gate_) gate_->in_.fetch_sub(1, std::memory_order_acq_rel);
        }

    private:
        friend class stage_gate;
        explicit ticket(stage_gate* g) : gate_(g) {}
        stage_gate* gate_;
    };

    stage_gate(std::string name, int64_t depth) : name_(std::move(name)), depth_(depth) {}

    std::optional<ticket> try_enter() {
        int64_t cur = in_.load(std::memory_order_relaxed);
        do {
            if (cur >= depth_) return std::nullopt;
        } while (!in_.compare_exchange_weak(cur, cur + 1, std::memory_order_acq_rel));
        return ticket(this);
    }

    const std::string& name() const { return name_; }
    int64_t depth() const { return in_.load(std::memory_order_relaxed); }  // for /metrics
    int64_t capacity() const { return depth_; }

private:
    const std::string name_;
    const int64_t depth_;
    std::atomic<int64_t> in_{0};
};

}  // namespace mm::services
