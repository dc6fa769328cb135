// step_scheduler: the one queue that stages hand their steps to (one LLM decode step for a batch, one
// encoder pass, one UNet step). A single driver thread runs them one at a time, each step using the
// shared thread_pool inside. Interactive steps (token streams, live transcription) go first; while batch
// steps (diffusion) wait, one runs after at most `interactive_burst` interactive steps, so long work keeps
// moving at a known minimum share.
// Thread safety: thread-safe.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <thread>

namespace mm {

enum class step_class { interactive, batch };

struct step_scheduler_params {
    int interactive_burst = 4;  // interactive steps in a row before a waiting batch step gets its turn
};

class step_scheduler {
public:
    explicit step_scheduler(step_scheduler_params p = {});
    ~step_scheduler();  // runs what is queued, then joins the driver
    step_scheduler(const step_scheduler&) = delete;
    step_scheduler& operator=(const step_scheduler&) = delete;

    // Queues a step; the future is ready once it ran (and carries its exception, if it threw).
    std::future<void> submit(step_class c, std::function<void()> step);

    // Steps queued and not yet started, per class (for metrics: queue depth).
    size_t queued(step_class c) const;

private:
    struct item {
        std::function<void()> fn;
        std::promise<void> done;
    };
    void drive();
    bool pick(item& out);  // under mu_

    step_scheduler_params params_;
    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::deque<item> interactive_;  // guarded by mu_
    std::deque<item> batch_;        // guarded by mu_
    int burst_ = 0;                 // interactive steps run since the last batch step; guarded by mu_
    bool stop_ = false;             // guarded by mu_
    std::thread driver_;
};

}  // namespace mm
