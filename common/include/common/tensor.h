// tensor: up to 4 dims, row-major (outermost first, as in PyTorch), one dtype, contiguous data that it
// owns (64-byte aligned) or views (an mmapped weight file, an arena).
// Thread safety: one thread writes at a time; concurrent reads are fine. Copies are explicit: clone().
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>

#include "common/dtype.h"

namespace mm {

constexpr int k_max_dims = 4;

struct shape_t {
    std::array<int64_t, k_max_dims> d{1, 1, 1, 1};
    int n = 0;  // number of dims

    shape_t() = default;
    shape_t(std::initializer_list<int64_t> dims);
    int64_t operator[](int i) const { return d[i]; }
    int64_t elements() const;
    int64_t last() const { return n ? d[n - 1] : 1; }
    int64_t rows() const { return n ? elements() / d[n - 1] : 1; }  // everything but the last dim
    bool operator==(const shape_t& o) const;
    std::string to_string() const;  // "[2, 3]"
};

class tensor {
public:
    tensor() = default;
    tensor(const tensor&) = delete;
    tensor& operator=(const tensor&) = delete;
    tensor(tensor&&) noexcept = default;
    tensor& operator=(tensor&&) noexcept = default;

    // Owning, zero-filled. For quantized types the last dim must be a multiple of the block.
    static tensor zeros(dtype t, shape_t shape);
    // Non-owning view of memory that outlives the tensor.
    static tensor view(dtype t, shape_t shape, void* data);
    static tensor view(dtype t, shape_t shape, const void* data) { return view(t, shape, const_cast<void*>(data)); }
    // Owning f32 copy of values.
    static tensor from(shape_t shape, std::span<const float> values);

    tensor clone() const;
    // Same bytes, another shape with the same element count (a view into this tensor).
    tensor reshape(shape_t shape) const;

    dtype type() const { return type_; }
    const shape_t& shape() const { return shape_; }
    int64_t dim(int i) const { return shape_.d[i]; }
    int n_dims() const { return shape_.n; }
    int64_t elements() const { return shape_.elements(); }
    int64_t rows() const { return shape_.rows(); }
    int64_t cols() const { return shape_.last(); }
    size_t row_bytes() const { return dtype_row_bytes(type_, cols()); }
    size_t bytes() const { return row_bytes() * static_cast<size_t>(rows()); }
    bool owns_data() const { return static_cast<bool>(storage_); }

    void* raw() { return data_; }
    const void* raw() const { return data_; }
    template <class T> T* data() { return static_cast<T*>(data_); }
    template <class T> const T* data() const { return static_cast<const T*>(data_); }
    const std::byte* row(int64_t r) const { return static_cast<const std::byte*>(data_) + r * row_bytes(); }
    std::byte* row(int64_t r) { return static_cast<std::byte*>(data_) + r * row_bytes(); }

    // f32 only: the elements as a span.
    std::span<float> f32();
    std::span<const float> f32() const;

private:
    struct aligned_free { void operator()(void* p) const noexcept; };

    dtype type_ = dtype::f32;
    shape_t shape_;
    void* data_ = nullptr;
    std::shared_ptr<void> storage_;  // set when this tensor (or the one it views via reshape) owns the data
};

// Dequantizes / widens any tensor to an owning f32 tensor of the same shape.
tensor to_f32(const tensor& t);
// A q4_0 / q8_0 matrix regrouped (t = q4_0r / q8_0r, see dtype.h) or the other way back: the same values.
tensor regrouped_as(const tensor& from, dtype t);
// Quantizes / narrows an f32 tensor to t (round to nearest; q8_0 and q4_0 as GGUF's reference quantizers).
tensor convert(const tensor& src, dtype t);

// Row conversions used by the above and by the kernels' fallbacks.
void row_to_f32(dtype t, const void* src, float* dst, int64_t n);
void row_from_f32(dtype t, const float* src, void* dst, int64_t n);

}  // namespace mm
