#include "common/thread_pool.h"

#include <algorithm>

#include "common/status.h"
#include "openblas_threads.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define MM_PAUSE() _mm_pause()
#else
#define MM_PAUSE() std::this_thread::yield()
#endif

namespace mm {
namespace {

// Set while a thread runs a pool job, so a nested parallel_for runs inline instead of deadlocking.
thread_local bool t_in_job = false;

// How long an idle worker spins before it sleeps: long enough that back-to-back ops (one LLM layer after
// another) find it awake, short enough that an idle server does not burn a core.
constexpr int k_spin_iterations = 1 << 15;

}  // namespace

thread_pool::thread_pool(int n_threads) {
    n_threads_ = n_threads > 0 ? n_threads : std::max(1u, std::thread::hardware_concurrency());
    done_ = std::vector<done_flag>(static_cast<size_t>(n_threads_));
    // Our pool owns the cores; OpenBLAS runs single-threaded inside each chunk we hand it.
    openblas_threads_set(1);
    for (int i = 1; i < n_threads_; ++i) threads_.emplace_back([this, i] { worker(i); });
}

thread_pool::~thread_pool() {
    slot_.stop.store(true);
    {
        std::lock_guard lock(sleep_mu_);
        slot_.generation.fetch_add(1);
    }
    sleep_cv_.notify_all();
    for (auto& t : threads_) t.join();
}

void thread_pool::run_chunk(int index) {
    // Static split in units of min_chunk: rows of a weight matrix cost the same, so equal shares balance.
    if (index >= slot_.n_chunks) return;
    const int64_t b = slot_.units * index / slot_.n_chunks * slot_.min_chunk;
    const int64_t e = std::min(slot_.n, slot_.units * (index + 1) / slot_.n_chunks * slot_.min_chunk);
    if (b >= e) return;
    t_in_job = true;
    slot_.fn(b, e);
    t_in_job = false;
}

void thread_pool::worker(int index) {
    uint64_t seen = 0;
    for (;;) {
        int spins = 0;
        while (slot_.generation.load(std::memory_order_acquire) == seen && spins < k_spin_iterations) {
            MM_PAUSE();
            ++spins;
        }
        if (slot_.generation.load(std::memory_order_acquire) == seen) {
            std::unique_lock lock(sleep_mu_);
            slot_.sleepers.fetch_add(1);
            sleep_cv_.wait(lock, [&] { return slot_.generation.load() != seen; });
            slot_.sleepers.fetch_sub(1);
        }
        seen = slot_.generation.load(std::memory_order_acquire);
        if (slot_.stop.load(std::memory_order_relaxed)) return;
        run_chunk(index);
        done_[static_cast<size_t>(index)].generation.store(seen, std::memory_order_release);
    }
}

void thread_pool::publish_and_run(function_ref<void(int64_t, int64_t)> fn, int64_t n, int64_t units,
                                  int64_t min_chunk, int n_chunks) {
    slot_.fn = fn;
    slot_.n = n;
    slot_.units = units;
    slot_.min_chunk = min_chunk;
    slot_.n_chunks = n_chunks;
    const uint64_t gen = slot_.generation.load(std::memory_order_relaxed) + 1;
    // seq_cst, not release: a release store may still sit in this core's store buffer when sleepers is read
    // below, so a worker parking just then sees the old generation, we see no sleeper, and neither wakes.
    slot_.generation.store(gen, std::memory_order_seq_cst);
    if (slot_.sleepers.load(std::memory_order_seq_cst) > 0) {
        std::lock_guard lock(sleep_mu_);  // a worker between its check and its wait sees the new generation
        sleep_cv_.notify_all();
    }
    run_chunk(0);
    for (int i = 1; i < n_threads_; ++i)
        while (done_[static_cast<size_t>(i)].generation.load(std::memory_order_acquire) != gen) MM_PAUSE();
}

void thread_pool::run_on_all(function_ref<void(int)> fn) {
    if (t_in_job || n_threads_ == 1) {
        // Nested (or no workers): the calling thread plays every index in turn.
        for (int i = 0; i < n_threads_; ++i) fn(i);
        return;
    }
    // Thread t's chunk of [0, n_threads) is {t}.
    auto each = [&](int64_t b, int64_t) { fn(static_cast<int>(b)); };
    std::lock_guard call_lock(call_mu_);
    publish_and_run(each, n_threads_, n_threads_, 1, n_threads_);
}

void thread_pool::parallel_for(int64_t n, function_ref<void(int64_t, int64_t)> fn, int64_t min_chunk) {
    if (n <= 0) return;
    min_chunk = std::max<int64_t>(1, min_chunk);
    const int64_t units = (n + min_chunk - 1) / min_chunk;
    const int64_t n_chunks = std::min<int64_t>(n_threads_, units);
    if (n_chunks <= 1 || t_in_job) {
        fn(0, n);
        return;
    }
    std::lock_guard call_lock(call_mu_);
    publish_and_run(fn, n, units, min_chunk, static_cast<int>(n_chunks));
}

}  // namespace mm
