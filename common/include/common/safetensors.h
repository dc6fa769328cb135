// safetensors reader: an 8-byte little-endian header length N, N bytes of JSON naming each tensor's dtype,
// shape and data_offsets, then the data. Spec: github.com/huggingface/safetensors (README, "Format").
// Every byte is untrusted: the header length, JSON types, shapes and offsets are checked, and a bad file gives
// errc::corrupt_file naming the tensor and field. Tensors may have any number of dims in the listing; view()
// takes up to 4 and F32 / F16 / BF16 only (errc::unsupported otherwise). Unknown fields in a tensor entry are
// ignored; duplicate names are an error.
// Thread safety: a safetensors_file is immutable after parsing; share it freely.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/dtype.h"
#include "common/status.h"
#include "common/tensor.h"

namespace mm {

enum class safetensors_dtype : uint8_t {
    boolean, u8, i8, i16, u16, f16, bf16, i32, u32, f32, f64, i64, u64, f8_e4m3, f8_e5m2,
};
std::string_view safetensors_dtype_name(safetensors_dtype t);  // as the file spells it: "F32", "BOOL", ...
std::optional<safetensors_dtype> safetensors_dtype_from_name(std::string_view name);
size_t safetensors_dtype_size(safetensors_dtype t);            // bytes per element
std::optional<dtype> safetensors_to_dtype(safetensors_dtype t); // F32 / F16 / BF16; nullopt for the rest

constexpr uint64_t k_safetensors_max_header = 100ull << 20;  // a larger JSON header is refused as corrupt

struct safetensors_tensor_info {
    std::string name;
    safetensors_dtype type = safetensors_dtype::f32;
    std::vector<int64_t> shape;       // row-major, outermost first; empty for a scalar
    int64_t elements = 1;
    uint64_t begin = 0, end = 0;      // data_offsets: from the start of the data section
    const std::byte* data = nullptr;  // into the parsed bytes
    uint64_t n_bytes() const { return end - begin; }
};

class safetensors_file {
public:
    safetensors_file(const safetensors_file&) = delete;
    safetensors_file& operator=(const safetensors_file&) = delete;
    safetensors_file(safetensors_file&&) noexcept = default;
    safetensors_file& operator=(safetensors_file&&) noexcept = default;

    // Tensors in data order (by begin offset, then name): the writer's order for ordinary files.
    const std::vector<safetensors_tensor_info>& tensors() const { return tensors_; }
    const safetensors_tensor_info* find_tensor(std::string_view name) const;  // nullptr when missing
    // The optional "__metadata__" string map.
    const std::map<std::string, std::string, std::less<>>& metadata() const { return metadata_; }
    uint64_t data_offset() const { return data_offset_; }  // 8 + header length

    // A non-owning view (info must come from this file's tensors()), valid while this safetensors_file or a
    // holder of keep_alive() lives. errc::unsupported for a dtype other than F32 / F16 / BF16, more than 4 dims,
    // a last dim of 0, or data that is not aligned for its type in memory.
    result<tensor> view(const safetensors_tensor_info& info) const;
    result<tensor> view(std::string_view name) const;  // errc::not_found for a missing name

    const std::shared_ptr<const void>& keep_alive() const { return keep_alive_; }

private:
    safetensors_file() = default;
    friend result<safetensors_file> safetensors_parse(std::span<const std::byte>, std::shared_ptr<const void>);

    uint64_t data_offset_ = 0;
    std::vector<safetensors_tensor_info> tensors_;
    std::map<std::string, size_t, std::less<>> index_;
    std::map<std::string, std::string, std::less<>> metadata_;
    std::shared_ptr<const void> keep_alive_;
};

// Maps the file and parses it; the mapping lives as long as the safetensors_file (or its keep_alive()).
result<safetensors_file> safetensors_open(const std::filesystem::path& path);

// Parses bytes that the caller keeps alive: through `owner` if given, else for as long as the result is used.
result<safetensors_file> safetensors_parse(std::span<const std::byte> bytes, std::shared_ptr<const void> owner = {});

}  // namespace mm
