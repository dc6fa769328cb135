// GGUF reader: the shared model files against an independent listing, the typed metadata getters, and bad
// files (synthetic ones built here, and truncations of a real one) that must fail with the right error.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/gguf.h"
#include "common/mapped_file.h"
#include "common/tensor.h"
#include "ref/files.h"

namespace mm {
namespace {

namespace fs = std::filesystem;

const fs::path k_text = fs::path(MM_SHARED_DIR) / "models" / "text";

using test::fnv1a64;
using test::read_file;

// ---- the shared model files ----
//
// Expected values come from an independent hand-written GGUF parser in Python (stdlib struct only; no ggml or
// gguf package), run once over the shared files:
//   read magic, u32 version, u64 n_tensors, u64 n_kv; per kv: u64-length key, u32 type, value (scalars by
//   struct format "BbHhIif?" for types 0..7 and "Qqd" for 10..12, 8 = u64-length string, 9 = u32 elem type +
//   u64 count + values); per tensor: name, u32 n_dims, u64 ne[n_dims] (reversed for the table), u32 type,
//   u64 offset; data section = end of infos rounded up to 32. FNV-1a 64 over a tensor's bytes
//   [data_section + offset, + n_bytes); token lists hashed as FNV-1a of the tokens joined by '\n'; scores summed
//   left to right in double. The facts in models/text/SOURCES.md agree: dim 64, hidden 172, 5 layers, 8 heads,
//   4 kv heads, vocab 512, ffn_down F16 in the quantized files, context length 128.

struct stories_row {
    const char* name;
    shape_t shape;
    dtype type[3];  // in the f32, q8_0, q4_0 files
};
// clang-format off
const stories_row k_stories[] = {
    {"token_embd.weight", {512, 64}, {dtype::f32, dtype::q8_0, dtype::q4_0}},
    {"output_norm.weight", {64}, {dtype::f32, dtype::f32, dtype::f32}},
    {"output.weight", {512, 64}, {dtype::f32, dtype::q8_0, dtype::q4_0}},
    {"blk.0.attn_q.weight", {64, 64}, {dtype::f32, dtype::q8_0, dtype::q4_0}},
    {"blk.0.attn_k.weight", {32, 64}, {dtype::f32, dtype::q8_0, dtype::q4_0}},
    {"blk.0.attn_v.weight", {32, 64}, {dtype::f32, dtype::q8_0, dtype::q4_0}},
    {"blk.0.attn_output.weight", {64, 64}, {dtype::f32, dtype::q8_0, dtype::q4_0}},
    {"blk.0.attn_norm.weight", {64}, {dtype::f32, dtype::f32, dtype::f32}},
    {"blk.0.ffn_gate.weight", {172, 64}, {dtype::f32, dtype::q8_0, dtype::q4_0}},
    {"blk.0.ffn_down.weight", {64, 172}, {dtype::f32, dtype::f16, dtype::f16}},
    {"blk.0.ffn_up.weight", {172, 64}, {dtype::f32, dtype::q8_0, dtype::q4_0}},
    {"blk.0.ffn_norm.weight", {64}, {dtype::f32, dtype::f32, dtype::f32}},
    {"blk.1.attn_q.weight", {64, 64}, {dtype::f32, dtype::q8_0, dtype::q4_0}},
    {"blk.1.attn_k.weight", {32, 64}, {dtype::f32, dtype::q8_0, dtype::q4_0}},
    {"blk.1.attn_v.weight", {32, 64}, {dtype::f32, dtype::q8_0, dtype::q4_0}},
    {"blk.1.attn_output.weight", {64, 64}, {dtype::f32, dtype::q8_0, dtype::q4_0}},
    {"blk.1.attn_norm.weight", {64}, {dtype::f32, dtype::f32, dtype::f32}},
    {"blk.1.ffn_gate.weight", {172, 64}, {dtype::f32, dtype::q8_0, dtype::q4_0}},
    {"blk.1.ffn_down.weight", {64, 172}, {dtype::f32, dtype::f16, dtype::f16}},
    {"blk.1.ffn_up.weight", {172, 64}, {dtype::f32, dtype::q8_0, dtype::q4_0}},
    {"blk.1.ffn_norm.weight", {64}, {dtype::f32, dtype::f32, dtype::f32}},
    {"blk.2.attn_q.weight", {64, 64}, {dtype::f32, dtype::q8_0, dtype::q4_0}},
    {"blk.2.attn_k.weight", {32, 64}, {dtype::f32, dtype::q8_0, dtype::q4_0}},
    {"blk.2.attn_v.weight", {32, 64}, {dtype::f32, dtype::q8_0, dtype::q4_0}},
    {"blk.2.attn_output.weight", {64, 64}, {dtype::f32, dtype::q8_0, dtype::q4_0}},
    {"blk.2.attn_norm.weight", {64}, {dtype::f32, dtype::f32, dtype::f32}},
    {"blk.2.ffn_gate.weight", {172, 64}, {dtype::f32, dtype::q8_0, dtype::q4_0}},
    {"blk.2.ffn_down.weight", {64, 172}, {dtype::f32, dtype::f16, dtype::f16}},
    {"blk.2.ffn_up.weight", {172, 64}, {dtype::f32, dtype::q8_0, dtype::q4_0}},
    {"blk.2.ffn_norm.weight", {64}, {dtype::f32, dtype::f32, dtype::f32}},
    {"blk.3.attn_q.weight", {64, 64}, {dtype::f32, dtype::q8_0, dtype::q4_0}},
    {"blk.3.attn_k.weight", {32, 64}, {dtype::f32, dtype::q8_0, dtype::q4_0}},
    {"blk.3.attn_v.weight", {32, 64}, {dtype::f32, dtype::q8_0, dtype::q4_0}},
    {"blk.3.attn_output.weight", {64, 64}, {dtype::f32, dtype::q8_0, dtype::q4_0}},
    {"blk.3.attn_norm.weight", {64}, {dtype::f32, dtype::f32, dtype::f32}},
    {"blk.3.ffn_gate.weight", {172, 64}, {dtype::f32, dtype::q8_0, dtype::q4_0}},
    {"blk.3.ffn_down.weight", {64, 172}, {dtype::f32, dtype::f16, dtype::f16}},
    {"blk.3.ffn_up.weight", {172, 64}, {dtype::f32, dtype::q8_0, dtype::q4_0}},
    {"blk.3.ffn_norm.weight", {64}, {dtype::f32, dtype::f32, dtype::f32}},
    {"blk.4.attn_q.weight", {64, 64}, {dtype::f32, dtype::q8_0, dtype::q4_0}},
    {"blk.4.attn_k.weight", {32, 64}, {dtype::f32, dtype::q8_0, dtype::q4_0}},
    {"blk.4.attn_v.weight", {32, 64}, {dtype::f32, dtype::q8_0, dtype::q4_0}},
    {"blk.4.attn_output.weight", {64, 64}, {dtype::f32, dtype::q8_0, dtype::q4_0}},
    {"blk.4.attn_norm.weight", {64}, {dtype::f32, dtype::f32, dtype::f32}},
    {"blk.4.ffn_gate.weight", {172, 64}, {dtype::f32, dtype::q8_0, dtype::q4_0}},
    {"blk.4.ffn_down.weight", {64, 172}, {dtype::f32, dtype::f16, dtype::f16}},
    {"blk.4.ffn_up.weight", {172, 64}, {dtype::f32, dtype::q8_0, dtype::q4_0}},
    {"blk.4.ffn_norm.weight", {64}, {dtype::f32, dtype::f32, dtype::f32}},
};
// clang-format on

struct stories_file {
    const char* file;
    int column;              // into stories_row::type
    uint64_t data_offset;
    uint32_t n_kv;
    std::optional<uint32_t> file_type;
    uint64_t token_embd_fnv;
    uint64_t ffn_down_4_fnv;  // blk.4.ffn_down.weight
};
const stories_file k_stories_files[] = {
    {"stories260K-f32.gguf", 0, 14176, 19, std::nullopt, 0x92105060e9e7c6f6ull, 0xe2f9a3f14f9577bbull},
    {"stories260K-q8_0.gguf", 1, 14240, 21, 18, 0xd56fec7f5404b9b8ull, 0x09f8c97cb6c7df27ull},
    {"stories260K-q4_0.gguf", 2, 14240, 21, 37, 0x59717878434a60adull, 0x09f8c97cb6c7df27ull},
};

TEST(gguf_real, stories260k_tensors_match_the_independent_listing) {
    for (const auto& fc : k_stories_files) {
        SCOPED_TRACE(fc.file);
        auto f = gguf_open(k_text / fc.file);
        ASSERT_TRUE(f) << f.error().to_string();
        EXPECT_EQ(f->version(), 3u);
        EXPECT_EQ(f->alignment(), 32u);
        EXPECT_EQ(f->data_offset(), fc.data_offset);
        EXPECT_EQ(f->metadata().size(), fc.n_kv);
        ASSERT_EQ(f->tensors().size(), std::size(k_stories));
        for (const auto& row : k_stories) {
            const gguf_tensor_info* t = f->find_tensor(row.name);
            ASSERT_NE(t, nullptr) << row.name;
            EXPECT_EQ(t->type, row.type[fc.column]) << row.name << ": " << dtype_name(t->type);
            EXPECT_EQ(t->shape, row.shape) << row.name << ": " << t->shape.to_string();
            EXPECT_EQ(t->n_bytes, dtype_row_bytes(t->type, row.shape.last()) * row.shape.rows()) << row.name;
            tensor v = f->view(*t);
            EXPECT_EQ(v.raw(), static_cast<const void*>(t->data)) << row.name;
            EXPECT_EQ(v.shape(), row.shape) << row.name;
            EXPECT_EQ(v.bytes(), t->n_bytes) << row.name;
        }
        const auto* emb = f->find_tensor("token_embd.weight");
        const auto* down = f->find_tensor("blk.4.ffn_down.weight");
        ASSERT_TRUE(emb && down);
        EXPECT_EQ(fnv1a64({emb->data, emb->n_bytes}), fc.token_embd_fnv);
        EXPECT_EQ(fnv1a64({down->data, down->n_bytes}), fc.ffn_down_4_fnv);
        EXPECT_EQ(f->find_tensor("blk.5.attn_q.weight"), nullptr);
        auto missing = f->view("blk.5.attn_q.weight");
        ASSERT_FALSE(missing);
        EXPECT_EQ(missing.error().code(), errc::not_found);

        if (fc.file_type) {
            auto ft = f->get_u32("general.file_type");
            ASSERT_TRUE(ft) << ft.error().to_string();
            EXPECT_EQ(*ft, *fc.file_type);
        } else {
            EXPECT_EQ(f->find("general.file_type"), nullptr);
        }
    }
}

TEST(gguf_real, stories260k_metadata) {
    auto f = gguf_open(k_text / "stories260K-q8_0.gguf");
    ASSERT_TRUE(f) << f.error().to_string();
    struct u32_case { const char* key; uint32_t want; };
    for (const auto& c : {u32_case{"llama.context_length", 128}, {"llama.embedding_length", 64},
                          {"llama.feed_forward_length", 172}, {"llama.attention.head_count", 8},
                          {"llama.attention.head_count_kv", 4}, {"llama.block_count", 5},
                          {"llama.rope.dimension_count", 8}, {"tokenizer.ggml.bos_token_id", 1},
                          {"tokenizer.ggml.eos_token_id", 2}, {"tokenizer.ggml.padding_token_id", 4294967295u},
                          {"general.quantization_version", 2}}) {
        auto v = f->get_u32(c.key);
        ASSERT_TRUE(v) << c.key << ": " << v.error().to_string();
        EXPECT_EQ(*v, c.want) << c.key;
    }
    auto eps = f->get_f32("llama.attention.layer_norm_rms_epsilon");
    ASSERT_TRUE(eps);
    EXPECT_EQ(*eps, 1e-5f);
    EXPECT_EQ(f->get_string("general.architecture").value(), "llama");
    EXPECT_EQ(f->get_string("tokenizer.ggml.model").value(), "llama");
    // No general.alignment key: the default 32 applies, and the data section starts at a multiple of it.
    EXPECT_EQ(f->find("general.alignment"), nullptr);
    EXPECT_EQ(f->get_u32_or("general.alignment", 32).value(), 32u);
    // No rope base key in these files (SOURCES.md): the fallback is what a loader sees.
    EXPECT_EQ(f->get_f32_or("llama.rope.freq_base", 10000.0f).value(), 10000.0f);
    // 4294967295 is a u32 that does not fit an i32.
    auto sep = f->get_i32("tokenizer.ggml.padding_token_id");
    ASSERT_FALSE(sep);
    EXPECT_EQ(sep.error().code(), errc::corrupt_file);
    EXPECT_NE(sep.error().message().find("does not fit in i32"), std::string::npos) << sep.error().message();
}

struct vocab_case {
    const char* file;
    size_t n_kv;
    size_t n_tensors;
    size_t n_tokens;
    uint64_t tokens_fnv;
    const char* token_300;
    std::optional<double> scores_sum;  // absent: no scores array
    int64_t token_type_sum;
    size_t n_merges;
    uint64_t merges_fnv;
};
const vocab_case k_vocabs[] = {
    {"vocab/ggml-vocab-llama-spm.gguf", 22, 0, 32000, 0x1b00b5ed985faa6eull, "et", -0x1.ebd8ec7180000p+33, 33285, 0, 0},
    {"vocab/ggml-vocab-gpt-2.gguf", 16, 0, 50257, 0x577f09dc3d0f883bull, "\xc4\xa0l", std::nullopt, 50259, 50000,
     0xb7799d3d6a262560ull},
    {"stories260K-f32.gguf", 19, 48, 512, 0x7926907c71ac528eull, "\xe2\x96\x81ha", -0x1.f218p+14, 1797, 0, 0},
};

TEST(gguf_real, vocabularies) {
    for (const auto& c : k_vocabs) {
        SCOPED_TRACE(c.file);
        auto f = gguf_open(k_text / c.file);
        ASSERT_TRUE(f) << f.error().to_string();
        EXPECT_EQ(f->metadata().size(), c.n_kv);
        EXPECT_EQ(f->version(), 3u);
        auto tokens = f->get_string_array("tokenizer.ggml.tokens");
        ASSERT_TRUE(tokens) << tokens.error().to_string();
        ASSERT_EQ(tokens->size(), c.n_tokens);
        std::string joined;
        for (size_t i = 0; i < tokens->size(); ++i) joined += (i ? "\n" : "") + (*tokens)[i];
        EXPECT_EQ(fnv1a64(std::as_bytes(std::span(joined))), c.tokens_fnv);
        EXPECT_EQ((*tokens)[300], c.token_300);

        auto scores = f->get_f32_array("tokenizer.ggml.scores");
        if (c.scores_sum) {
            ASSERT_TRUE(scores) << scores.error().to_string();
            ASSERT_EQ(scores->size(), c.n_tokens);
            double sum = 0;
            for (float s : *scores) sum += s;
            EXPECT_EQ(sum, *c.scores_sum);  // same order, same double adds: exact
        } else {
            ASSERT_FALSE(scores);
            EXPECT_EQ(scores.error().code(), errc::not_found);
        }
        auto types = f->get_i32_array("tokenizer.ggml.token_type");
        ASSERT_TRUE(types) << types.error().to_string();
        ASSERT_EQ(types->size(), c.n_tokens);
        int64_t type_sum = 0;
        for (int32_t t : *types) type_sum += t;
        EXPECT_EQ(type_sum, c.token_type_sum);

        auto merges = f->get_string_array("tokenizer.ggml.merges");
        if (c.n_merges) {
            ASSERT_TRUE(merges) << merges.error().to_string();
            ASSERT_EQ(merges->size(), c.n_merges);
            std::string m;
            for (size_t i = 0; i < merges->size(); ++i) m += (i ? "\n" : "") + (*merges)[i];
            EXPECT_EQ(fnv1a64(std::as_bytes(std::span(m))), c.merges_fnv);
        } else {
            EXPECT_EQ(f->find("tokenizer.ggml.merges"), nullptr);
        }
        EXPECT_EQ(f->tensors().size(), c.n_tensors);
    }
    auto spm = gguf_open(k_text / "vocab/ggml-vocab-llama-spm.gguf");
    ASSERT_TRUE(spm);
    EXPECT_EQ(spm->get_bool("tokenizer.ggml.add_bos_token").value(), true);
    EXPECT_EQ(spm->get_bool("tokenizer.ggml.add_eos_token").value(), false);
    // The data section of a vocab-only file rounds up past the end of the file; with no tensors that is fine.
    EXPECT_EQ(spm->data_offset(), 723872u);
}

TEST(gguf_real, quantized_views_dequantize_close_to_the_f32_weights) {
    auto f32 = gguf_open(k_text / "stories260K-f32.gguf");
    ASSERT_TRUE(f32);
    for (const char* file : {"stories260K-q8_0.gguf", "stories260K-q4_0.gguf"}) {
        SCOPED_TRACE(file);
        auto q = gguf_open(k_text / file);
        ASSERT_TRUE(q);
        const bool is_q8 = std::string(file).find("q8_0") != std::string::npos;
        for (const char* name : {"token_embd.weight", "blk.2.attn_q.weight", "blk.3.ffn_down.weight"}) {
            tensor ref = f32->view(name).value();
            tensor got = to_f32(q->view(name).value());
            ASSERT_EQ(got.shape(), ref.shape()) << name;
            // Per block of 32 the rounding error is at most d/2 with d = amax/127 (q8_0) or amax/8 (q4_0, whose
            // range is [-8, 7] * d, so the clipped top code can err by up to d), plus d's own f16 rounding
            // (2^-11 relative) times |q| <= 128. ffn_down is F16 in both: error <= 2^-11 relative.
            const int64_t cols = ref.cols();
            const bool f16 = q->find_tensor(name)->type == dtype::f16;
            auto r = ref.f32();
            auto g = got.f32();
            for (int64_t row = 0; row < ref.rows(); ++row) {
                for (int64_t c0 = 0; c0 < cols; c0 += 32) {
                    const int64_t at = row * cols + c0, n = std::min<int64_t>(32, cols - c0);
                    float amax = 0;
                    for (int64_t j = 0; j < n; ++j) amax = std::max(amax, std::fabs(r[at + j]));
                    for (int64_t j = 0; j < n; ++j) {
                        const float tol = f16 ? std::fabs(r[at + j]) * 0x1p-11f + 1e-7f
                                              : (is_q8 ? amax / 127 * 0.57f : amax / 8 * 1.07f);
                        ASSERT_LE(std::fabs(g[at + j] - r[at + j]), tol) << name << " element " << at + j;
                    }
                }
            }
        }
    }
}

// ---- synthetic files ----

class byte_writer {
public:
    template <class T>
    byte_writer& put(T v) {
        const auto* p = reinterpret_cast<const std::byte*>(&v);
        b_.insert(b_.end(), p, p + sizeof(T));
        return *this;
    }
    byte_writer& str(std::string_view s) {
        put<uint64_t>(s.size());
        const auto* p = reinterpret_cast<const std::byte*>(s.data());
        b_.insert(b_.end(), p, p + s.size());
        return *this;
    }
    byte_writer& bytes(const std::vector<std::byte>& v) {
        b_.insert(b_.end(), v.begin(), v.end());
        return *this;
    }
    std::vector<std::byte>& out() { return b_; }

private:
    std::vector<std::byte> b_;
};

// An encoded value (type id + payload) for a key.
struct kv_spec {
    std::string key;
    uint32_t type;
    std::vector<std::byte> value;
};
template <class T>
kv_spec kv_scalar(std::string key, uint32_t type, T v) {
    byte_writer w;
    w.put(v);
    return {std::move(key), type, std::move(w.out())};
}
kv_spec kv_string(std::string key, std::string_view s) {
    byte_writer w;
    w.str(s);
    return {std::move(key), 8, std::move(w.out())};
}
std::vector<std::byte> array_header(uint32_t elem, uint64_t n) {
    byte_writer w;
    w.put(elem).put(n);
    return std::move(w.out());
}

struct tensor_spec {
    std::string name;
    std::vector<uint64_t> ne;  // ggml order
    uint32_t type;
    uint64_t offset;
};

struct gguf_spec {
    std::string magic = "GGUF";
    uint32_t version = 3;
    std::optional<uint64_t> n_kv, n_tensors;  // override the real counts
    std::vector<kv_spec> kvs;
    std::vector<tensor_spec> tensors;
    uint64_t alignment = 32;                  // for the padding the builder writes
    std::optional<uint64_t> data_bytes;       // default: up to the end of the last tensor
};

uint64_t spec_bytes(const tensor_spec& t) {
    uint64_t n = 1;
    for (uint64_t d : t.ne) n *= d;
    switch (t.type) {
        case 0: return n * 4;
        case 1: case 30: return n * 2;
        case 8: return n / 32 * 34;
        case 2: return n / 32 * 18;
    }
    return 0;
}

std::vector<std::byte> build(const gguf_spec& s) {
    byte_writer w;
    for (char ch : s.magic) w.put(ch);
    w.put(s.version).put(s.n_tensors.value_or(s.tensors.size())).put(s.n_kv.value_or(s.kvs.size()));
    for (const auto& kv : s.kvs) w.str(kv.key).put(kv.type).bytes(kv.value);
    uint64_t end = 0;
    for (const auto& t : s.tensors) {
        w.str(t.name).put<uint32_t>(static_cast<uint32_t>(t.ne.size()));
        for (uint64_t d : t.ne) w.put(d);
        w.put(t.type).put(t.offset);
        if (t.offset < (1ull << 40) && spec_bytes(t) < (1ull << 40)) end = std::max(end, t.offset + spec_bytes(t));
    }
    while (w.out().size() % s.alignment) w.put<uint8_t>(0);
    const uint64_t n = s.data_bytes.value_or(end);
    for (uint64_t i = 0; i < n; ++i) w.put(static_cast<uint8_t>(i * 31 + 7));
    return std::move(w.out());
}

// A valid v3 file: every scalar type, strings, arrays (nested too), and tensors of all five dtypes.
gguf_spec valid_spec() {
    gguf_spec s;
    byte_writer strings, nested, f32s;
    strings.bytes(array_header(8, 3)).str("a").str("bc").str("");
    nested.bytes(array_header(9, 2)).bytes(array_header(4, 2)).put<uint32_t>(1).put<uint32_t>(2)
        .bytes(array_header(4, 1)).put<uint32_t>(3);
    f32s.bytes(array_header(6, 2)).put(1.5f).put(-2.0f);
    s.kvs = {
        kv_string("general.architecture", "test"),
        kv_scalar<uint8_t>("t.u8", 0, 7),
        kv_scalar<int8_t>("t.i8", 1, -3),
        kv_scalar<uint16_t>("t.u16", 2, 65535),
        kv_scalar<int16_t>("t.i16", 3, -300),
        kv_scalar<uint32_t>("t.u32", 4, 128),
        kv_scalar<int32_t>("t.i32", 5, -5),
        kv_scalar<float>("t.f32", 6, 0.5f),
        kv_scalar<uint8_t>("t.bool", 7, 1),
        kv_scalar<uint64_t>("t.u64", 10, 1ull << 40),
        kv_scalar<int64_t>("t.i64", 11, -(1ll << 40)),
        kv_scalar<double>("t.f64", 12, 0.25),
        {"t.strings", 9, std::move(strings.out())},
        {"t.nested", 9, std::move(nested.out())},
        {"t.f32s", 9, std::move(f32s.out())},
    };
    s.tensors = {
        {"w.f32", {3, 2}, 0, 0},          // [2, 3] f32: 24 bytes
        {"w.q8", {32, 2}, 8, 32},         // [2, 32] q8_0: 68 bytes
        {"w.f16", {4}, 1, 128},           // [4] f16
        {"w.q4", {32}, 2, 160},           // [32] q4_0: 18 bytes
        {"w.bf16", {2, 1, 1, 2}, 30, 192} // [2, 1, 1, 2] bf16: 8 bytes, ends at 200
    };
    return s;
}

// Wraps bytes in a shared buffer so the parse result may keep them alive.
result<gguf_file> parse_owned(std::vector<std::byte> bytes) {
    auto owner = std::make_shared<std::vector<std::byte>>(std::move(bytes));
    return gguf_parse(std::span<const std::byte>(*owner), owner);
}

TEST(gguf_synthetic, valid_file_parses_with_every_value_type) {
    auto bytes = build(valid_spec());
    auto f = parse_owned(bytes);
    ASSERT_TRUE(f) << f.error().to_string();
    EXPECT_EQ(f->metadata().size(), 15u);
    EXPECT_EQ(f->metadata()[3].key, "t.u16");  // file order kept
    EXPECT_EQ(f->get_u32("t.u8").value(), 7u);
    EXPECT_EQ(f->get_i32("t.i8").value(), -3);
    EXPECT_EQ(f->get_u32("t.u16").value(), 65535u);
    EXPECT_EQ(f->get_i32("t.i16").value(), -300);
    EXPECT_EQ(f->get_u64("t.u64").value(), 1ull << 40);
    EXPECT_EQ(std::get<int64_t>(f->find("t.i64")->data), -(1ll << 40));
    EXPECT_EQ(f->get_f32("t.f32").value(), 0.5f);
    EXPECT_EQ(f->get_f32("t.f64").value(), 0.25f);
    EXPECT_EQ(f->get_bool("t.bool").value(), true);
    EXPECT_EQ(f->get_string("general.architecture").value(), "test");
    EXPECT_EQ(f->get_string_array("t.strings").value(), (std::vector<std::string>{"a", "bc", ""}));
    EXPECT_EQ(f->get_f32_array("t.f32s").value(), (std::vector<float>{1.5f, -2.0f}));
    const gguf_value* nested = f->find("t.nested");
    ASSERT_NE(nested, nullptr);
    const auto& outer = std::get<gguf_array>(nested->data);
    ASSERT_EQ(outer.elem_type, gguf_type::array);
    ASSERT_EQ(outer.items.size(), 2u);
    const auto& inner = std::get<gguf_array>(outer.items[0].data);
    EXPECT_EQ(inner.elem_type, gguf_type::u32);
    EXPECT_EQ(std::get<uint64_t>(inner.items[1].data), 2u);
    EXPECT_EQ(std::get<gguf_array>(outer.items[1].data).items.size(), 1u);

    struct tensor_case { const char* name; dtype type; shape_t shape; uint64_t offset, n_bytes; };
    for (const auto& c : {tensor_case{"w.f32", dtype::f32, {2, 3}, 0, 24}, {"w.q8", dtype::q8_0, {2, 32}, 32, 68},
                          {"w.f16", dtype::f16, {4}, 128, 8}, {"w.q4", dtype::q4_0, {32}, 160, 18},
                          {"w.bf16", dtype::bf16, {2, 1, 1, 2}, 192, 8}}) {
        const gguf_tensor_info* t = f->find_tensor(c.name);
        ASSERT_NE(t, nullptr) << c.name;
        EXPECT_EQ(t->type, c.type) << c.name;
        EXPECT_EQ(t->shape, c.shape) << c.name << " " << t->shape.to_string();
        EXPECT_EQ(t->offset, c.offset) << c.name;
        EXPECT_EQ(t->n_bytes, c.n_bytes) << c.name;
        // The view points at data_offset + offset of the parsed bytes, which hold the builder's pattern.
        tensor v = f->view(*t);
        EXPECT_EQ(v.raw(), static_cast<const void*>(t->data));
        EXPECT_EQ(std::memcmp(v.raw(), bytes.data() + f->data_offset() + c.offset, c.n_bytes), 0) << c.name;
    }
    EXPECT_EQ(f->data_offset() % 32, 0u);
}

TEST(gguf_synthetic, getters_report_missing_keys_and_wrong_types) {
    auto f = parse_owned(build(valid_spec()));
    ASSERT_TRUE(f) << f.error().to_string();
    EXPECT_EQ(f->get_u32_or("no.such.key", 77).value(), 77u);
    EXPECT_EQ(f->get_u32_or("t.u32", 77).value(), 128u);
    struct getter_case { const char* name; std::function<status()> call; errc code; const char* needle; };
    auto st = [](const auto& r) { return r ? ok_status() : r.error(); };
    const getter_case cases[] = {
        {"missing key", [&] { return st(f->get_u32("no.such.key")); }, errc::not_found, "'no.such.key' not found"},
        {"string as u32", [&] { return st(f->get_u32("general.architecture")); }, errc::corrupt_file,
         "is string, expected u32"},
        {"negative as u32", [&] { return st(f->get_u32("t.i8")); }, errc::corrupt_file, "does not fit in u32"},
        {"u64 too big for u32", [&] { return st(f->get_u32("t.u64")); }, errc::corrupt_file, "does not fit in u32"},
        {"u32 as f32", [&] { return st(f->get_f32("t.u32")); }, errc::corrupt_file, "is u32, expected f32"},
        {"f32 as bool", [&] { return st(f->get_bool("t.f32")); }, errc::corrupt_file, "is f32, expected bool"},
        {"wrong type is no fallback", [&] { return st(f->get_u32_or("general.architecture", 1)); },
         errc::corrupt_file, "expected u32"},
        {"scalar as array", [&] { return st(f->get_string_array("t.u32")); }, errc::corrupt_file,
         "is u32, expected array"},
        {"floats as strings", [&] { return st(f->get_string_array("t.f32s")); }, errc::corrupt_file,
         "element 0 (f32) is not a string"},
        {"strings as floats", [&] { return st(f->get_f32_array("t.strings")); }, errc::corrupt_file,
         "element 0 (string) is not a float"},
        {"arrays as i32", [&] { return st(f->get_i32_array("t.nested")); }, errc::corrupt_file,
         "element 0 (array) is not an integer"},
    };
    for (const auto& c : cases) {
        status s = c.call();
        ASSERT_FALSE(s.ok()) << c.name;
        EXPECT_EQ(s.code(), c.code) << c.name << ": " << s.to_string();
        EXPECT_NE(s.message().find(c.needle), std::string::npos) << c.name << ": " << s.message();
    }
}

TEST(gguf_synthetic, custom_alignment_moves_the_data_section) {
    gguf_spec s = valid_spec();
    s.alignment = 256;
    s.kvs.push_back(kv_scalar<uint32_t>("general.alignment", 4, 256));
    s.tensors = {{"a", {8}, 0, 0}, {"b", {8}, 0, 256}};
    auto f = parse_owned(build(s));
    ASSERT_TRUE(f) << f.error().to_string();
    EXPECT_EQ(f->alignment(), 256u);
    EXPECT_EQ(f->data_offset() % 256, 0u);
    EXPECT_EQ(f->find_tensor("b")->offset, 256u);
    // Offset 32 would do under the default alignment but not under 256.
    s.tensors[1].offset = 32;
    auto bad = parse_owned(build(s));
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().message().find("not a multiple of the alignment 256"), std::string::npos);
}

TEST(gguf_synthetic, version_2_parses) {
    gguf_spec s = valid_spec();
    s.version = 2;
    auto f = parse_owned(build(s));
    ASSERT_TRUE(f) << f.error().to_string();
    EXPECT_EQ(f->version(), 2u);
}

struct bad_case {
    const char* name;
    std::function<void(gguf_spec&)> edit;
    errc code;
    const char* needle;  // the message must name the problem
    std::function<void(std::vector<std::byte>&)> patch = {};  // applied to the built bytes
};

std::vector<std::byte> raw_key_bytes(std::function<void(byte_writer&)> f) {
    byte_writer w;
    f(w);
    return std::move(w.out());
}

TEST(gguf_synthetic, bad_files_fail_with_the_right_error) {
    constexpr uint64_t huge = 1ull << 62;
    const bad_case cases[] = {
        {"bad magic", [](gguf_spec& s) { s.magic = "GGML"; }, errc::corrupt_file, "bad magic 'GGML'"},
        {"binary magic", [](gguf_spec& s) { s.magic = std::string("\x01\x02GU", 4); }, errc::corrupt_file,
         "bad magic '\\x01\\x02GU'"},
        {"version 1", [](gguf_spec& s) { s.version = 1; }, errc::unsupported, "version 1 is not supported"},
        {"version 0", [](gguf_spec& s) { s.version = 0; }, errc::unsupported, "version 0"},
        {"version 4", [](gguf_spec& s) { s.version = 4; }, errc::unsupported, "version 4"},
        {"big-endian version", [](gguf_spec& s) { s.version = 0x03000000; }, errc::unsupported, "big-endian"},
        {"n_kv huge", [&](gguf_spec& s) { s.n_kv = huge; }, errc::corrupt_file, "n_kv 4611686018427387904 cannot fit"},
        {"n_tensors huge", [&](gguf_spec& s) { s.n_tensors = huge; }, errc::corrupt_file,
         "n_tensors 4611686018427387904 cannot fit"},
        {"n_tensors one too many", [](gguf_spec& s) { s.n_tensors = 6; }, errc::corrupt_file, "tensor info #5"},
        {"key length huge", [](gguf_spec&) {}, errc::corrupt_file, "key #0: key length 18446744073709551615",
         [](std::vector<std::byte>& b) {
             byte_writer w;  // a header with one key whose length is 2^64 - 1, then some bytes
             w.put('G').put('G').put('U').put('F').put<uint32_t>(3).put<uint64_t>(0).put<uint64_t>(1);
             w.put<uint64_t>(~0ull).bytes(std::vector<std::byte>(64));
             b = std::move(w.out());
         }},
        {"string length huge",
         [](gguf_spec& s) {
             s.kvs.push_back({"s", 8, raw_key_bytes([](byte_writer& w) { w.put<uint64_t>(1ull << 60); })});
         },
         errc::corrupt_file, "string length 1152921504606846976"},
        {"array count huge",
         [](gguf_spec& s) { s.kvs.push_back({"a", 9, array_header(4, 1ull << 61)}); }, errc::corrupt_file,
         "array of 2305843009213693952 u32"},
        {"array of strings too many for the bytes left",
         [](gguf_spec& s) { s.kvs.push_back({"a", 9, array_header(8, 1000000)}); }, errc::corrupt_file,
         "array of 1000000 string"},
        {"array count of max u64",
         [](gguf_spec& s) { s.kvs.push_back({"a", 9, array_header(12, ~0ull)}); }, errc::corrupt_file,
         "array of 18446744073709551615 f64"},
        {"unknown value type",
         [](gguf_spec& s) { s.kvs.push_back(kv_scalar<uint32_t>("x", 13, 0)); }, errc::corrupt_file,
         "unknown value type 13"},
        {"unknown array element type",
         [](gguf_spec& s) { s.kvs.push_back({"a", 9, array_header(99, 1)}); }, errc::corrupt_file,
         "unknown array element type 99"},
        {"arrays nested too deep",
         [](gguf_spec& s) {
             byte_writer w;
             for (int i = 0; i < 6; ++i) w.bytes(array_header(9, 1));
             w.bytes(array_header(4, 0));
             s.kvs.push_back({"deep", 9, std::move(w.out())});
         },
         errc::corrupt_file, "nested deeper than 4"},
        {"bool 2", [](gguf_spec& s) { s.kvs.push_back(kv_scalar<uint8_t>("b", 7, 2)); }, errc::corrupt_file,
         "bool value 2"},
        {"duplicate key", [](gguf_spec& s) { s.kvs.push_back(kv_string("general.architecture", "again")); },
         errc::corrupt_file, "duplicate key 'general.architecture'"},
        {"alignment 48", [](gguf_spec& s) { s.kvs.push_back(kv_scalar<uint32_t>("general.alignment", 4, 48)); },
         errc::corrupt_file, "general.alignment 48 is not a power of two"},
        {"alignment 0", [](gguf_spec& s) { s.kvs.push_back(kv_scalar<uint32_t>("general.alignment", 4, 0)); },
         errc::corrupt_file, "general.alignment 0 is not a power of two"},
        {"alignment as u64",
         [](gguf_spec& s) { s.kvs.push_back(kv_scalar<uint64_t>("general.alignment", 10, 32)); },
         errc::corrupt_file, "general.alignment is u64, expected u32"},
        {"n_dims 0", [](gguf_spec& s) { s.tensors[1].ne = {}; }, errc::corrupt_file,
         "tensor 'w.q8': n_dims 0"},
        {"n_dims 5", [](gguf_spec& s) { s.tensors[1].ne = {32, 1, 1, 1, 1}; }, errc::corrupt_file,
         "tensor 'w.q8': n_dims 5"},
        {"unknown ggml type 99", [](gguf_spec& s) { s.tensors[0].type = 99; }, errc::corrupt_file,
         "tensor 'w.f32': unknown ggml type id 99"},
        {"first unknown ggml type 40", [](gguf_spec& s) { s.tensors[0].type = 40; }, errc::corrupt_file,
         "unknown ggml type id 40"},
        {"Q4_1", [](gguf_spec& s) { s.tensors[1].type = 3; }, errc::unsupported, "tensor 'w.q8': ggml type Q4_1"},
        {"Q6_K", [](gguf_spec& s) { s.tensors[1].type = 14; }, errc::unsupported, "ggml type Q6_K (id 14)"},
        {"I32", [](gguf_spec& s) { s.tensors[0].type = 26; }, errc::unsupported, "ggml type I32"},
        {"F64", [](gguf_spec& s) { s.tensors[0].type = 28; }, errc::unsupported, "ggml type F64"},
        {"TQ2_0", [](gguf_spec& s) { s.tensors[0].type = 35; }, errc::unsupported, "ggml type TQ2_0"},
        {"misaligned offset", [](gguf_spec& s) { s.tensors[1].offset = 36; }, errc::corrupt_file,
         "tensor 'w.q8': offset 36 is not a multiple of the alignment 32"},
        {"overlapping tensors", [](gguf_spec& s) { s.tensors[2].offset = 64; }, errc::corrupt_file,
         "tensors 'w.q8' [32, 100) and 'w.f16' [64, 72) overlap"},
        {"same offset twice", [](gguf_spec& s) { s.tensors[4].offset = 160; }, errc::corrupt_file, "overlap"},
        {"data past the end", [](gguf_spec& s) { s.data_bytes = 199; }, errc::corrupt_file,
         "tensor 'w.bf16': data [192, 200) of the data section"},
        {"offset near 2^64", [](gguf_spec& s) { s.tensors[0].offset = ~0ull - 31; }, errc::corrupt_file,
         "tensor 'w.f32': data [18446744073709551584, 18446744073709551608) of the data section"},
        {"dims product overflows", [](gguf_spec& s) { s.tensors[0].ne = {1ull << 32, 1ull << 32}; },
         errc::corrupt_file, "tensor 'w.f32': shape [4294967296, 4294967296] of f32 overflows"},
        {"q4_0 element count overflows though its bytes fit",
         [](gguf_spec& s) { s.tensors[3].ne = {1ull << 32, 1ull << 31}; }, errc::corrupt_file,
         "tensor 'w.q4': shape [2147483648, 4294967296] of q4_0 overflows"},
        {"zero dim", [](gguf_spec& s) { s.tensors[0].ne = {3, 0}; }, errc::unsupported,
         "tensor 'w.f32': a dim of 0 (an empty tensor) is not supported"},
        {"dim over int64", [](gguf_spec& s) { s.tensors[0].ne = {1ull << 63}; }, errc::corrupt_file,
         "dim 9223372036854775808 is too large"},
        {"q8_0 row not a multiple of the block", [](gguf_spec& s) { s.tensors[1].ne = {33, 2}; },
         errc::corrupt_file, "tensor 'w.q8': last dim 33 is not a multiple of the q8_0 block of 32"},
        {"duplicate tensor name", [](gguf_spec& s) { s.tensors[2].name = "w.f32"; }, errc::corrupt_file,
         "tensor info #2: duplicate tensor name 'w.f32'"},
        {"tensor name length huge", [](gguf_spec& s) { s.tensors[4].name = ""; }, errc::corrupt_file,
         "tensor info #4: name length 18446744073709551615",
         [](std::vector<std::byte>& b) {
             // The last info's name is empty: overwrite its zero length with 2^64 - 1.
             const std::string key = "w.q4";
             auto it = std::search(b.begin(), b.end(), reinterpret_cast<const std::byte*>(key.data()),
                                   reinterpret_cast<const std::byte*>(key.data()) + key.size());
             // skip name, n_dims(4), ne(8), type(4), offset(8): the next u64 is the empty name's length
             auto len_at = it + static_cast<std::ptrdiff_t>(key.size() + 4 + 8 + 4 + 8);
             std::fill(len_at, len_at + 8, std::byte{0xff});
         }},
    };
    {  // the unedited spec parses, so every failure below is the edit's doing
        auto ok = parse_owned(build(valid_spec()));
        ASSERT_TRUE(ok) << ok.error().to_string();
    }
    for (const auto& c : cases) {
        gguf_spec s = valid_spec();
        c.edit(s);
        auto bytes = build(s);
        if (c.patch) c.patch(bytes);
        auto f = parse_owned(bytes);
        ASSERT_FALSE(f) << c.name;
        EXPECT_EQ(f.error().code(), c.code) << c.name << ": " << f.error().to_string();
        EXPECT_NE(f.error().message().find(c.needle), std::string::npos)
            << c.name << "\n  want: " << c.needle << "\n  got:  " << f.error().message();
    }
}

TEST(gguf_synthetic, every_truncation_fails_cleanly) {
    // The file ends at the last tensor's last byte, so every proper prefix is missing something.
    const auto bytes = build(valid_spec());
    for (size_t n = 0; n < bytes.size(); ++n) {
        std::vector<std::byte> prefix(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(n));
        auto f = parse_owned(prefix);
        ASSERT_FALSE(f) << "prefix of " << n << " bytes parsed";
        ASSERT_EQ(f.error().code(), errc::corrupt_file) << n << ": " << f.error().to_string();
        const auto& m = f.error().message();
        ASSERT_TRUE(m.find("truncated") != std::string::npos || m.find("past the end") != std::string::npos ||
                    m.find("bad magic") != std::string::npos || m.find("exceeds the") != std::string::npos ||
                    m.find("left") != std::string::npos || m.find("cannot fit") != std::string::npos)
            << n << ": " << m;
    }
}

TEST(gguf_real, every_truncation_of_a_real_header_fails_cleanly) {
    const auto bytes = read_file(k_text / "stories260K-q8_0.gguf");
    ASSERT_EQ(bytes.size(), 379168u);
    {
        auto whole = parse_owned(bytes);
        ASSERT_TRUE(whole) << whole.error().to_string();
    }
    // Every prefix through the header and the first tensors' data, then a stride through the rest.
    for (size_t n = 0; n < bytes.size(); n += (n < 14240 + 4096 ? 1 : 997)) {
        auto f = gguf_parse(std::span(bytes.data(), n));
        ASSERT_FALSE(f) << "prefix of " << n << " bytes parsed";
        ASSERT_EQ(f.error().code(), errc::corrupt_file) << n << ": " << f.error().to_string();
    }
}

// ---- mapped_file and gguf_open on odd files ----

class temp_dir {
public:
    temp_dir() : path_(fs::temp_directory_path() / ("mm_test_gguf_" + std::to_string(::getpid()))) {
        fs::create_directories(path_);
    }
    ~temp_dir() {
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
    const fs::path& path() const { return path_; }

private:
    fs::path path_;
};

// This process's resident kB of the mapping that starts at `p`, from /proc/self/smaps.
int64_t mapping_rss_kb(const void* p) {
    std::ifstream smaps("/proc/self/smaps");
    std::string line;
    bool in_it = false;
    const auto addr = reinterpret_cast<uintptr_t>(p);
    while (std::getline(smaps, line)) {
        uintptr_t lo = 0, hi = 0;
        if (std::sscanf(line.c_str(), "%lx-%lx ", &lo, &hi) == 2 && line.find(':') > line.find(' ')) {
            in_it = lo <= addr && addr < hi;
        } else if (in_it && line.rfind("Rss:", 0) == 0) {
            return std::stoll(line.substr(4));
        }
    }
    return -1;
}

// Dropped pages leave the process (the mapping's Rss falls by them) and read back the same from the file;
// only whole pages inside the mapping are dropped.
TEST(mapped_file, dropped_pages_leave_and_read_back_the_same) {
    temp_dir tmp;
    const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
    const size_t n = page * 8;
    std::vector<char> data(n);
    for (size_t i = 0; i < n; ++i) data[i] = static_cast<char>(i * 7 + 3);
    const fs::path path = tmp.path() / "pages.bin";
    std::ofstream(path, std::ios::binary).write(data.data(), static_cast<std::streamsize>(n));
    auto m = mapped_file::open(path);
    ASSERT_TRUE(m);
    int64_t sum = 0;
    for (size_t i = 0; i < n; i += page) sum += static_cast<int64_t>(m->bytes()[i]);  // page all 8 in
    const int64_t before = mapping_rss_kb(m->bytes().data());
    ASSERT_EQ(before, static_cast<int64_t>(n / 1024)) << sum;
    // Pages 2..5 whole, plus half of page 1 and of page 6 (kept: their other halves may be in use).
    m->drop_pages(m->bytes().subspan(page * 3 / 2, page * 5));
    EXPECT_EQ(mapping_rss_kb(m->bytes().data()), before - static_cast<int64_t>(4 * page / 1024));
    EXPECT_EQ(std::memcmp(m->bytes().data(), data.data(), n), 0) << "the file's bytes come back";
    std::vector<std::byte> elsewhere(16);
    m->drop_pages(elsewhere);  // outside the mapping: nothing happens
    EXPECT_EQ(mapping_rss_kb(m->bytes().data()), before) << "all read back in by the memcmp";
}

TEST(mapped_file, maps_files_and_reports_os_errors) {
    temp_dir tmp;
    const fs::path empty = tmp.path() / "empty.gguf";
    std::ofstream(empty).close();
    auto m = mapped_file::open(empty);
    ASSERT_TRUE(m) << m.error().to_string();
    EXPECT_EQ(m->size(), 0u);
    EXPECT_TRUE(m->bytes().empty());

    auto g = gguf_open(empty);
    ASSERT_FALSE(g);
    EXPECT_EQ(g.error().code(), errc::corrupt_file);
    EXPECT_NE(g.error().message().find("empty.gguf: bad magic"), std::string::npos) << g.error().message();

    auto missing = mapped_file::open(tmp.path() / "missing.gguf");
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error().code(), errc::not_found);
    EXPECT_NE(missing.error().message().find("missing.gguf"), std::string::npos);

    auto dir = mapped_file::open(tmp.path());
    ASSERT_FALSE(dir);
    EXPECT_EQ(dir.error().code(), errc::io_error);

    const fs::path small = tmp.path() / "small.gguf";
    const auto bytes = build(valid_spec());
    std::ofstream(small, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()),
                                                 static_cast<std::streamsize>(bytes.size()));
    auto a = mapped_file::open(small);
    ASSERT_TRUE(a);
    ASSERT_EQ(a->size(), bytes.size());
    EXPECT_EQ(std::memcmp(a->bytes().data(), bytes.data(), bytes.size()), 0);
    const std::byte* p = a->bytes().data();
    mapped_file b = std::move(*a);  // the mapping moves; the source is left empty
    EXPECT_EQ(b.bytes().data(), p);
    EXPECT_EQ(a->size(), 0u);

    // A gguf_file keeps its mapping: views stay valid after the file on disk is gone.
    auto f = gguf_open(small);
    ASSERT_TRUE(f) << f.error().to_string();
    fs::remove(small);
    tensor v = f->view("w.f32").value();
    EXPECT_EQ(std::memcmp(v.raw(), bytes.data() + f->data_offset(), 24), 0);
}

}  // namespace
}  // namespace mm
