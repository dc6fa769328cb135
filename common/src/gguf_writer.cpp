#include "common/gguf_writer.h"

#include <cstring>
#include <fstream>

#include "common/status.h"

namespace mm {
namespace {

constexpr uint64_t k_alignment = 32;

uint32_t ggml_type_id(dtype t) {
    switch (t) {
        case dtype::f32: return 0;
        case dtype::f16: return 1;
        case dtype::q4_0: return 2;
        case dtype::q8_0: return 8;
        case dtype::bf16: return 30;
        case dtype::q4_0r:
        case dtype::q8_0r: break;  // in-memory layouts
    }
    MM_ASSERT(!dtype_is_regrouped(t));
    return 0;
}

class out_bytes {
public:
    explicit out_bytes(std::ofstream& f) : f_(f) {}
    template <class T>
    void put(T v) {
        f_.write(reinterpret_cast<const char*>(&v), sizeof v);
        n_ += sizeof v;
    }
    void str(const std::string& s) {
        put<uint64_t>(s.size());
        f_.write(s.data(), static_cast<std::streamsize>(s.size()));
        n_ += s.size();
    }
    void raw(const void* p, size_t n) {
        f_.write(static_cast<const char*>(p), static_cast<std::streamsize>(n));
        n_ += n;
    }
    void pad() {
        while (n_ % k_alignment) put<uint8_t>(0);
    }

private:
    std::ofstream& f_;
    uint64_t n_ = 0;
};

void put_value(out_bytes& o, const gguf_value& v, bool with_type);

void put_scalar(out_bytes& o, const gguf_value& v) {
    const auto u = [&] { return std::holds_alternative<uint64_t>(v.data) ? std::get<uint64_t>(v.data) : 0; };
    const auto i = [&] { return std::holds_alternative<int64_t>(v.data) ? std::get<int64_t>(v.data) : 0; };
    const auto d = [&] { return std::holds_alternative<double>(v.data) ? std::get<double>(v.data) : 0.0; };
    switch (v.type) {
        case gguf_type::u8: o.put(static_cast<uint8_t>(u())); break;
        case gguf_type::i8: o.put(static_cast<int8_t>(i())); break;
        case gguf_type::u16: o.put(static_cast<uint16_t>(u())); break;
        case gguf_type::i16: o.put(static_cast<int16_t>(i())); break;
        case gguf_type::u32: o.put(static_cast<uint32_t>(u())); break;
        case gguf_type::i32: o.put(static_cast<int32_t>(i())); break;
        case gguf_type::f32: o.put(static_cast<float>(d())); break;
        case gguf_type::boolean: o.put(static_cast<uint8_t>(std::get<bool>(v.data))); break;
        case gguf_type::string: o.str(std::get<std::string>(v.data)); break;
        case gguf_type::u64: o.put(u()); break;
        case gguf_type::i64: o.put(i()); break;
        case gguf_type::f64: o.put(d()); break;
        case gguf_type::array: {
            const auto& a = std::get<gguf_array>(v.data);
            o.put(static_cast<uint32_t>(a.elem_type));
            o.put<uint64_t>(a.items.size());
            for (const auto& item : a.items) put_value(o, item, false);
            break;
        }
    }
}

void put_value(out_bytes& o, const gguf_value& v, bool with_type) {
    if (with_type) o.put(static_cast<uint32_t>(v.type));
    put_scalar(o, v);
}

}  // namespace

void gguf_writer::set(const std::string& key, gguf_value value) {
    for (auto& kv : kvs_)
        if (kv.key == key) {
            kv.value = std::move(value);
            return;
        }
    kvs_.push_back({key, std::move(value)});
}

void gguf_writer::add_tensor(const std::string& name, const tensor& t) { tensors_.push_back({name, t.clone()}); }

status gguf_writer::write(const std::filesystem::path& path) const {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    if (!f) return status(errc::io_error, "cannot create " + path.string());
    out_bytes o(f);
    o.raw("GGUF", 4);
    o.put<uint32_t>(3);
    o.put<uint64_t>(tensors_.size());
    o.put<uint64_t>(kvs_.size());
    for (const auto& kv : kvs_) {
        o.str(kv.key);
        put_value(o, kv.value, true);
    }
    uint64_t offset = 0;
    for (const auto& t : tensors_) {
        o.str(t.name);
        const shape_t& s = t.data.shape();
        o.put<uint32_t>(static_cast<uint32_t>(s.n));
        for (int d = s.n - 1; d >= 0; --d) o.put<uint64_t>(static_cast<uint64_t>(s[d]));  // ggml order: innermost first
        o.put(ggml_type_id(t.data.type()));
        o.put(offset);
        offset += (t.data.bytes() + k_alignment - 1) / k_alignment * k_alignment;
    }
    o.pad();
    for (const auto& t : tensors_) {
        o.raw(t.data.raw(), t.data.bytes());
        o.pad();
    }
    f.flush();
    if (!f) return status(errc::io_error, "writing " + path.string() + " failed");
    return ok_status();
}

}  // namespace mm
