#include "common/step_scheduler.h"

namespace mm {

step_scheduler::step_scheduler(step_scheduler_params p) : params_(p), driver_([this] { drive(); }) {}

step_scheduler::~step_scheduler() {
    {
        std::lock_guard lock(mu_);
        stop_ = true;
    }
    cv_.notify_all();
    driver_.join();
}

std::future<void> step_scheduler::submit(step_class c, std::function<void()> step) {
    item it{std::move(step), {}};
    auto fut = it.done.get_future();
    {
        std::lock_guard lock(mu_);
        (c == step_class::interactive ? interactive_ : batch_).push_back(std::move(it));
    }
    cv_.notify_one();
    return fut;
}

size_t step_scheduler::queued(step_class c) const {
    std::lock_guard lock(mu_);
    return c == step_class::interactive ? interactive_.size() : batch_.size();
}

bool step_scheduler::pick(item& out) {
    const bool batch_turn = !batch_.empty() && (interactive_.empty() || burst_ >= params_.interactive_burst);
    auto& q = batch_turn ? batch_ : interactive_;
    if (q.empty()) return false;
    out = std::move(q.front());
    q.pop_front();
    burst_ = batch_turn ? 0 : burst_ + 1;
    return true;
}

void step_scheduler::drive() {
    for (;;) {
        item it;
        {
            std::unique_lock lock(mu_);
            cv_.wait(lock, [&] { return stop_ || !interactive_.empty() || !batch_.empty(); });
            if (!pick(it)) return;  // stopping and drained
        }
        try {
            it.fn();
            it.done.set_value();
        } catch (...) {
            it.done.set_exception(std::current_exception());
        }
    }
}

}  // namespace mm
