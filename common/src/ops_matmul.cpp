// matmul / matvec: y[m, n] = x[m, k] · w[n, k]ᵀ with weights in any dtype.
//
// f32 weights go to cblas_sgemm. Other dtypes take one of two paths:
//  - few activation rows (decode): our dot kernels over weight rows, activations quantized to q8 once for
//    the q types, so each weight byte is read once per call and the work is bound by memory bandwidth;
//  - many rows (prefill, conv-like shapes): weight tiles widened to f32 and handed to sgemm, where the
//    arithmetic, not the read, dominates.
// Both split the weight rows (n) across the pool, so each thread streams its own share of the weights.
#include <cblas.h>

#include <algorithm>
#include <vector>

#include "common/kernels.h"
#include "common/ops.h"
#include "common/status.h"

namespace mm::ops {
namespace {

// Above this many activation rows, widening a weight tile once and using sgemm beats m dot-product passes.
constexpr int64_t k_sgemm_min_rows = 16;
// Weight rows handled together: a q8_0 tile of 64 rows x 4096 is ~280 KB, which stays in L2 while every
// activation row passes over it.
constexpr int64_t k_tile_rows = 64;

std::vector<float>& scratch_f32(size_t n) {
    thread_local std::vector<float> buf;  // per-thread tile buffer, reused across calls
    if (buf.size() < n) buf.resize(n);
    return buf;
}

void matmul_f32(thread_pool& pool, const tensor& x, const tensor& w, tensor& y) {
    const int64_t m = x.rows(), k = x.cols(), n = w.rows();
    const float* xp = x.data<float>();
    const float* wp = w.data<float>();
    float* yp = y.data<float>();
    pool.parallel_for(
        n,
        [&](int64_t n0, int64_t n1) {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(m), static_cast<int>(n1 - n0),
                        static_cast<int>(k), 1.0f, xp, static_cast<int>(k), wp + n0 * k, static_cast<int>(k), 0.0f,
                        yp + n0, static_cast<int>(n));
        },
        /*min_chunk=*/16);
}

void matmul_widened(thread_pool& pool, const tensor& x, const tensor& w, tensor& y) {
    const int64_t m = x.rows(), k = x.cols(), n = w.rows();
    pool.parallel_for(
        n,
        [&](int64_t n0, int64_t n1) {
            auto& tile = scratch_f32(static_cast<size_t>(k_tile_rows * k));  // [k_tile_rows, k]
            for (int64_t t0 = n0; t0 < n1; t0 += k_tile_rows) {
                const int64_t nt = std::min(k_tile_rows, n1 - t0);
                for (int64_t r = 0; r < nt; ++r) row_to_f32(w.type(), w.row(t0 + r), tile.data() + r * k, k);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(m), static_cast<int>(nt),
                            static_cast<int>(k), 1.0f, x.data<float>(), static_cast<int>(k), tile.data(),
                            static_cast<int>(k), 0.0f, y.data<float>() + t0, static_cast<int>(n));
            }
        },
        /*min_chunk=*/k_tile_rows);
}

