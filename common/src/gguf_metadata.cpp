// gguf_file lookups: typed metadata getters, tensors by name, tensor views.
#include <limits>
#include <type_traits>

#include "common/gguf.h"

namespace mm {

std::string_view gguf_type_name(gguf_type t) {
    switch (t) {
        case gguf_type::u8: return "u8";
        case gguf_type::i8: return "i8";
        case gguf_type::u16: return "u16";
        case gguf_type::i16: return "i16";
        case gguf_type::u32: return "u32";
        case gguf_type::i32: return "i32";
        case gguf_type::f32: return "f32";
        case gguf_type::boolean: return "bool";
        case gguf_type::string: return "string";
        case gguf_type::array: return "array";
        case gguf_type::u64: return "u64";
        case gguf_type::i64: return "i64";
        case gguf_type::f64: return "f64";
    }
    return "?";
}

namespace {

status wrong_type(std::string_view key, const gguf_value& v, std::string_view want) {
    return status(errc::corrupt_file, "key '" + std::string(key) + "' is " + std::string(gguf_type_name(v.type)) +
                                          ", expected " + std::string(want));
}

// An integer value converted to T when it fits; nullopt for a non-integer or a value out of T's range.
template <class T>
std::optional<T> integer_as(const gguf_value& v) {
    if (const auto* u = std::get_if<uint64_t>(&v.data)) {
        if (*u > static_cast<uint64_t>(std::numeric_limits<T>::max())) return std::nullopt;
        return static_cast<T>(*u);
    }
    if (const auto* i = std::get_if<int64_t>(&v.data)) {
        if constexpr (std::is_unsigned_v<T>) {
            if (*i < 0 || static_cast<uint64_t>(*i) > std::numeric_limits<T>::max()) return std::nullopt;
        } else {
            if (*i < std::numeric_limits<T>::min() || *i > std::numeric_limits<T>::max()) return std::nullopt;
        }
        return static_cast<T>(*i);
    }
    return std::nullopt;
}

std::optional<float> float_as(const gguf_value& v) {
    if (const auto* d = std::get_if<double>(&v.data)) return static_cast<float>(*d);
    return std::nullopt;
}

template <class T>
result<T> get_integer(const gguf_file& f, std::string_view key, std::string_view want) {
    const gguf_value* v = f.find(key);
    if (!v) return status(errc::not_found, "key '" + std::string(key) + "' not found");
    if (auto x = integer_as<T>(*v)) return *x;
    if (std::holds_alternative<uint64_t>(v->data) || std::holds_alternative<int64_t>(v->data))
        return status(errc::corrupt_file, "key '" + std::string(key) + "': value does not fit in " + std::string(want));
    return wrong_type(key, *v, want);
}

// The array under key, or why there is none.
result<const gguf_array*> get_array(const gguf_file& f, std::string_view key) {
    const gguf_value* v = f.find(key);
    if (!v) return status(errc::not_found, "key '" + std::string(key) + "' not found");
    const auto* a = std::get_if<gguf_array>(&v->data);
    if (!a) return wrong_type(key, *v, "array");
    return a;
}

status bad_element(std::string_view key, size_t i, std::string_view want, const gguf_array& a) {
    return status(errc::corrupt_file, "key '" + std::string(key) + "': element " + std::to_string(i) + " (" +
                                          std::string(gguf_type_name(a.elem_type)) + ") is not " + std::string(want));
}

}  // namespace

const gguf_value* gguf_file::find(std::string_view key) const {
    auto it = kv_index_.find(key);
    return it == kv_index_.end() ? nullptr : &kvs_[it->second].value;
}

result<uint32_t> gguf_file::get_u32(std::string_view key) const { return get_integer<uint32_t>(*this, key, "u32"); }
result<uint64_t> gguf_file::get_u64(std::string_view key) const { return get_integer<uint64_t>(*this, key, "u64"); }
result<int32_t> gguf_file::get_i32(std::string_view key) const { return get_integer<int32_t>(*this, key, "i32"); }

result<uint32_t> gguf_file::get_u32_or(std::string_view key, uint32_t fallback) const {
    if (!find(key)) return fallback;
    return get_u32(key);
}

result<float> gguf_file::get_f32(std::string_view key) const {
    const gguf_value* v = find(key);
    if (!v) return status(errc::not_found, "key '" + std::string(key) + "' not found");
    if (auto x = float_as(*v)) return *x;
    return wrong_type(key, *v, "f32");
}

result<float> gguf_file::get_f32_or(std::string_view key, float fallback) const {
    if (!find(key)) return fallback;
    return get_f32(key);
}

result<bool> gguf_file::get_bool(std::string_view key) const {
    const gguf_value* v = find(key);
    if (!v) return status(errc::not_found, "key '" + std::string(key) + "' not found");
    if (const auto* b = std::get_if<bool>(&v->data)) return *b;
    return wrong_type(key, *v, "bool");
}

result<std::string_view> gguf_file::get_string(std::string_view key) const {
    const gguf_value* v = find(key);
    if (!v) return status(errc::not_found, "key '" + std::string(key) + "' not found");
    if (const auto* s = std::get_if<std::string>(&v->data)) return std::string_view(*s);
    return wrong_type(key, *v, "string");
}

result<std::vector<std::string>> gguf_file::get_string_array(std::string_view key) const {
    auto a = get_array(*this, key);
    if (!a) return a.error();
    std::vector<std::string> out;
    out.reserve((*a)->items.size());
    for (size_t i = 0; i < (*a)->items.size(); ++i) {
        const auto* s = std::get_if<std::string>(&(*a)->items[i].data);
        if (!s) return bad_element(key, i, "a string", **a);
        out.push_back(*s);
    }
    return out;
}

result<std::vector<float>> gguf_file::get_f32_array(std::string_view key) const {
    auto a = get_array(*this, key);
    if (!a) return a.error();
    std::vector<float> out;
    out.reserve((*a)->items.size());
    for (size_t i = 0; i < (*a)->items.size(); ++i) {
        auto x = float_as((*a)->items[i]);
        if (!x) return bad_element(key, i, "a float", **a);
        out.push_back(*x);
    }
    return out;
}

result<std::vector<int32_t>> gguf_file::get_i32_array(std::string_view key) const {
    auto a = get_array(*this, key);
    if (!a) return a.error();
    std::vector<int32_t> out;
    out.reserve((*a)->items.size());
    for (size_t i = 0; i < (*a)->items.size(); ++i) {
        auto x = integer_as<int32_t>((*a)->items[i]);
        if (!x) return bad_element(key, i, "an integer that fits i32", **a);
        out.push_back(*x);
    }
    return out;
}

const gguf_tensor_info* gguf_file::find_tensor(std::string_view name) const {
    auto it = tensor_index_.find(name);
    return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

tensor gguf_file::view(const gguf_tensor_info& info) const {
    MM_ASSERT(&info >= tensors_.data() && &info < tensors_.data() + tensors_.size());  // an info of this file
    return tensor::view(info.type, info.shape, static_cast<const void*>(info.data));
}

result<tensor> gguf_file::view(std::string_view name) const {
    const gguf_tensor_info* info = find_tensor(name);
    if (!info) return status(errc::not_found, "tensor '" + std::string(name) + "' not found");
    return view(*info);
}

}  // namespace mm
