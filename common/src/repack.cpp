#include "common/repack.h"

#include "common/kernels.h"
#include "common/quantize.h"

namespace mm {

std::optional<tensor> repacked_for_matvec(const tensor& w) {
    constexpr int64_t group = int64_t{k_qk} * k_q4_0r_blocks;
    if (w.type() != dtype::q4_0 || w.shape().n != 2 || w.cols() % group != 0 || w.rows() % k_q4_0r_rows != 0 ||
        !kernels_best().rows_q4_0r)
        return std::nullopt;
    tensor r = tensor::zeros(dtype::q4_0r, w.shape());
    repack_q4_0r(static_cast<const block_q4_0*>(w.raw()), static_cast<block_q4_0r*>(r.raw()), w.rows(), w.cols());
    return r;
}

}  // namespace mm