// The dot-kernel path for weights of one type that all read x (each [n_i, k], not f32): x quantized (or
// rounded) once, every weight's rows in one parallel_for, each thread's share a run of rows across them.
void matmul_kernels(thread_pool& pool, const tensor& x_in, std::span<const matmul_out> outs, matmul_mode mode) {
    const int64_t m = x_in.rows(), k = x_in.cols();
    const kernel_table& kt = kernels_best();
    const dtype type = outs[0].w->type();  // one for all (matmul_shared)
    int64_t total = 0;
    for (const auto& o : outs) {
        // Regrouped types are made only where their kernels exist (repack.h); their row runs start at
        // multiples of 4: min_chunk is 16 and every weight's row count a multiple of 4.
        MM_ASSERT(o.w->type() != dtype::q4_0r || kt.rows_q4_0r);
        MM_ASSERT(o.w->type() != dtype::q8_0r || kt.rows_q8_0r);
        MM_ASSERT(o.w->type() == type && (!dtype_is_regrouped(type) || total % 4 == 0));
        total += o.w->rows();
    }
    q8_act xq;
    if (dtype_is_quantized(type)) quantize_act_q8(x_in.data<float>(), m, k, xq);
    // rowwise: half-precision weights meet activations rounded to their own type.
    tensor rounded;
    const bool round_x = mode == matmul_mode::rowwise && (type == dtype::f16 || type == dtype::bf16);
    if (round_x) {
        rounded = tensor::zeros(dtype::f32, {m, k});
        std::vector<uint16_t> half(static_cast<size_t>(k));
        for (int64_t i = 0; i < m; ++i) {
            row_from_f32(type, x_in.data<float>() + i * k, half.data(), k);
            row_to_f32(type, half.data(), rounded.data<float>() + i * k, k);
        }
    }
    const tensor& x = round_x ? rounded : x_in;
    auto rows_of = [&](const tensor& w, int64_t r0, int64_t r1, tensor& y) {
        const size_t row_bytes = w.row_bytes();
        const int64_t n = w.rows();
        const auto* wp = static_cast<const std::byte*>(w.raw());
        for (int64_t t0 = r0; t0 < r1; t0 += k_tile_rows) {
            const int64_t nt = std::min(k_tile_rows, r1 - t0);
            const std::byte* tile = wp + t0 * row_bytes;
            int64_t i = 0;
            // q4_0r activation rows go in twos where the kernel exists (its nibbles unpacked once for both).
            if (w.type() == dtype::q4_0r && kt.rows2_q4_0r)
                for (; i + 2 <= m; i += 2) {
                    const q8_act_row xs[2] = {xq.row(i), xq.row(i + 1)};
                    kt.rows2_q4_0r(tile, row_bytes, nt, xs, k, y.data<float>() + i * n + t0, n);
                }
            for (; i < m; ++i) {
                float* out = y.data<float>() + i * n + t0;
                switch (w.type()) {
                    case dtype::q8_0: kt.rows_q8_0(tile, row_bytes, nt, xq.row(i), k, out); break;
                    case dtype::q4_0: kt.rows_q4_0(tile, row_bytes, nt, xq.row(i), k, out); break;
                    case dtype::q4_0r: kt.rows_q4_0r(tile, row_bytes, nt, xq.row(i), k, out); break;
                    case dtype::q8_0r: kt.rows_q8_0r(tile, row_bytes, nt, xq.row(i), k, out); break;
                    case dtype::f16: kt.rows_f16(tile, row_bytes, nt, x.data<float>() + i * k, k, out); break;
                    case dtype::bf16: kt.rows_bf16(tile, row_bytes, nt, x.data<float>() + i * k, k, out); break;
                    case dtype::f32: MM_ASSERT(false);
                }
            }
        }
    };
    pool.parallel_for(
        total,
        [&](int64_t n0, int64_t n1) {
            int64_t base = 0;  // first global row of outs[i]
            for (const auto& o : outs) {
                const int64_t n = o.w->rows();
                const int64_t r0 = std::max<int64_t>(n0 - base, 0), r1 = std::min<int64_t>(n1 - base, n);
                if (r0 < r1) rows_of(*o.w, r0, r1, *o.y);
                base += n;
            }
        },
        /*min_chunk=*/16);
}

}  // namespace

void matmul(thread_pool& pool, const tensor& x, const tensor& w, tensor& y, matmul_mode mode) {
    const matmul_out one{&w, &y};
    matmul_shared(pool, x, {&one, 1}, mode);
}

void matmul_shared(thread_pool& pool, const tensor& x, std::span<const matmul_out> outs, matmul_mode mode) {
    MM_ASSERT(x.type() == dtype::f32 && !outs.empty());
    // Regrouped rows are interleaved, so they are never widened one by one; their kernels are fast at any m.
    auto widens = [&](const tensor& w) {
        return mode == matmul_mode::fastest && x.rows() >= k_sgemm_min_rows && !dtype_is_regrouped(w.type());
    };
    bool together = true;
    for (const auto& o : outs) {
        MM_ASSERT(o.y->type() == dtype::f32 && x.cols() == o.w->cols());
        MM_ASSERT(o.y->rows() == x.rows() && o.y->cols() == o.w->rows());
        // Together only when they share a type: x is prepared once, for that type.
        together = together && o.w->type() == outs[0].w->type() && o.w->type() != dtype::f32 && !widens(*o.w);
    }
    if (together) return matmul_kernels(pool, x, outs, mode);
    for (const auto& o : outs) {  // one weight at a time, each on its own best path
        if (o.w->type() == dtype::f32) matmul_f32(pool, x, *o.w, *o.y);
        else if (widens(*o.w)) matmul_widened(pool, x, *o.w, *o.y);
        else matmul_kernels(pool, x, {&o, 1}, mode);
    }
}

void matvec(thread_pool& pool, const tensor& w, const tensor& x, tensor& y) {
    MM_ASSERT(x.elements() == w.cols() && y.elements() == w.rows());
    const tensor x2 = x.reshape({1, x.elements()});
    tensor y2 = y.reshape({1, y.elements()});
    matmul(pool, x2, w, y2);
}

}  // namespace mm::ops
