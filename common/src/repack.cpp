#include "common/repack.h"

#include "common/kernels.h"

namespace mm {

std::optional<tensor> repacked_for_matvec(const tensor& w) {
    constexpr int64_t stretch = int64_t{k_qk} * k_q4_0r_blocks;
    const kernel_table& kt = kernels_best();
    const bool q4 = w.type() == dtype::q4_0 && kt.rows_q4_0r, q8 = w.type() == dtype::q8_0 && kt.rows_q8_0r;
    if (!(q4 || q8) || w.shape().n != 2 || w.cols() % stretch != 0 || w.rows() % k_q4_0r_rows != 0) return std::nullopt;
    return regrouped_as(w, q4 ? dtype::q4_0r : dtype::q8_0r);
}

}  // namespace mm
