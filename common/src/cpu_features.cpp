#include <cpuid.h>

#include "common/kernels.h"

namespace mm {

cpu_features cpu_features_detect() {
    cpu_features f;
#if defined(__x86_64__) || defined(__i386__)
    // Straight from cpuid (leaf 1 and leaf 7), which gcc and clang both expose; XGETBV confirms the OS saves
    // the wide registers, without which the instructions would fault.
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
    const bool osxsave = c & (1u << 27);
    f.fma = c & (1u << 12);
    f.f16c = c & (1u << 29);
    if (!osxsave) return f;
    unsigned xcr0_lo = 0, xcr0_hi = 0;
    __asm__("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
    const bool ymm_state = (xcr0_lo & 0x6) == 0x6;
    const bool zmm_state = (xcr0_lo & 0xe6) == 0xe6;
    if (!ymm_state) return f;
    unsigned a7 = 0, b7 = 0, c7 = 0, d7 = 0;
    __cpuid_count(7, 0, a7, b7, c7, d7);
    f.avx2 = b7 & (1u << 5);
    if (zmm_state) {
        f.avx512f = b7 & (1u << 16);
        f.avx512dq = b7 & (1u << 17);
        f.avx512bw = b7 & (1u << 30);
        f.avx512vl = b7 & (1u << 31);
        f.avx512vnni = c7 & (1u << 11);
    }
#endif
    return f;
}

const kernel_table& kernels_best() {
    // Picked once; the CPU does not change under a running process.
    static const kernel_table& best = []() -> const kernel_table& {
        if (auto* k = kernels_avx512()) return *k;
        if (auto* k = kernels_avx2()) return *k;
        return kernels_scalar();
    }();
    return best;
}

}  // namespace mm
