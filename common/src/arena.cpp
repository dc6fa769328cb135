#include "common/arena.h"

#include <cstring>

namespace mm {

arena::arena(size_t capacity_bytes)
    : block_(tensor::zeros(dtype::f32, {static_cast<int64_t>((capacity_bytes + 3) / 4)})), capacity_(capacity_bytes) {}

result<tensor> arena::alloc(dtype t, shape_t shape) {
    if (shape.last() % dtype_block_size(t) != 0)
        return status(errc::invalid_argument, "arena: last dim " + std::to_string(shape.last()) + " is not a multiple of " +
                                                  std::string(dtype_name(t)) + "'s block");
    const size_t bytes = dtype_row_bytes(t, shape.last()) * static_cast<size_t>(shape.rows());
    const size_t start = (used_ + 63) / 64 * 64;
    if (start > capacity_ || bytes > capacity_ - start)
        return status(errc::resource_exhausted, "arena: " + std::to_string(bytes) + " bytes asked, " +
                                                    std::to_string(capacity_ - std::min(start, capacity_)) + " of " +
                                                    std::to_string(capacity_) + " left");
    auto* p = static_cast<std::byte*>(block_.raw()) + start;
    std::memset(p, 0, bytes);
    used_ = start + bytes;
    return tensor::view(t, shape, p);
}

}  // namespace mm
