#include "bench_header.h"

#include <cblas.h>

#include <cstdio>
#include <fstream>
#include <thread>

#include "common/kernels.h"

namespace mm::bench {

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

}  // namespace mm::bench
