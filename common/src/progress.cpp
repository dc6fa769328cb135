#include "common/progress.h"

#include <unistd.h>

namespace mm {

terminal_progress::terminal_progress(std::string label, std::FILE* out)
    : label_(std::move(label)), out_(out), tty_(out && isatty(fileno(out))) {}

terminal_progress::~terminal_progress() {
    if (drawn_) std::fputc('\n', out_);
}

void terminal_progress::update(const progress_event& e) {
    if (!tty_) return;
    std::lock_guard lock(mu_);
    const auto now = std::chrono::steady_clock::now();
    const bool last = e.total > 0 && e.done >= e.total;
    if (!last && drawn_ && now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    constexpr int k_width = 30;
    const double frac = e.total > 0 ? static_cast<double>(e.done) / static_cast<double>(e.total) : 0.0;
    const int filled = static_cast<int>(frac * k_width);
    std::string bar(static_cast<size_t>(filled), '#');
    bar.resize(k_width, '.');
    std::fprintf(out_, "\r%s %.*s [%s] %3d%% (%lld/%lld)", label_.c_str(), static_cast<int>(e.stage.size()),
                 e.stage.data(), bar.c_str(), static_cast<int>(frac * 100), static_cast<long long>(e.done),
                 static_cast<long long>(e.total));
    std::fflush(out_);
    drawn_ = true;
}

progress_fn terminal_progress::as_fn() {
    return [this](const progress_event& e) { update(e); };
}

progress_fn progress_tee(progress_fn a, progress_fn b) {
    return [a = std::move(a), b = std::move(b)](const progress_event& e) {
        if (a) a(e);
        if (b) b(e);
    };
}

}  // namespace mm
