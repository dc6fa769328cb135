// GGUF parsing: header, metadata, tensor infos, data-section checks. Typed getters are in gguf_metadata.cpp.
#include "common/gguf.h"

#include <algorithm>
#include <bit>
#include <cstdio>
#include <cstring>
#include <limits>

#include "common/mapped_file.h"

namespace mm {

static_assert(std::endian::native == std::endian::little, "the readers assume a little-endian host");

namespace {

constexpr uint32_t k_max_array_depth = 4;       // arrays of arrays of ...; real files use 1
constexpr uint64_t k_min_kv_bytes = 8 + 4 + 1;  // key length, value type, smallest value
constexpr uint64_t k_min_tensor_info_bytes = 8 + 4 + 8 + 4 + 8;  // name length, n_dims, one dim, type, offset
// A parsed value takes ~48 bytes however small it was in the file; this caps what a crafted file can make us
// allocate (~0.8 GB). Real vocabularies hold a few hundred thousand values.
constexpr uint64_t k_max_metadata_values = 1ull << 24;

// Reads little-endian values from untrusted bytes; every read is checked against what is left.
class cursor {
public:
    explicit cursor(std::span<const std::byte> b) : b_(b) {}

    size_t pos() const { return pos_; }
    size_t left() const { return b_.size() - pos_; }

    status need(uint64_t n, std::string_view what) const {
        if (n <= left()) return ok_status();
        return status(errc::corrupt_file, "truncated: " + std::string(what) + " needs " + std::to_string(n) +
                                              " bytes at offset " + std::to_string(pos_) + ", " +
                                              std::to_string(left()) + " left");
    }

    template <class T>
    status read(T& out, std::string_view what) {
        MM_TRY(need(sizeof(T), what));
        std::memcpy(&out, b_.data() + pos_, sizeof(T));
        pos_ += sizeof(T);
        return ok_status();
    }

