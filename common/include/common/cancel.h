// cancel_token: set once by whoever owns the request (client gone, shutdown), polled by stages between steps.
// Thread safety: thread-safe.
#pragma once

#include <atomic>
#include <memory>

namespace mm {

class cancel_token {
public:
    cancel_token() : flag_(std::make_shared<std::atomic<bool>>(false)) {}
    void cancel() const { flag_->store(true, std::memory_order_release); }
    bool stopped() const { return flag_->load(std::memory_order_acquire); }

private:
    std::shared_ptr<std::atomic<bool>> flag_;  // copies share the flag
};

}  // namespace mm
