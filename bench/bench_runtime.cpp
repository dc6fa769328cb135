// The tensor runtime's benchmark: f32 matmul against raw cblas_sgemm, quantized matvec against the
// machine's streaming-read bandwidth, and the pool's dispatch overhead, all measured in this run.
#include <cblas.h>

#include <algorithm>
#include <cstdio>
#include <random>
#include <vector>

#include "bench_header.h"
#include "common/kernels.h"
#include "common/ops.h"
#include "common/tensor.h"
#include "common/thread_pool.h"

using namespace mm;

namespace {

std::vector<float> gaussian(int64_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> d(0.0f, 1.0f);
    std::vector<float> v(static_cast<size_t>(n));
    for (auto& x : v) x = d(rng);
    return v;
}

// Decode reads every layer's weights once per token, so a model's weights do not stay in cache. The
// matvec and its reference both cycle through enough copies to span k_working_set (8x this machine's L3),
// so each call reads from DRAM, as a real decode step does.
constexpr size_t k_working_set = size_t{256} << 20;

void bench_sgemm(thread_pool& pool) {
    std::printf("\n-- f32 matmul: ops::matmul (pool, single-threaded sgemm per chunk) vs raw cblas_sgemm "
                "(OpenBLAS's own %d threads) --\n", pool.size());
    std::printf("%-22s %12s %12s %9s %9s\n", "shape m x k x n", "ours GFLOP/s", "raw GFLOP/s", "ratio", "overhead");
    struct shape { int64_t m, k, n; };
    for (const shape s : {shape{512, 512, 512}, shape{1024, 1024, 1024}, shape{128, 4096, 4096}, shape{64, 4096, 11008}}) {
        const tensor x = tensor::from({s.m, s.k}, gaussian(s.m * s.k, 1));
        const tensor w = tensor::from({s.n, s.k}, gaussian(s.n * s.k, 2));
        tensor y = tensor::zeros(dtype::f32, {s.m, s.n});
        const double flops = 2.0 * s.m * s.k * s.n;
        const int iters = std::max(4, static_cast<int>(4e9 / flops));
        const double ours = bench::time_best([&] { ops::matmul(pool, x, w, y); }, iters);
        openblas_set_num_threads(pool.size());
        const double raw = bench::time_best([&] {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)s.m, (int)s.n, (int)s.k, 1.0f, x.data<float>(),
                        (int)s.k, w.data<float>(), (int)s.k, 0.0f, y.data<float>(), (int)s.n);
        }, iters);
        openblas_set_num_threads(1);
        char name[64];
        std::snprintf(name, sizeof name, "%lld x %lld x %lld", (long long)s.m, (long long)s.k, (long long)s.n);
        std::printf("%-22s %12.1f %12.1f %9.3f %8.1f%%\n", name, flops / ours / 1e9, flops / raw / 1e9, raw / ours,
                    (ours / raw - 1.0) * 100.0);
    }
}

void bench_matvec(thread_pool& pool) {
    std::printf("\n-- matvec (decode shapes): weight bytes read per second vs a streaming read of the same bytes, "
                "%d threads, weights cycled through %zu MiB so they come from DRAM as in decode --\n",
                pool.size(), k_working_set >> 20);
    std::printf("(warm: one copy read again and again, from cache where it fits: the kernel's own ceiling)\n");
    std::printf("%-8s %-14s %8s %12s %12s %8s %12s %12s\n", "dtype", "n x k", "MB", "matvec GB/s", "stream GB/s", "ratio",
                "warm matvec", "warm stream");
    struct shape { int64_t n, k; };
    // q8_0r / q4_0r: what the text stage serves q8_0 / q4_0 as, where their kernels exist.
    std::vector<dtype> types{dtype::q8_0};
    if (kernels_best().rows_q8_0r) types.push_back(dtype::q8_0r);
    types.push_back(dtype::q4_0);
    if (kernels_best().rows_q4_0r) types.push_back(dtype::q4_0r);
    types.push_back(dtype::f16);
    for (const dtype t : types) {
        for (const shape s : {shape{4096, 4096}, shape{11008, 4096}}) {
            const tensor w0 = convert(tensor::from({s.n, s.k}, gaussian(s.n * s.k, 3)), t);
            const int copies = static_cast<int>(std::max<size_t>(2, k_working_set / w0.bytes()));
            std::vector<tensor> ws;
            for (int c = 0; c < copies; ++c) ws.push_back(w0.clone());
            const tensor x = tensor::from({s.k}, gaussian(s.k, 4));
            tensor y = tensor::zeros(dtype::f32, {s.n});
            int next = 0;
            const double secs = bench::time_best([&] { ops::matvec(pool, ws[static_cast<size_t>(next++ % copies)], x, y); },
                                                 copies * 2);
            const double gbs = static_cast<double>(w0.bytes()) / secs / 1e9;
            const double warm = static_cast<double>(w0.bytes()) / bench::time_best([&] { ops::matvec(pool, w0, x, y); }, 8) / 1e9;
            ws.clear();
            const double stream = bench::stream_read_gbs(pool, w0.bytes(), copies);
            const double warm_stream = bench::stream_read_gbs(pool, w0.bytes(), 1);
            char name[32];
            std::snprintf(name, sizeof name, "%lld x %lld", (long long)s.n, (long long)s.k);
            std::printf("%-8s %-14s %8.1f %12.1f %12.1f %7.0f%% %12.1f %12.1f\n", std::string(dtype_name(t)).c_str(), name,
                        w0.bytes() / 1e6, gbs, stream, gbs / stream * 100.0, warm, warm_stream);
        }
    }
}

void bench_dispatch(thread_pool& pool) {
    std::printf("\n-- thread pool dispatch (%d threads): time per call with an empty body --\n", pool.size());
    volatile int64_t sink = 0;
    const double pf = bench::time_best([&] { pool.parallel_for(pool.size(), [&](int64_t b, int64_t) { sink = b; }); },
                                       100000);
    const double all = bench::time_best([&] { pool.run_on_all([&](int i) { sink = i; }); }, 100000);
    const double inline_call = bench::time_best([&] { pool.parallel_for(1, [&](int64_t b, int64_t) { sink = b; }); },
                                                100000);
    std::printf("parallel_for over %d chunks: %8.2f us   (target < 5 us)\n", pool.size(), pf * 1e6);
    std::printf("run_on_all:                 %8.2f us\n", all * 1e6);
    std::printf("parallel_for, 1 chunk (runs inline, the floor): %8.3f us\n", inline_call * 1e6);
}

}  // namespace

int main() {
    bench::print_header("bench_runtime");
    thread_pool pool;
    bench_dispatch(pool);
    bench_matvec(pool);
    bench_sgemm(pool);
    return 0;
}
