#include "common/tensor.h"

#include <cstdlib>
#include <cstring>

#include <sys/mman.h>

#include "common/fp16.h"
#include "common/quantize.h"
#include "common/status.h"

namespace mm {

namespace {
constexpr size_t k_huge_page = size_t{2} << 20;
}  // namespace

shape_t::shape_t(std::initializer_list<int64_t> dims) {
    MM_ASSERT(dims.size() <= k_max_dims);
    for (int64_t v : dims) d[n++] = v;
}

int64_t shape_t::elements() const {
    int64_t e = 1;
    for (int i = 0; i < n; ++i) e *= d[i];
    return e;
}

bool shape_t::operator==(const shape_t& o) const {
    if (n != o.n) return false;
    for (int i = 0; i < n; ++i)
        if (d[i] != o.d[i]) return false;
    return true;
}

std::string shape_t::to_string() const {
    std::string s = "[";
    for (int i = 0; i < n; ++i) s += (i ? ", " : "") + std::to_string(d[i]);
    return s + "]";
}

void tensor::aligned_free::operator()(void* p) const noexcept { std::free(p); }

tensor tensor::zeros(dtype t, shape_t shape) {
    MM_ASSERT(shape.last() % dtype_block_size(t) == 0);
    tensor r;
    r.type_ = t;
    r.shape_ = shape;
    const size_t n = (r.bytes() + 63) / 64 * 64;
    // Big buffers (activations, KV cache) are 2 MiB aligned and asked to be backed by huge pages: fewer TLB
    // misses when a kernel streams through them.
    const bool big = n >= k_huge_page;
    void* p = std::aligned_alloc(big ? k_huge_page : 64, big ? (n + k_huge_page - 1) / k_huge_page * k_huge_page : (n ? n : 64));
    MM_ASSERT(p != nullptr);
    if (big) madvise(p, n, MADV_HUGEPAGE);
    std::memset(p, 0, n);
    r.storage_ = std::shared_ptr<void>(p, aligned_free{});
    r.data_ = p;
    return r;
}

tensor tensor::view(dtype t, shape_t shape, void* data) {
    MM_ASSERT(shape.last() % dtype_block_size(t) == 0);
    tensor r;
    r.type_ = t;
    r.shape_ = shape;
    r.data_ = data;
    return r;
}

tensor tensor::from(shape_t shape, std::span<const float> values) {
    MM_ASSERT(static_cast<int64_t>(values.size()) == shape.elements());
    tensor r = zeros(dtype::f32, shape);
    std::memcpy(r.data_, values.data(), values.size_bytes());
    return r;
}

tensor tensor::clone() const {
    tensor r = zeros(type_, shape_);
    std::memcpy(r.data_, data_, bytes());
    return r;
}

tensor tensor::reshape(shape_t shape) const {
    MM_ASSERT(shape.elements() == shape_.elements());
    MM_ASSERT(shape.last() % dtype_block_size(type_) == 0);
    tensor r;
    r.type_ = type_;
    r.shape_ = shape;
    r.data_ = data_;
    r.storage_ = storage_;  // shares ownership, so the view keeps the data alive
    return r;
}

std::span<float> tensor::f32() {
    MM_ASSERT(type_ == dtype::f32);
    return {static_cast<float*>(data_), static_cast<size_t>(elements())};
}

std::span<const float> tensor::f32() const {
    MM_ASSERT(type_ == dtype::f32);
    return {static_cast<const float*>(data_), static_cast<size_t>(elements())};
}

void row_to_f32(dtype t, const void* src, float* dst, int64_t n) {
    switch (t) {
        case dtype::f32: std::memcpy(dst, src, n * sizeof(float)); return;
        case dtype::f16: {
            auto* s = static_cast<const uint16_t*>(src);
            for (int64_t i = 0; i < n; ++i) dst[i] = f16_to_f32(s[i]);
            return;
        }
        case dtype::bf16: {
            auto* s = static_cast<const uint16_t*>(src);
            for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(s[i]);
            return;
        }
        case dtype::q8_0: dequantize_row_q8_0(static_cast<const block_q8_0*>(src), dst, n); return;
        case dtype::q4_0: dequantize_row_q4_0(static_cast<const block_q4_0*>(src), dst, n); return;
        case dtype::q4_0r:
        case dtype::q8_0r: MM_ASSERT(!"regrouped rows are interleaved: use to_f32 on the whole matrix"); return;
    }
}

void row_from_f32(dtype t, const float* src, void* dst, int64_t n) {
    switch (t) {
        case dtype::f32: std::memcpy(dst, src, n * sizeof(float)); return;
        case dtype::f16: {
            auto* d = static_cast<uint16_t*>(dst);
            for (int64_t i = 0; i < n; ++i) d[i] = f32_to_f16(src[i]);
            return;
        }
        case dtype::bf16: {
            auto* d = static_cast<uint16_t*>(dst);
            for (int64_t i = 0; i < n; ++i) d[i] = f32_to_bf16(src[i]);
            return;
        }
        case dtype::q8_0: quantize_row_q8_0(src, static_cast<block_q8_0*>(dst), n); return;
        case dtype::q4_0: quantize_row_q4_0(src, static_cast<block_q4_0*>(dst), n); return;
        case dtype::q4_0r:
        case dtype::q8_0r: MM_ASSERT(!"regrouped rows are interleaved: use convert on the whole matrix"); return;
    }
}

tensor regrouped_as(const tensor& from, dtype t) {
    MM_ASSERT(dtype_is_regrouped(from.type()) != dtype_is_regrouped(t));
    MM_ASSERT(dtype_plain(from.type()) == dtype_plain(t));
    tensor r = tensor::zeros(t, from.shape());
    const int64_t rows = from.rows(), cols = from.cols();
    switch (t) {
        case dtype::q4_0r: repack_q4_0r(static_cast<const block_q4_0*>(from.raw()), static_cast<block_q4_0r*>(r.raw()), rows, cols); break;
        case dtype::q8_0r: repack_q8_0r(static_cast<const block_q8_0*>(from.raw()), static_cast<block_q8_0r*>(r.raw()), rows, cols); break;
        case dtype::q4_0: unpack_q4_0r(static_cast<const block_q4_0r*>(from.raw()), static_cast<block_q4_0*>(r.raw()), rows, cols); break;
        default: unpack_q8_0r(static_cast<const block_q8_0r*>(from.raw()), static_cast<block_q8_0*>(r.raw()), rows, cols); break;
    }
    return r;
}

tensor to_f32(const tensor& t) {
    if (dtype_is_regrouped(t.type())) return to_f32(regrouped_as(t, dtype_plain(t.type())));
    tensor r = tensor::zeros(dtype::f32, t.shape());
    for (int64_t i = 0; i < t.rows(); ++i) row_to_f32(t.type(), t.row(i), r.data<float>() + i * t.cols(), t.cols());
    return r;
}

tensor convert(const tensor& src, dtype t) {
    MM_ASSERT(src.type() == dtype::f32);
    if (dtype_is_regrouped(t)) return regrouped_as(convert(src, dtype_plain(t)), t);
    tensor r = tensor::zeros(t, src.shape());
    for (int64_t i = 0; i < src.rows(); ++i) row_from_f32(t, src.data<float>() + i * src.cols(), r.row(i), src.cols());
    return r;
}

}  // namespace mm
