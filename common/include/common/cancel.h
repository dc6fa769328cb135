// cancel_token: set once by whoever owns the request (client gone, shutdown), polled by stages between steps.
// A child token also reads as stopped once its parent is, so one part of a request (one of its choices)
// can be stopped without stopping, or being able to stop, the whole.
// Thread safety: thread-safe.
#pragma once

#include <atomic>
#include <memory>

namespace mm {

class cancel_token {
public:
    cancel_token() : flag_(std::make_shared<std::atomic<bool>>(false)) {}
    void cancel() const { flag_->store(true, std::memory_order_release); }
    bool stopped() const {
        return flag_->load(std::memory_order_acquire) || (parent_ && parent_->load(std::memory_order_acquire));
    }
    // A new token of its own that also stops when this one does (one level: a child's child sees the child).
    cancel_token child() const {
        cancel_token c;
        c.parent_ = flag_;
        return c;
    }

private:
    std::shared_ptr<std::atomic<bool>> flag_;    // copies share the flag
    std::shared_ptr<std::atomic<bool>> parent_;  // null, or the flag of the token this one is a child of
};

}  // namespace mm
