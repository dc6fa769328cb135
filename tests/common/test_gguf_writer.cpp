// gguf_writer: what it writes, the reader reads back exactly: a real model rewritten key by key and tensor by
// tensor is byte-identical in everything the reader exposes.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>

#include "common/gguf.h"
#include "common/gguf_writer.h"

namespace mm {
namespace {

const std::filesystem::path k_models = std::filesystem::path(MM_SHARED_DIR) / "models" / "text";

bool same_value(const gguf_value& a, const gguf_value& b) {
    if (a.type != b.type || a.data.index() != b.data.index()) return false;
    if (a.type != gguf_type::array)
        return std::visit(
            [&](const auto& va) {
                using T = std::decay_t<decltype(va)>;
                if constexpr (std::is_same_v<T, gguf_array>) return false;
                else return va == std::get<T>(b.data);
            },
            a.data);
    const auto& x = std::get<gguf_array>(a.data);
    const auto& y = std::get<gguf_array>(b.data);
    if (x.elem_type != y.elem_type || x.items.size() != y.items.size()) return false;
    for (size_t i = 0; i < x.items.size(); ++i)
        if (!same_value(x.items[i], y.items[i])) return false;
    return true;
}

TEST(gguf_writer, a_rewritten_model_reads_back_identically) {
    for (const char* name : {"stories260K-q4_0.gguf", "stories260K-q8_0.gguf"}) {
        auto src = gguf_open(k_models / name);
        ASSERT_TRUE(src) << src.error().to_string();
        gguf_writer w;
        for (const auto& kv : src->metadata()) w.set(kv.key, kv.value);
        for (const auto& t : src->tensors()) w.add_tensor(t.name, src->view(t));
        const auto out = std::filesystem::temp_directory_path() / ("mm_gguf_writer_" + std::to_string(::getpid()) + ".gguf");
        ASSERT_TRUE(w.write(out));
        auto back = gguf_open(out);
        ASSERT_TRUE(back) << back.error().to_string();
        ASSERT_EQ(back->metadata().size(), src->metadata().size());
        for (size_t i = 0; i < src->metadata().size(); ++i) {
            EXPECT_EQ(back->metadata()[i].key, src->metadata()[i].key);
            EXPECT_TRUE(same_value(back->metadata()[i].value, src->metadata()[i].value)) << src->metadata()[i].key;
        }
        ASSERT_EQ(back->tensors().size(), src->tensors().size());
        for (size_t i = 0; i < src->tensors().size(); ++i) {
            const auto& a = src->tensors()[i];
            const auto& b = back->tensors()[i];
            EXPECT_EQ(a.name, b.name);
            EXPECT_EQ(a.type, b.type) << a.name;
            EXPECT_EQ(a.shape, b.shape) << a.name;
            ASSERT_EQ(a.n_bytes, b.n_bytes) << a.name;
            EXPECT_EQ(std::memcmp(a.data, b.data, a.n_bytes), 0) << a.name;
        }
        std::filesystem::remove(out);
    }
}

}  // namespace
}  // namespace mm
