// arena: one block of memory handed out as tensors in order and given back all at once, for a request's
// activations. Allocation is a pointer bump; nothing is freed singly.
// Thread safety: one thread at a time (each request owns its arena).
#pragma once

#include <cstddef>

#include "common/status.h"
#include "common/tensor.h"

namespace mm {

class arena {
public:
    explicit arena(size_t capacity_bytes);
    arena(const arena&) = delete;
    arena& operator=(const arena&) = delete;
    arena(arena&&) noexcept = default;
    arena& operator=(arena&&) noexcept = default;

    // A zero-filled view of the next bytes, 64-byte aligned; errc::resource_exhausted when it does not fit.
    // The view is valid until reset() or the arena's end.
    result<tensor> alloc(dtype t, shape_t shape);
    void reset() { used_ = 0; }  // every tensor handed out so far is invalid after this

    size_t used() const { return used_; }
    size_t capacity() const { return capacity_; }

private:
    tensor block_;  // owns the memory
    size_t capacity_ = 0;
    size_t used_ = 0;
};

}  // namespace mm
