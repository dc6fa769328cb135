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
    // Our pool owns the cores; OpenBLAS runs single-threaded inside each chunk we hand it.
    openblas_threads_set(1);
    for (int i = 1; i < n_threads_; ++i) threads_.emplace_back([this, i] { worker(i); });
}

thread_pool::~thread_pool() {
    stop_.store(true);
    {
        std::lock_guard lock(sleep_mu_);
        generation_.fetch_add(1);
    }
    sleep_cv_.notify_all();
    for (auto& t : threads_) t.join();
}

void thread_pool::run_job(int index) {
    t_in_job = true;
    (*job_)(index);
    t_in_job = false;
}

void thread_pool::worker(int index) {
    uint64_t seen = 0;
    for (;;) {
        int spins = 0;
        while (generation_.load(std::memory_order_acquire) == seen && spins < k_spin_iterations) {
            MM_PAUSE();
            ++spins;
        }
        if (generation_.load(std::memory_order_acquire) == seen) {
            std::unique_lock lock(sleep_mu_);
            sleepers_.fetch_add(1);
            sleep_cv_.wait(lock, [&] { return generation_.load() != seen; });
            sleepers_.fetch_sub(1);
        }
        seen = generation_.load(std::memory_order_acquire);
        if (stop_.load()) return;
        run_job(index);
        pending_.fetch_sub(1, std::memory_order_acq_rel);
    }
}

void thread_pool::run_on_all(function_ref<void(int)> fn) {
    if (t_in_job || n_threads_ == 1) {
        // Nested (or no workers): the calling thread plays every index in turn.
        for (int i = 0; i < n_threads_; ++i) fn(i);
        return;
    }
    std::lock_guard call_lock(call_mu_);
    job_ = &fn;
    pending_.store(n_threads_ - 1, std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_acq_rel);
    if (sleepers_.load() > 0) {
        std::lock_guard lock(sleep_mu_);  // a worker between its check and its wait sees the new generation
        sleep_cv_.notify_all();
    }
    run_job(0);
    while (pending_.load(std::memory_order_acquire) != 0) MM_PAUSE();
    job_ = nullptr;
}

void thread_pool::parallel_for(int64_t n, function_ref<void(int64_t, int64_t)> fn, int64_t min_chunk) {
    if (n <= 0) return;
    min_chunk = std::max<int64_t>(1, min_chunk);
    const int64_t n_chunks = std::min<int64_t>(n_threads_, (n + min_chunk - 1) / min_chunk);
    if (n_chunks <= 1 || t_in_job) {
        fn(0, n);
        return;
    }
    // Static split in units of min_chunk: rows of a weight matrix cost the same, so equal shares balance.
    const int64_t units = (n + min_chunk - 1) / min_chunk;
    auto job = [&](int t) {
        if (t >= n_chunks) return;
        const int64_t b = units * t / n_chunks * min_chunk;
        const int64_t e = std::min(n, units * (t + 1) / n_chunks * min_chunk);
        if (b < e) fn(b, e);
    };
    run_on_all(job);
}

}  // namespace mm
