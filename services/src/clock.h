// clock: where the meter reads the time, injected so tests move it by hand (no sleeps) and cross
// day and month boundaries at will.
// Thread safety: thread-safe (every implementation here).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace mm::services {

class clock {
public:
    virtual ~clock() = default;
    // Milliseconds since the Unix epoch, UTC.
    virtual int64_t now_ms() const = 0;
};

// The wall clock: periods are calendar days and months, so this is system time, not steady time.
class system_clock final : public clock {
public:
    int64_t now_ms() const override {
        return std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::system_clock::now().time_since_epoch())
            .count();
    }
};

// A clock that moves only when told to.
class manual_clock final : public clock {
public:
    explicit manual_clock(int64_t start_ms = 0) : now_(start_ms) {}
    int64_t now_ms() const override { return now_.load(); }
    void set_ms(int64_t t) { now_.store(t); }
    void advance_ms(int64_t d) { now_.fetch_add(d); }

private:
    std::atomic<int64_t> now_;
};

}  // namespace mm::services
