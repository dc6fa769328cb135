// The tensor runtime's benchmark: f32 matmul against raw cblas_sgemm, quantized matvec against the
// machine's streaming-read bandwidth, and the pool's dispatch overhead, all measured in this run.
#include <cblas.h>
#include <immintrin.h>

#include <algorithm>
#include <cstdio>
#include <random>
#include <vector>

#include "bench_header.h"
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

// Reads [p, p + n) with the widest loads the CPU has; the xor keeps the loads from being optimized away.
__attribute__((target("avx512f"))) uint64_t read_avx512(const std::byte* p, size_t n) {
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i + 256 <= n; i += 256) {
        a0 = _mm512_xor_si512(a0, _mm512_load_si512(p + i));
        a1 = _mm512_xor_si512(a1, _mm512_load_si512(p + i + 64));
        a2 = _mm512_xor_si512(a2, _mm512_load_si512(p + i + 128));
        a3 = _mm512_xor_si512(a3, _mm512_load_si512(p + i + 192));
    }
    const __m512i a = _mm512_xor_si512(_mm512_xor_si512(a0, a1), _mm512_xor_si512(a2, a3));
    return static_cast<uint64_t>(_mm512_reduce_add_epi64(a));
}

__attribute__((target("avx2"))) uint64_t read_avx2(const std::byte* p, size_t n) {
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i + 128 <= n; i += 128) {
        a0 = _mm256_xor_si256(a0, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i)));
        a1 = _mm256_xor_si256(a1, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 32)));
        a2 = _mm256_xor_si256(a2, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 64)));
        a3 = _mm256_xor_si256(a3, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 96)));
    }
    const __m256i a = _mm256_xor_si256(_mm256_xor_si256(a0, a1), _mm256_xor_si256(a2, a3));
    return static_cast<uint64_t>(_mm256_extract_epi64(a, 0) ^ _mm256_extract_epi64(a, 3));
}

// Decode reads every layer's weights once per token, so a model's weights do not stay in cache. The
// matvec and its reference both cycle through enough copies to span k_working_set (8x this machine's L3),
// so each call reads from DRAM, as a real decode step does.
constexpr size_t k_working_set = size_t{256} << 20;

// Streaming-read bandwidth over `copies` buffers of `bytes`, one per call in turn, split across the pool
// like a matvec's rows.
double stream_read_gbs(thread_pool& pool, size_t bytes, int copies) {
    std::vector<tensor> bufs;
    for (int c = 0; c < copies; ++c) bufs.push_back(tensor::zeros(dtype::f32, {static_cast<int64_t>(bytes / 4)}));
    const bool avx512 = __builtin_cpu_supports("avx512f");
    volatile uint64_t sink = 0;
    const int64_t n_lines = static_cast<int64_t>(bytes / 256);
    int next = 0;
    const double s = bench::time_best([&] {
        auto* p = static_cast<const std::byte*>(bufs[static_cast<size_t>(next++ % copies)].raw());
        pool.parallel_for(n_lines, [&](int64_t b, int64_t e) {
            const size_t len = static_cast<size_t>(e - b) * 256;
            sink = sink + (avx512 ? read_avx512(p + b * 256, len) : read_avx2(p + b * 256, len));
        });
    }, copies * 2);
    return static_cast<double>(bytes) / s / 1e9;
}

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
    std::printf("%-8s %-14s %8s %12s %12s %8s\n", "dtype", "n x k", "MB", "matvec GB/s", "stream GB/s", "ratio");
    struct shape { int64_t n, k; };
    for (const dtype t : {dtype::q8_0, dtype::q4_0, dtype::f16}) {
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
            ws.clear();
            const double stream = stream_read_gbs(pool, w0.bytes(), copies);
            char name[32];
            std::snprintf(name, sizeof name, "%lld x %lld", (long long)s.n, (long long)s.k);
            std::printf("%-8s %-14s %8.1f %12.1f %12.1f %7.0f%%\n", std::string(dtype_name(t)).c_str(), name,
                        w0.bytes() / 1e6, gbs, stream, gbs / stream * 100.0);
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
