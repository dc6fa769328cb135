#include "common/kernels.h"

namespace mm {

cpu_features cpu_features_detect() {
    cpu_features f;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    f.avx2 = __builtin_cpu_supports("avx2");
    f.fma = __builtin_cpu_supports("fma");
    f.f16c = __builtin_cpu_supports("f16c");
    f.avx512f = __builtin_cpu_supports("avx512f");
    f.avx512bw = __builtin_cpu_supports("avx512bw");
    f.avx512vl = __builtin_cpu_supports("avx512vl");
    f.avx512dq = __builtin_cpu_supports("avx512dq");
    f.avx512vnni = __builtin_cpu_supports("avx512vnni");
#endif
    return f;
}

const kernel_table& kernels_best() {
    // Picked once; the CPU does not change under a running process.
    static const kernel_table& best = [] () -> const kernel_table& {
        if (auto* k = kernels_avx512()) return *k;
        if (auto* k = kernels_avx2()) return *k;
        return kernels_scalar();
    }();
    return best;
}

}  // namespace mm
