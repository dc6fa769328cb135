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
    int sleeping() const { return slot_.sleepers.load(); }  // workers parked on the condition variable

    // Runs fn(begin, end) over [0, n) in contiguous chunks of at least min_chunk, the caller taking
    // part; returns when every chunk is done.
    void parallel_for(int64_t n, function_ref<void(int64_t, int64_t)> fn, int64_t min_chunk = 1);

    // Runs fn(thread_index) once on each of size() threads (index 0 is the caller).
    void run_on_all(function_ref<void(int)> fn);

private:
    // A cache line can take ~200 ns to move between two cores (measured on our 2-core EPYC VMs), so all a
    // worker needs to start a job is one line: the job's own words beside the generation that publishes
    // them. Each worker reports done on a line of its own. A start then costs one transfer, not one per
    // pointer chased through the caller's stack frames.
    struct alignas(64) job_slot {
        std::atomic<uint64_t> generation{0};
        function_ref<void(int64_t, int64_t)> fn;
        int64_t n = 0, units = 0, min_chunk = 1;  // the split: thread t runs chunk t of n_chunks
        int n_chunks = 0;
        std::atomic<int> sleepers{0};
        std::atomic<bool> stop{false};
    };
    static_assert(sizeof(job_slot) == 64);
    struct alignas(64) done_flag {
        std::atomic<uint64_t> generation{0};
    };
    void worker(int index);
    void run_chunk(int index);  // this thread's chunk of the published job
    // With call_mu_ held: fills slot_, wakes the workers, runs chunk 0 and waits for the rest.
    void publish_and_run(function_ref<void(int64_t, int64_t)> fn, int64_t n, int64_t units, int64_t min_chunk,
                         int n_chunks);

    int n_threads_;
    std::vector<std::thread> threads_;
    std::mutex call_mu_;  // serializes callers
    job_slot slot_;
    std::vector<done_flag> done_;  // [n_threads_]: the generation each worker last finished
    std::mutex sleep_mu_;
    std::condition_variable sleep_cv_;
};

}  // namespace mm