    status read_string(std::string& out, std::string_view what) {
        uint64_t n = 0;
        MM_TRY(read(n, what));
        if (n > left())
            return status(errc::corrupt_file, std::string(what) + " length " + std::to_string(n) + " at offset " +
                                                  std::to_string(pos_ - 8) + " exceeds the " +
                                                  std::to_string(left()) + " bytes left");
        out.assign(reinterpret_cast<const char*>(b_.data() + pos_), static_cast<size_t>(n));
        pos_ += static_cast<size_t>(n);
        return ok_status();
    }

private:
    std::span<const std::byte> b_;
    size_t pos_ = 0;
};

bool valid_value_type(uint32_t t) { return t <= static_cast<uint32_t>(gguf_type::f64); }

// Bytes the smallest value of a type occupies; an array count is checked against it before allocating.
uint64_t min_value_bytes(gguf_type t) {
    switch (t) {
        case gguf_type::u8: case gguf_type::i8: case gguf_type::boolean: return 1;
        case gguf_type::u16: case gguf_type::i16: return 2;
        case gguf_type::u32: case gguf_type::i32: case gguf_type::f32: return 4;
        case gguf_type::u64: case gguf_type::i64: case gguf_type::f64: return 8;
        case gguf_type::string: return 8;     // the length
        case gguf_type::array: return 4 + 8;  // element type and count
    }
    return 1;
}

template <class T, class V>
status read_scalar(cursor& c, gguf_value& out) {
    T v{};
    MM_TRY(c.read(v, gguf_type_name(out.type)));
    out.data = static_cast<V>(v);
    return ok_status();
}

status read_value(cursor& c, gguf_value& out, uint32_t depth, uint64_t& n_values) {
    if (++n_values > k_max_metadata_values)
        return status(errc::corrupt_file, "metadata holds more than " + std::to_string(k_max_metadata_values) +
                                              " values (at offset " + std::to_string(c.pos()) + ")");
    switch (out.type) {
        case gguf_type::u8: return read_scalar<uint8_t, uint64_t>(c, out);
        case gguf_type::i8: return read_scalar<int8_t, int64_t>(c, out);
        case gguf_type::u16: return read_scalar<uint16_t, uint64_t>(c, out);
        case gguf_type::i16: return read_scalar<int16_t, int64_t>(c, out);
        case gguf_type::u32: return read_scalar<uint32_t, uint64_t>(c, out);
        case gguf_type::i32: return read_scalar<int32_t, int64_t>(c, out);
        case gguf_type::u64: return read_scalar<uint64_t, uint64_t>(c, out);
        case gguf_type::i64: return read_scalar<int64_t, int64_t>(c, out);
        case gguf_type::f32: return read_scalar<float, double>(c, out);
        case gguf_type::f64: return read_scalar<double, double>(c, out);
        case gguf_type::boolean: {
            uint8_t b = 0;
            MM_TRY(c.read(b, "bool"));
            if (b > 1)
                return status(errc::corrupt_file, "bool value " + std::to_string(b) + " at offset " +
                                                      std::to_string(c.pos() - 1) + " is not 0 or 1");
            out.data = b == 1;
            return ok_status();
        }
        case gguf_type::string: {
            std::string s;
            MM_TRY(c.read_string(s, "string"));
            out.data = std::move(s);
            return ok_status();
        }
        case gguf_type::array: {
            const size_t at = c.pos();
            uint32_t elem = 0;
            uint64_t n = 0;
            MM_TRY(c.read(elem, "array element type"));
            if (!valid_value_type(elem))
                return status(errc::corrupt_file, "unknown array element type " + std::to_string(elem) +
                                                      " at offset " + std::to_string(at));
            const auto elem_type = static_cast<gguf_type>(elem);
            if (elem_type == gguf_type::array && depth + 1 >= k_max_array_depth)
                return status(errc::corrupt_file, "arrays nested deeper than " + std::to_string(k_max_array_depth) +
                                                      " at offset " + std::to_string(at));
            MM_TRY(c.read(n, "array count"));
            const uint64_t min_bytes = min_value_bytes(elem_type);
            if (n > c.left() / min_bytes)
                return status(errc::corrupt_file, "array of " + std::to_string(n) + " " +
                                                      std::string(gguf_type_name(elem_type)) + " at offset " +
                                                      std::to_string(at) + " needs at least " +
                                                      (n > std::numeric_limits<uint64_t>::max() / min_bytes
                                                           ? std::string("more")
                                                           : std::to_string(n * min_bytes)) +
                                                      " bytes, " + std::to_string(c.left()) + " left");
            gguf_array arr;
            arr.elem_type = elem_type;
            arr.items.resize(static_cast<size_t>(n));
            for (uint64_t i = 0; i < n; ++i) {
                gguf_value& v = arr.items[static_cast<size_t>(i)];
                v.type = elem_type;
                if (status s = read_value(c, v, depth + 1, n_values); !s.ok())
                    return std::move(s).context("array element " + std::to_string(i));
            }
            out.data = std::move(arr);
            return ok_status();
        }
    }
    return status(errc::internal, "unhandled gguf type");
}

// ggml tensor types by id; only some map to our dtypes. Ids past the table are not ggml types at all.
struct ggml_type_row {
    const char* name;
    std::optional<dtype> type;
};
constexpr ggml_type_row k_ggml_types[] = {
    {"F32", dtype::f32},      {"F16", dtype::f16},          {"Q4_0", dtype::q4_0},      {"Q4_1", {}},
    {"Q4_2 (removed)", {}},   {"Q4_3 (removed)", {}},       {"Q5_0", {}},               {"Q5_1", {}},
    {"Q8_0", dtype::q8_0},    {"Q8_1", {}},                 {"Q2_K", {}},               {"Q3_K", {}},
    {"Q4_K", {}},             {"Q5_K", {}},                 {"Q6_K", {}},               {"Q8_K", {}},
    {"IQ2_XXS", {}},          {"IQ2_XS", {}},               {"IQ3_XXS", {}},            {"IQ1_S", {}},
    {"IQ4_NL", {}},           {"IQ3_S", {}},                {"IQ2_S", {}},              {"IQ4_XS", {}},
    {"I8", {}},               {"I16", {}},                  {"I32", {}},                {"I64", {}},
    {"F64", {}},              {"IQ1_M", {}},                {"BF16", dtype::bf16},      {"Q4_0_4_4 (removed)", {}},
    {"Q4_0_4_8 (removed)", {}}, {"Q4_0_8_8 (removed)", {}}, {"TQ1_0", {}},              {"TQ2_0", {}},
    {"IQ4_NL_4_4 (removed)", {}}, {"IQ4_NL_4_8 (removed)", {}}, {"IQ4_NL_8_8 (removed)", {}}, {"MXFP4", {}},
};

result<dtype> dtype_from_ggml(uint32_t id, const std::string& tensor_name) {
    if (id >= std::size(k_ggml_types))
        return status(errc::corrupt_file, "tensor '" + tensor_name + "': unknown ggml type id " + std::to_string(id));
    const ggml_type_row& row = k_ggml_types[id];
    if (!row.type)
        return status(errc::unsupported, "tensor '" + tensor_name + "': ggml type " + row.name + " (id " +
                                             std::to_string(id) +
                                             ") is not supported (only F32, F16, BF16, Q8_0, Q4_0)");
    return *row.type;
}

size_t natural_alignment(dtype t) { return t == dtype::f32 ? 4 : 2; }

using name_index = std::map<std::string, size_t, std::less<>>;

status read_kvs(cursor& c, uint64_t n_kv, std::vector<gguf_kv>& kvs, name_index& index) {
    if (n_kv > c.left() / k_min_kv_bytes)
        return status(errc::corrupt_file, "n_kv " + std::to_string(n_kv) + " cannot fit in the " +
                                              std::to_string(c.left()) + " bytes after the header");
    kvs.reserve(static_cast<size_t>(n_kv));
    uint64_t n_values = 0;
    for (uint64_t i = 0; i < n_kv; ++i) {
        const std::string where = "key #" + std::to_string(i);
        gguf_kv kv;
        if (status s = c.read_string(kv.key, "key"); !s.ok()) return std::move(s).context(where);
        uint32_t type = 0;
        const size_t type_at = c.pos();
        if (status s = c.read(type, "value type"); !s.ok()) return std::move(s).context(where + " '" + kv.key + "'");
        if (!valid_value_type(type))
            return status(errc::corrupt_file, where + " '" + kv.key + "': unknown value type " + std::to_string(type) +
                                                  " at offset " + std::to_string(type_at));
        kv.value.type = static_cast<gguf_type>(type);
        if (status s = read_value(c, kv.value, 0, n_values); !s.ok())
            return std::move(s).context(where + " '" + kv.key + "'");
        if (!index.emplace(kv.key, kvs.size()).second)
            return status(errc::corrupt_file, where + ": duplicate key '" + kv.key + "'");
        kvs.push_back(std::move(kv));
    }
    return ok_status();
}

// A tensor info as read, before the data section is known.
struct raw_tensor_info {
    std::string name;
    uint32_t n_dims = 0;
    uint64_t ne[k_max_dims] = {};  // ggml order: ne[0] innermost
    uint32_t ggml_type = 0;
    uint64_t offset = 0;
};

status read_tensor_info(cursor& c, raw_tensor_info& t) {
    MM_TRY(c.read_string(t.name, "name"));
    const std::string where = "tensor '" + t.name + "'";
    const size_t dims_at = c.pos();
    if (status s = c.read(t.n_dims, "n_dims"); !s.ok()) return std::move(s).context(where);
    if (t.n_dims < 1 || t.n_dims > static_cast<uint32_t>(k_max_dims))
        return status(errc::corrupt_file, where + ": n_dims " + std::to_string(t.n_dims) + " at offset " +
                                              std::to_string(dims_at) + " is not in 1..4");
    for (uint32_t d = 0; d < t.n_dims; ++d)
        if (status s = c.read(t.ne[d], "dim"); !s.ok()) return std::move(s).context(where);
    if (status s = c.read(t.ggml_type, "type"); !s.ok()) return std::move(s).context(where);
    if (status s = c.read(t.offset, "offset"); !s.ok()) return std::move(s).context(where);
    return ok_status();
}

// Shape, byte size and place of one tensor; the data must lie inside `bytes` at a multiple of the alignment.
status place_tensor(const raw_tensor_info& raw, std::span<const std::byte> bytes, uint64_t data_start,
                    uint64_t alignment, gguf_tensor_info& out) {
    const std::string where = "tensor '" + raw.name + "'";
    auto type = dtype_from_ggml(raw.ggml_type, raw.name);
    if (!type) return type.error();

    out.name = raw.name;
    out.type = *type;
    out.offset = raw.offset;
    out.shape.n = static_cast<int>(raw.n_dims);
    for (uint32_t d = 0; d < raw.n_dims; ++d) {
        if (raw.ne[d] > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
            return status(errc::corrupt_file, where + ": dim " + std::to_string(raw.ne[d]) + " is too large");
        // mm::tensor has no empty tensors (a row count divides by the last dim), and model files hold none.
        if (raw.ne[d] == 0)
            return status(errc::unsupported, where + ": a dim of 0 (an empty tensor) is not supported");
        out.shape.d[raw.n_dims - 1 - d] = static_cast<int64_t>(raw.ne[d]);
    }

    const uint64_t block = static_cast<uint64_t>(dtype_block_size(*type));
    if (raw.ne[0] % block != 0)
        return status(errc::corrupt_file, where + ": last dim " + std::to_string(raw.ne[0]) +
                                              " is not a multiple of the " + std::string(dtype_name(*type)) +
                                              " block of " + std::to_string(block));
    // bytes = (ne[0] / block) * block_bytes * ne[1] * ne[2] * ne[3], each step checked for overflow.
    uint64_t n_bytes = raw.ne[0] / block;
    bool overflow = __builtin_mul_overflow(n_bytes, static_cast<uint64_t>(dtype_block_bytes(*type)), &n_bytes);
    for (uint32_t d = 1; d < raw.n_dims; ++d)
        overflow = overflow || __builtin_mul_overflow(n_bytes, raw.ne[d], &n_bytes);
    int64_t n_elements = 1;
    for (uint32_t d = 0; d < raw.n_dims; ++d)
        overflow = overflow || __builtin_mul_overflow(n_elements, static_cast<int64_t>(raw.ne[d]), &n_elements);
    if (overflow || n_bytes > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        return status(errc::corrupt_file, where + ": shape " + out.shape.to_string() + " of " +
                                              std::string(dtype_name(*type)) + " overflows its byte size");
    out.n_bytes = n_bytes;

    if (raw.offset % alignment != 0)
        return status(errc::corrupt_file, where + ": offset " + std::to_string(raw.offset) +
                                              " is not a multiple of the alignment " + std::to_string(alignment));
    uint64_t rel_end = 0, begin = 0, end = 0;
    const bool end_overflows = __builtin_add_overflow(raw.offset, n_bytes, &rel_end);
    if (end_overflows || __builtin_add_overflow(data_start, raw.offset, &begin) ||
        __builtin_add_overflow(begin, n_bytes, &end) || end > bytes.size())
        return status(errc::corrupt_file, where + ": data [" + std::to_string(raw.offset) + ", " +
                                              (end_overflows ? std::string("overflow") : std::to_string(rel_end)) +
                                              ") of the data section at " + std::to_string(data_start) +
                                              " is past the end of the file (" + std::to_string(bytes.size()) +
                                              " bytes)");
    out.data = bytes.data() + begin;
    if (reinterpret_cast<uintptr_t>(out.data) % natural_alignment(*type) != 0)
        return status(errc::corrupt_file, where + ": data at byte " + std::to_string(begin) + " is not " +
                                              std::to_string(natural_alignment(*type)) + "-byte aligned for " +
                                              std::string(dtype_name(*type)));
    return ok_status();
}

status check_no_overlap(const std::vector<gguf_tensor_info>& tensors) {
    std::vector<const gguf_tensor_info*> order;
    order.reserve(tensors.size());
    for (const auto& t : tensors) order.push_back(&t);
    std::sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->offset < b->offset; });
    for (size_t i = 1; i < order.size(); ++i) {
        const gguf_tensor_info& a = *order[i - 1];
        const gguf_tensor_info& b = *order[i];
        if (a.offset + a.n_bytes > b.offset)
            return status(errc::corrupt_file, "tensors '" + a.name + "' [" + std::to_string(a.offset) + ", " +
                                                  std::to_string(a.offset + a.n_bytes) + ") and '" + b.name + "' [" +
                                                  std::to_string(b.offset) + ", " +
                                                  std::to_string(b.offset + b.n_bytes) + ") overlap");
    }
    return ok_status();
}

result<uint32_t> read_alignment(const std::vector<gguf_kv>& kvs, const name_index& index) {
    auto it = index.find("general.alignment");
    if (it == index.end()) return uint32_t{32};
    const gguf_value& v = kvs[it->second].value;
    if (v.type != gguf_type::u32)
        return status(errc::corrupt_file,
                      "general.alignment is " + std::string(gguf_type_name(v.type)) + ", expected u32");
    const uint64_t a = std::get<uint64_t>(v.data);
    if (a == 0 || !std::has_single_bit(a))
        return status(errc::corrupt_file, "general.alignment " + std::to_string(a) + " is not a power of two");
    return static_cast<uint32_t>(a);
}

std::string magic_text(std::span<const std::byte> b) {
    std::string s;
    for (size_t i = 0; i < 4 && i < b.size(); ++i) {
        const auto ch = static_cast<unsigned char>(b[i]);
        char buf[8];
        if (ch >= 0x20 && ch < 0x7f) {
            s += static_cast<char>(ch);
        } else {
            std::snprintf(buf, sizeof buf, "\\x%02x", ch);
            s += buf;
        }
    }
    return s;
}

}  // namespace

result<gguf_file> gguf_parse(std::span<const std::byte> bytes, std::shared_ptr<const void> owner) {
    try {
        cursor c(bytes);
        uint32_t magic = 0, version = 0;
        if (bytes.size() < 4 || std::memcmp(bytes.data(), "GGUF", 4) != 0)
            return status(errc::corrupt_file, "bad magic '" + magic_text(bytes) + "' (expected 'GGUF')");
        MM_TRY(c.read(magic, "magic"));
        MM_TRY(c.read(version, "version"));
        if (version != 2 && version != 3) {
            const uint32_t swapped = __builtin_bswap32(version);
            return status(errc::unsupported, "GGUF version " + std::to_string(version) +
                                                 " is not supported (only 2 and 3)" +
                                                 (swapped == 2 || swapped == 3 ? "; a big-endian file?" : ""));
        }
        uint64_t n_tensors = 0, n_kv = 0;
        MM_TRY(c.read(n_tensors, "n_tensors"));
        MM_TRY(c.read(n_kv, "n_kv"));

        gguf_file f;
        f.version_ = version;
        MM_TRY(read_kvs(c, n_kv, f.kvs_, f.kv_index_));
        auto alignment = read_alignment(f.kvs_, f.kv_index_);
        if (!alignment) return alignment.error();
        f.alignment_ = *alignment;

        if (n_tensors > c.left() / k_min_tensor_info_bytes)
            return status(errc::corrupt_file, "n_tensors " + std::to_string(n_tensors) + " cannot fit in the " +
                                                  std::to_string(c.left()) + " bytes after the metadata");
        std::vector<raw_tensor_info> raws(static_cast<size_t>(n_tensors));
        for (uint64_t i = 0; i < n_tensors; ++i) {
            raw_tensor_info& raw = raws[static_cast<size_t>(i)];
            if (status s = read_tensor_info(c, raw); !s.ok())
                return std::move(s).context("tensor info #" + std::to_string(i));
            if (!f.tensor_index_.emplace(raw.name, static_cast<size_t>(i)).second)
                return status(errc::corrupt_file, "tensor info #" + std::to_string(i) + ": duplicate tensor name '" +
                                                      raw.name + "'");
        }

        // The data section starts at the next multiple of the alignment (it may lie past the end when there are
        // no tensors: vocab-only files end right after the infos).
        f.data_offset_ = (static_cast<uint64_t>(c.pos()) + f.alignment_ - 1) / f.alignment_ * f.alignment_;
        f.tensors_.resize(raws.size());
        for (size_t i = 0; i < raws.size(); ++i)
            MM_TRY(place_tensor(raws[i], bytes, f.data_offset_, f.alignment_, f.tensors_[i]));
        MM_TRY(check_no_overlap(f.tensors_));
        f.keep_alive_ = std::move(owner);
        return f;
    } catch (const std::bad_alloc&) {
        return status(errc::resource_exhausted, "out of memory parsing a GGUF file");
    } catch (const std::exception& e) {
        return status(errc::internal, std::string("parsing a GGUF file: ") + e.what());
    }
}

result<gguf_file> gguf_open(const std::filesystem::path& path) {
    auto m = mapped_file::open(path);
    if (!m) return m.error();
    auto mapping = std::make_shared<const mapped_file>(std::move(*m));
    const std::span<const std::byte> bytes = mapping->bytes();
    const mapped_file* raw = mapping.get();
    auto f = gguf_parse(bytes, std::move(mapping));
    if (!f) return f.error().context(path.string());
    f->mapping_ = raw;
    return f;
}

}  // namespace mm
