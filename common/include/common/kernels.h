// The dot-product kernels behind matmul (and the one elementwise op decode spends time in), one table per
// instruction set, picked at run time.
// Exposed so tests can check every variant the CPU has against the scalar one.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "common/dtype.h"

namespace mm {

// One activation row quantized on the fly for the q8_0 / q4_0 kernels: per 32-block an int8 step like
// q8_0's (the values rounded with the exact scale, the scale kept at f16 precision), laid out by field so a kernel loads several blocks' qs or
// scales with one load.
//
// qs order: blocks in groups of four, each group's 128 bytes holding the four first halves, then the four
// second halves: [b0[0:16] b1[0:16] b2[0:16] b3[0:16] b0[16:32] b1[16:32] b2[16:32] b3[16:32]]. One 512-bit
// load then meets one half of four q4_0 blocks as their nibbles unpack (low nibbles are elements 0..15).
// Blocks after the last full group are stored plain.
struct q8_act_row {
    const int8_t* qs;   // [n], in the order above
    const float* d;     // [n / 32] scale per block
    const float* dsum;  // [n / 32] d * sum(qs) per block: q4_0's kernel folds its -8 offset with it
    int64_t n_blocks;
};

// Where element j (0..31) of block b sits in q8_act_row::qs.
inline int64_t q8_act_index(int64_t n_blocks, int64_t b, int j) {
    if (b >= n_blocks / 4 * 4) return b * k_qk + j;
    return (b / 4) * 128 + (j / 16) * 64 + (b % 4) * 16 + (j % 16);
}

// Owns the quantized rows of an [m, n] activation matrix.
struct q8_act {
    int64_t n = 0;
    std::vector<int8_t> qs;
    std::vector<float> d, dsum;
    q8_act_row row(int64_t i) const {
        const int64_t nb = n / k_qk;
        return {qs.data() + i * n, d.data() + i * nb, dsum.data() + i * nb, nb};
    }
};
void quantize_act_q8(const float* x, int64_t m, int64_t n, q8_act& out);  // x[m, n], n a multiple of 32

// y[r] = dot(weight row r, x) for r in [0, n_rows). Weight rows are row_bytes apart.
struct kernel_table {
    std::string_view isa;  // "scalar", "avx2", "avx512"
    void (*rows_q8_0)(const std::byte* w, size_t row_bytes, int64_t n_rows, q8_act_row x, int64_t n, float* y);
    void (*rows_q4_0)(const std::byte* w, size_t row_bytes, int64_t n_rows, q8_act_row x, int64_t n, float* y);
    void (*rows_f16)(const std::byte* w, size_t row_bytes, int64_t n_rows, const float* x, int64_t n, float* y);
    void (*rows_bf16)(const std::byte* w, size_t row_bytes, int64_t n_rows, const float* x, int64_t n, float* y);
    // q4_0 / q8_0 weights regrouped (dtype::q4_0r / q8_0r): n_rows a multiple of 4 from a band's start.
    // Null where this ISA has no such kernel, so weights stay plain there (repack.h).
    void (*rows_q4_0r)(const std::byte* w, size_t row_bytes, int64_t n_rows, q8_act_row x, int64_t n, float* y) = nullptr;
    void (*rows_q8_0r)(const std::byte* w, size_t row_bytes, int64_t n_rows, q8_act_row x, int64_t n, float* y) = nullptr;
    // rows_q4_0r for two activation rows x[0], x[1], row a's results at y + a * y_stride: prefill's weights
    // are unpacked once for both, and each result is bit for bit the single-row kernel's. Null: none.
    void (*rows2_q4_0r)(const std::byte* w, size_t row_bytes, int64_t n_rows, const q8_act_row* x, int64_t n, float* y,
                        int64_t y_stride) = nullptr;
    // One row of quantize_act_q8: x[n] into qs[n] (q8_act_row's order), d and dsum [n / 32]. Every table's
    // gives the scalar one's bytes exactly. Null: the scalar one.
    void (*quantize_act)(const float* x, int64_t n, int8_t* qs, float* d, float* dsum) = nullptr;
    // y[i] = silu(g[i]) * u[i], or silu(g[i]) where u is null (the LLM's SwiGLU, serial in decode, so it is
    // worth a kernel); y may alias g or u. The vector ones use their own exp and are as close as the scalar one (kernels_avx2.cpp).
    // Null: the scalar one.
    void (*silu_mul)(const float* g, const float* u, float* y, int64_t n) = nullptr;
    // Attention for one KV head's query group at one token (a kernel, as BLAS's packing costs more than these
    // small products): y[r] = softmax_j(scale * q[r] . k[j]) . v
    // over j < n_kv for r < n_q, q's and y's rows d floats apart, k's and v's kv_stride apart. scratch holds
    // attend_scratch_floats(n_kv, d). Null: the scalar one.
    void (*attend)(const float* q, int n_q, const float* k, const float* v, int64_t kv_stride, int n_kv, int d,
                   float scale, float* y, float* scratch) = nullptr;
};

// The vector kernels lay the group's query rows down the lanes (up to 16) of a [d, 16] block and its scores
// in [n_kv, 16]; the scalar one needs n_kv.
inline size_t attend_scratch_floats(int n_kv, int d) { return static_cast<size_t>(n_kv + d) * 16; }

const kernel_table& kernels_scalar();
const kernel_table* kernels_avx2();    // null when this CPU lacks AVX2 + FMA + F16C
const kernel_table* kernels_avx512();  // null when this CPU lacks AVX-512 F/BW/VL/DQ/VNNI
// The best table for this CPU; MM_ISA-independent: picked once from cpu_features().
const kernel_table& kernels_best();

struct cpu_features {
    bool avx2 = false, fma = false, f16c = false;
    bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false, avx512vnni = false;
};
cpu_features cpu_features_detect();

}  // namespace mm
