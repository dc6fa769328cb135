// Progress of a long operation (model load, generation, denoising) and the run_control a stage call takes.
// A progress_fn runs on the compute thread: it must be cheap and must not block.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <mutex>
#include <string>

#include "common/cancel.h"

namespace mm {

struct progress_event {
    std::string_view stage;  // "load", "prefill", "denoise", ...
    int64_t done = 0;
    int64_t total = 0;
};

using progress_fn = std::function<void(const progress_event&)>;

struct run_control {
    cancel_token cancel;
    progress_fn progress = [](const progress_event&) {};
};

// A one-line bar on a terminal: redrawn at most every 100 ms, and only when the stream is a TTY.
// Thread safety: thread-safe.
class terminal_progress {
public:
    explicit terminal_progress(std::string label, std::FILE* out = stderr);
    ~terminal_progress();  // ends the line if a bar was drawn
    void update(const progress_event& e);
    progress_fn as_fn();  // a progress_fn that calls update(); this must outlive it

private:
    std::string label_;
    std::FILE* out_;
    bool tty_;
    bool drawn_ = false;
    std::mutex mu_;
    std::chrono::steady_clock::time_point last_{};
};

// Calls every fn in turn: a bar on the terminal and a callback that feeds /ready, say.
progress_fn progress_tee(progress_fn a, progress_fn b);

}  // namespace mm
