// GGUF v2/v3 reader: metadata, tensor infos, and tensor views straight into the mapped file.
// Every byte is untrusted: lengths, counts, dims, offsets and types are checked before use, and a bad file
// gives errc::corrupt_file (errc::unsupported for a version or tensor type we do not implement) naming what
// is wrong and where. Tensors have 1 to 4 dims, none of them 0. Spec: github.com/ggml-org/ggml docs/gguf.md.
// Thread safety: a gguf_file is immutable after parsing; share it freely.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/dtype.h"
#include "common/status.h"
#include "common/tensor.h"

namespace mm {

class mapped_file;

// Metadata value types, numbered as in the file.
enum class gguf_type : uint32_t {
    u8 = 0, i8 = 1, u16 = 2, i16 = 3, u32 = 4, i32 = 5, f32 = 6, boolean = 7,
    string = 8, array = 9, u64 = 10, i64 = 11, f64 = 12,
};
std::string_view gguf_type_name(gguf_type t);

struct gguf_value;
struct gguf_array {
    gguf_type elem_type = gguf_type::u8;
    std::vector<gguf_value> items;
};

// One metadata value. Unsigned integers are held as uint64_t, signed ones as int64_t, floats as double;
// `type` keeps the type the file stored.
struct gguf_value {
    gguf_type type = gguf_type::u8;
    std::variant<uint64_t, int64_t, double, bool, std::string, gguf_array> data;
};

struct gguf_kv {
    std::string key;
    gguf_value value;
};

struct gguf_tensor_info {
    std::string name;
    dtype type = dtype::f32;
    shape_t shape;                    // row-major, outermost first: GGUF's ne[] reversed
    uint64_t offset = 0;              // from the start of the data section
    uint64_t n_bytes = 0;
    const std::byte* data = nullptr;  // into the parsed bytes
};

class gguf_file {
public:
    gguf_file(const gguf_file&) = delete;
    gguf_file& operator=(const gguf_file&) = delete;
    gguf_file(gguf_file&&) noexcept = default;
    gguf_file& operator=(gguf_file&&) noexcept = default;

    uint32_t version() const { return version_; }
    uint32_t alignment() const { return alignment_; }     // general.alignment, 32 when absent
    uint64_t data_offset() const { return data_offset_; } // where the data section starts in the bytes

    // Metadata in file order. find() gives nullptr for a missing key.
    const std::vector<gguf_kv>& metadata() const { return kvs_; }
    const gguf_value* find(std::string_view key) const;

    // Typed getters: errc::not_found for a missing key, errc::corrupt_file for a value of another type or
    // one that does not fit (integers convert between widths when the value fits; floats take f32 or f64).
    // The *_or forms give the fallback only when the key is absent, never when it has the wrong type.
    result<uint32_t> get_u32(std::string_view key) const;
    result<uint32_t> get_u32_or(std::string_view key, uint32_t fallback) const;
    result<uint64_t> get_u64(std::string_view key) const;
    result<int32_t> get_i32(std::string_view key) const;
    result<float> get_f32(std::string_view key) const;
    result<float> get_f32_or(std::string_view key, float fallback) const;
    result<bool> get_bool(std::string_view key) const;
    result<std::string_view> get_string(std::string_view key) const;  // valid while this file lives
    result<std::vector<std::string>> get_string_array(std::string_view key) const;
    result<std::vector<float>> get_f32_array(std::string_view key) const;
    result<std::vector<int32_t>> get_i32_array(std::string_view key) const;

    // Tensors in file order. find_tensor() gives nullptr for a missing name.
    const std::vector<gguf_tensor_info>& tensors() const { return tensors_; }
    const gguf_tensor_info* find_tensor(std::string_view name) const;

    // A non-owning view of a tensor's bytes (info must come from this file's tensors()). The view stays valid
    // while this gguf_file, or a holder of keep_alive(), lives.
    tensor view(const gguf_tensor_info& info) const;
    result<tensor> view(std::string_view name) const;  // errc::not_found for a missing name

    // Owner of the bytes (the file mapping for gguf_open; the caller's owner for gguf_parse).
    const std::shared_ptr<const void>& keep_alive() const { return keep_alive_; }
    // The file mapping when gguf_open made this; null for gguf_parse's caller-owned bytes.
    const mapped_file* mapping() const { return mapping_; }

private:
    gguf_file() = default;
    friend result<gguf_file> gguf_parse(std::span<const std::byte>, std::shared_ptr<const void>);
    friend result<gguf_file> gguf_open(const std::filesystem::path& path);

    uint32_t version_ = 0;
    uint32_t alignment_ = 32;
    uint64_t data_offset_ = 0;
    std::vector<gguf_kv> kvs_;
    std::vector<gguf_tensor_info> tensors_;
    std::map<std::string, size_t, std::less<>> kv_index_;
    std::map<std::string, size_t, std::less<>> tensor_index_;
    std::shared_ptr<const void> keep_alive_;
    const mapped_file* mapping_ = nullptr;  // owned through keep_alive_
};

// Maps the file and parses it; the mapping lives as long as the gguf_file (or its keep_alive()).
result<gguf_file> gguf_open(const std::filesystem::path& path);

// Parses bytes that the caller keeps alive: through `owner` if given, else for as long as the result is used.
// Tensor data must be at least 4-byte aligned in memory for f32 views, 2 for the others; a misaligned
// tensor is reported as corrupt (mmap and heap buffers are aligned, so only offsets can cause it).
result<gguf_file> gguf_parse(std::span<const std::byte> bytes, std::shared_ptr<const void> owner = {});

}  // namespace mm
