// gguf_writer: writes GGUF v3 files (the format gguf.h reads): metadata in the order set, then tensor infos,
// then each tensor's bytes at the file's alignment. For tools that make model files (the benchmarks' and
// tests' random-weight models, converters).
// Thread safety: none; one writer per file.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "common/gguf.h"
#include "common/status.h"
#include "common/tensor.h"

namespace mm {

class gguf_writer {
public:
    // Metadata. A key set twice keeps its first position and its last value.
    void set(const std::string& key, gguf_value value);
    void set_u32(const std::string& key, uint32_t v) { set(key, {gguf_type::u32, uint64_t{v}}); }
    void set_f32(const std::string& key, float v) { set(key, {gguf_type::f32, double{v}}); }
    void set_string(const std::string& key, std::string v) { set(key, {gguf_type::string, std::move(v)}); }

    // Tensors, in file order; t is copied. Its shape is row-major (outermost first), as gguf_tensor_info's.
    void add_tensor(const std::string& name, const tensor& t);

    status write(const std::filesystem::path& path) const;

private:
    std::vector<gguf_kv> kvs_;
    struct entry {
        std::string name;
        tensor data;
    };
    std::vector<entry> tensors_;
};

}  // namespace mm
