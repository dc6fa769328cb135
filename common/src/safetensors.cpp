#include "common/safetensors.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <set>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "common/mapped_file.h"

namespace mm {

namespace {

using json = nlohmann::json;

struct dtype_row {
    safetensors_dtype type;
    const char* name;
    size_t size;
};
constexpr dtype_row k_dtypes[] = {
    {safetensors_dtype::boolean, "BOOL", 1}, {safetensors_dtype::u8, "U8", 1},
    {safetensors_dtype::i8, "I8", 1},        {safetensors_dtype::i16, "I16", 2},
    {safetensors_dtype::u16, "U16", 2},      {safetensors_dtype::f16, "F16", 2},
    {safetensors_dtype::bf16, "BF16", 2},    {safetensors_dtype::i32, "I32", 4},
    {safetensors_dtype::u32, "U32", 4},      {safetensors_dtype::f32, "F32", 4},
    {safetensors_dtype::f64, "F64", 8},      {safetensors_dtype::i64, "I64", 8},
    {safetensors_dtype::u64, "U64", 8},      {safetensors_dtype::f8_e4m3, "F8_E4M3", 1},
    {safetensors_dtype::f8_e5m2, "F8_E5M2", 1},
};

constexpr size_t k_max_json_depth = 8;  // a valid header nests 3 deep (object, tensor, shape)

// Thrown from the parse callback to stop at a header shape no valid file has; caught in safetensors_parse.
struct header_rejected : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Parses the header JSON, refusing duplicate keys (nlohmann keeps the last silently) and deep nesting.
json parse_header(std::string_view text) {
    std::vector<std::set<std::string>> keys;  // one set per open object
    size_t depth = 0;
    auto cb = [&](int, json::parse_event_t ev, json& parsed) {
        switch (ev) {
            case json::parse_event_t::object_start:
            case json::parse_event_t::array_start:
                if (++depth > k_max_json_depth)
                    throw header_rejected("nested deeper than " + std::to_string(k_max_json_depth) + " levels");
                if (ev == json::parse_event_t::object_start) keys.emplace_back();
                break;
            case json::parse_event_t::object_end:
            case json::parse_event_t::array_end:
                --depth;
                if (ev == json::parse_event_t::object_end) keys.pop_back();
                break;
            case json::parse_event_t::key:
                if (!keys.empty() && !keys.back().insert(parsed.get<std::string>()).second)
                    throw header_rejected("duplicate key '" + parsed.get<std::string>() + "'");
                break;
            case json::parse_event_t::value: break;
        }
        return true;
    };
    return json::parse(text.begin(), text.end(), cb);
}

status field_error(const std::string& name, std::string_view field, const std::string& what) {
    return status(errc::corrupt_file, "tensor '" + name + "': " + std::string(field) + " " + what);
}

std::string json_type(const json& j) { return j.type_name(); }

// A non-negative integer that fits int64, or why it is not one.
result<int64_t> json_index(const json& j, const std::string& name, std::string_view field) {
    if (j.is_number_unsigned()) {
        const auto v = j.get<uint64_t>();
        if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
            return field_error(name, field, "value " + std::to_string(v) + " is too large");
        return static_cast<int64_t>(v);
    }
    if (j.is_number_integer()) return field_error(name, field, "value " + j.dump() + " is negative");
    return field_error(name, field, "entry " + j.dump() + " is " + json_type(j) + ", not an integer");
}

status parse_tensor(const std::string& name, const json& entry, uint64_t data_size, safetensors_tensor_info& out) {
    if (!entry.is_object()) return field_error(name, "entry", "is " + json_type(entry) + ", not an object");
    out.name = name;

    const auto dt = entry.find("dtype");
    if (dt == entry.end()) return field_error(name, "dtype", "is missing");
    if (!dt->is_string()) return field_error(name, "dtype", "is " + json_type(*dt) + ", not a string");
    const auto type = safetensors_dtype_from_name(dt->get<std::string>());
    if (!type) return field_error(name, "dtype", "'" + dt->get<std::string>() + "' is not a safetensors dtype");
    out.type = *type;

    const auto sh = entry.find("shape");
    if (sh == entry.end()) return field_error(name, "shape", "is missing");
    if (!sh->is_array()) return field_error(name, "shape", "is " + json_type(*sh) + ", not an array");
    out.shape.reserve(sh->size());
    bool overflow = false;
    out.elements = 1;
    for (const json& d : *sh) {
        auto v = json_index(d, name, "shape");
        if (!v) return v.error();
        out.shape.push_back(*v);
        overflow = overflow || __builtin_mul_overflow(out.elements, *v, &out.elements);
    }
    uint64_t n_bytes = 0;  // stays 0 for an empty tensor, whatever the other dims say
    if (std::find(out.shape.begin(), out.shape.end(), 0) != out.shape.end()) {
        out.elements = 0;
    } else if (overflow || __builtin_mul_overflow(static_cast<uint64_t>(out.elements),
                                                  static_cast<uint64_t>(safetensors_dtype_size(*type)), &n_bytes)) {
        return field_error(name, "shape", sh->dump() + " of " + dt->get<std::string>() + " overflows its byte size");
    }

    const auto off = entry.find("data_offsets");
    if (off == entry.end()) return field_error(name, "data_offsets", "is missing");
    if (!off->is_array() || off->size() != 2)
        return field_error(name, "data_offsets", off->dump() + " is not an array of two integers");
    auto begin = json_index((*off)[0], name, "data_offsets");
    if (!begin) return begin.error();
    auto end = json_index((*off)[1], name, "data_offsets");
    if (!end) return end.error();
    out.begin = static_cast<uint64_t>(*begin);
    out.end = static_cast<uint64_t>(*end);
    if (out.begin > out.end)
        return field_error(name, "data_offsets", "[" + std::to_string(out.begin) + ", " + std::to_string(out.end) +
                                                     "] has begin after end");
    if (out.end > data_size)
        return field_error(name, "data_offsets", "[" + std::to_string(out.begin) + ", " + std::to_string(out.end) +
                                                     ") is past the end of the data (" + std::to_string(data_size) +
                                                     " bytes)");
    if (out.end - out.begin != n_bytes)
        return field_error(name, "data_offsets",
                           "[" + std::to_string(out.begin) + ", " + std::to_string(out.end) + ") holds " +
                               std::to_string(out.end - out.begin) + " bytes; shape " + sh->dump() + " of " +
                               dt->get<std::string>() + " needs " + std::to_string(n_bytes));
    return ok_status();
}

status parse_metadata(const json& j, std::map<std::string, std::string, std::less<>>& out) {
    if (!j.is_object()) return status(errc::corrupt_file, "__metadata__ is " + json_type(j) + ", not an object");
    for (const auto& [k, v] : j.items()) {
        if (!v.is_string())
            return status(errc::corrupt_file, "__metadata__ '" + k + "' is " + json_type(v) + ", not a string");
        out.emplace(k, v.get<std::string>());
    }
    return ok_status();
}

status check_no_overlap(const std::vector<safetensors_tensor_info>& tensors) {
    const safetensors_tensor_info* prev = nullptr;  // tensors are sorted by begin
    for (const auto& t : tensors) {
        if (t.n_bytes() == 0) continue;
        if (prev && prev->end > t.begin)
            return status(errc::corrupt_file, "tensors '" + prev->name + "' [" + std::to_string(prev->begin) + ", " +
                                                  std::to_string(prev->end) + ") and '" + t.name + "' [" +
                                                  std::to_string(t.begin) + ", " + std::to_string(t.end) +
                                                  ") overlap");
        prev = &t;
    }
    return ok_status();
}

}  // namespace

std::string_view safetensors_dtype_name(safetensors_dtype t) {
    for (const auto& row : k_dtypes)
        if (row.type == t) return row.name;
    return "?";
}

std::optional<safetensors_dtype> safetensors_dtype_from_name(std::string_view name) {
    for (const auto& row : k_dtypes)
        if (name == row.name) return row.type;
    return std::nullopt;
}

size_t safetensors_dtype_size(safetensors_dtype t) {
    for (const auto& row : k_dtypes)
        if (row.type == t) return row.size;
    return 1;
}

std::optional<dtype> safetensors_to_dtype(safetensors_dtype t) {
    switch (t) {
        case safetensors_dtype::f32: return dtype::f32;
        case safetensors_dtype::f16: return dtype::f16;
        case safetensors_dtype::bf16: return dtype::bf16;
        default: return std::nullopt;
    }
}

result<safetensors_file> safetensors_parse(std::span<const std::byte> bytes, std::shared_ptr<const void> owner) {
    if (bytes.size() < 8)
        return status(errc::corrupt_file, "truncated: " + std::to_string(bytes.size()) +
                                              " bytes, the header length alone needs 8");
    uint64_t n = 0;
    std::memcpy(&n, bytes.data(), 8);
    if (n > k_safetensors_max_header)
        return status(errc::corrupt_file, "header length " + std::to_string(n) + " is over the cap of " +
                                              std::to_string(k_safetensors_max_header) + " bytes");
    if (n > bytes.size() - 8)
        return status(errc::corrupt_file, "header length " + std::to_string(n) + " exceeds the " +
                                              std::to_string(bytes.size() - 8) + " bytes after it");
    safetensors_file f;
    f.data_offset_ = 8 + n;
    const uint64_t data_size = bytes.size() - f.data_offset_;
    try {
        const std::string_view text(reinterpret_cast<const char*>(bytes.data() + 8), static_cast<size_t>(n));
        json header;
        try {
            header = parse_header(text);
        } catch (const json::exception& e) {
            return status(errc::corrupt_file, std::string("header JSON: ") + e.what());
        } catch (const header_rejected& e) {
            return status(errc::corrupt_file, std::string("header JSON: ") + e.what());
        }
        if (!header.is_object())
            return status(errc::corrupt_file, "header JSON is " + json_type(header) + ", not an object");

        for (const auto& [name, entry] : header.items()) {
            if (name == "__metadata__") {
                MM_TRY(parse_metadata(entry, f.metadata_));
                continue;
            }
            safetensors_tensor_info t;
            MM_TRY(parse_tensor(name, entry, data_size, t));
            t.data = bytes.data() + f.data_offset_ + t.begin;
            f.tensors_.push_back(std::move(t));
        }
    } catch (const std::bad_alloc&) {
        return status(errc::resource_exhausted, "out of memory parsing a safetensors header");
    } catch (const std::exception& e) {
        return status(errc::internal, std::string("parsing a safetensors header: ") + e.what());
    }

    std::sort(f.tensors_.begin(), f.tensors_.end(), [](const auto& a, const auto& b) {
        return a.begin != b.begin ? a.begin < b.begin : a.name < b.name;
    });
    MM_TRY(check_no_overlap(f.tensors_));
    for (size_t i = 0; i < f.tensors_.size(); ++i) f.index_.emplace(f.tensors_[i].name, i);
    f.keep_alive_ = std::move(owner);
    return f;
}

result<safetensors_file> safetensors_open(const std::filesystem::path& path) {
    auto m = mapped_file::open(path);
    if (!m) return m.error();
    auto mapping = std::make_shared<const mapped_file>(std::move(*m));
    const std::span<const std::byte> bytes = mapping->bytes();
    auto f = safetensors_parse(bytes, std::move(mapping));
    if (!f) return f.error().context(path.string());
    return f;
}

const safetensors_tensor_info* safetensors_file::find_tensor(std::string_view name) const {
    auto it = index_.find(name);
    return it == index_.end() ? nullptr : &tensors_[it->second];
}

result<tensor> safetensors_file::view(const safetensors_tensor_info& info) const {
    MM_ASSERT(&info >= tensors_.data() && &info < tensors_.data() + tensors_.size());  // an info of this file
    const auto type = safetensors_to_dtype(info.type);
    if (!type)
        return status(errc::unsupported, "tensor '" + info.name + "': dtype " +
                                             std::string(safetensors_dtype_name(info.type)) +
                                             " cannot be viewed (only F32, F16, BF16)");
    if (info.shape.size() > static_cast<size_t>(k_max_dims))
        return status(errc::unsupported, "tensor '" + info.name + "': " + std::to_string(info.shape.size()) +
                                             " dims cannot be viewed (at most 4)");
    if (!info.shape.empty() && info.shape.back() == 0)  // mm::tensor divides by the last dim for its row count
        return status(errc::unsupported, "tensor '" + info.name + "': a last dim of 0 cannot be viewed");
    const size_t align = safetensors_dtype_size(info.type);
    if (reinterpret_cast<uintptr_t>(info.data) % align != 0)
        return status(errc::unsupported, "tensor '" + info.name + "': data at byte " +
                                             std::to_string(data_offset_ + info.begin) + " is not " +
                                             std::to_string(align) + "-byte aligned; it cannot be viewed in place");
    shape_t shape;
    shape.n = static_cast<int>(info.shape.size());
    for (size_t i = 0; i < info.shape.size(); ++i) shape.d[i] = info.shape[i];
    return tensor::view(*type, shape, static_cast<const void*>(info.data));
}

result<tensor> safetensors_file::view(std::string_view name) const {
    const safetensors_tensor_info* info = find_tensor(name);
    if (!info) return status(errc::not_found, "tensor '" + std::string(name) + "' not found");
    return view(*info);
}

}  // namespace mm
