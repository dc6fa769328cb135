// What every benchmark prints first: the machine, the build, the BLAS, the kernels in use.
#pragma once

#include <cstddef>
#include <string>

#include "common/thread_pool.h"

namespace mm::bench {

void print_header(const char* name);
std::string cpu_model();

// Streaming-read bandwidth (GB/s) over `copies` buffers of `bytes`, one per call in turn, split across the
// pool like a matvec's rows, with the widest loads the CPU has: the limit a decode step's weight reads meet.
// Enough copies to exceed the caches make it a DRAM figure.
double stream_read_gbs(thread_pool& pool, size_t bytes, int copies);

// Seconds per call of fn, the best of `reps` timed rounds of `iters` calls each (after one warm-up round).
template <class F>
double time_best(F&& fn, int iters, int reps = 5);

}  // namespace mm::bench

#include <chrono>
#include <limits>

namespace mm::bench {
template <class F>
double time_best(F&& fn, int iters, int reps) {
    for (int i = 0; i < iters; ++i) fn();
    double best = std::numeric_limits<double>::infinity();
    for (int r = 0; r < reps; ++r) {
        const auto t0 = std::chrono::steady_clock::now();
        for (int i = 0; i < iters; ++i) fn();
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / iters;
        best = s < best ? s : best;
    }
    return best;
}
}  // namespace mm::bench
