// One process-wide pool of compute threads, sized to the cores, used by every op.
// Thread safety: thread-safe. parallel_for calls from different threads are serialized; a call from
// inside a running parallel_for (nested) runs inline on the calling thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include "common/function_ref.h"

namespace mm {

class thread_pool {
public:
    explicit thread_pool(int n_threads = 0);  // 0: one per core
    ~thread_pool();
    thread_pool(const thread_pool&) = delete;
    thread_pool& operator=(const thread_pool&) = delete;

    int size() const { return n_threads_; }
    int sleeping() const { return sleepers_.load(); }  // workers parked on the condition variable

    // Runs fn(begin, end) over [0, n) in contiguous chunks of at least min_chunk, the caller taking
    // part; returns when every chunk is done.
    void parallel_for(int64_t n, function_ref<void(int64_t, int64_t)> fn, int64_t min_chunk = 1);

    // Runs fn(thread_index) once on each of size() threads (index 0 is the caller).
    void run_on_all(function_ref<void(int)> fn);

private:
    void worker(int index);
    void run_job(int index);

    int n_threads_;
    std::vector<std::thread> threads_;
    std::mutex call_mu_;  // serializes callers

    // The job being run; published by bumping generation_.
    function_ref<void(int)>* job_ = nullptr;
    std::atomic<uint64_t> generation_{0};
    std::atomic<int> pending_{0};
    std::atomic<bool> stop_{false};
    std::atomic<int> sleepers_{0};
    std::mutex sleep_mu_;
    std::condition_variable sleep_cv_;
};

}  // namespace mm
