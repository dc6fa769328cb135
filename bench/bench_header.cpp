#include "bench_header.h"

#include <cblas.h>
#include <immintrin.h>

#include <cstdio>
#include <fstream>
#include <thread>

#include "common/kernels.h"
#include "common/tensor.h"

namespace mm::bench {
namespace {

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
    // Summed through memory: gcc 12's reduce intrinsic trips its own -Wuninitialized.
    alignas(64) uint64_t lanes[8];
    _mm512_store_si512(lanes, a);
    uint64_t sum = 0;
    for (uint64_t l : lanes) sum += l;
    return sum;
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

}  // namespace


std::string cpu_model() {
    std::ifstream f("/proc/cpuinfo");
    std::string line;
    while (std::getline(f, line))
        if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
    return "unknown";
}

void print_header(const char* name) {
    std::printf("== %s ==\n", name);
    std::printf("cpu: %s, %u cores\n", cpu_model().c_str(), std::thread::hardware_concurrency());
#ifdef NDEBUG
    const char* build = "release";
#else
    const char* build = "DEBUG";
#endif
    std::printf("build: %s, kernels: %s, blas: %s\n", build, std::string(kernels_best().isa).c_str(),
                openblas_get_config());
#ifndef NDEBUG
    std::printf("!!! WARNING: debug build; these numbers mean nothing. Build with -DCMAKE_BUILD_TYPE=Release !!!\n");
#endif
}

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

}  // namespace mm::bench
