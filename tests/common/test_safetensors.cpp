// safetensors reader: the shared model files against an independent listing, and bad headers (synthetic
// ones built here, and truncations of a real one) that must fail with the right error.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "common/safetensors.h"
#include "common/tensor.h"
#include "ref/files.h"

namespace mm {
namespace {

namespace fs = std::filesystem;

const fs::path k_image = fs::path(MM_SHARED_DIR) / "models" / "image";

using test::fnv1a64;
using test::read_file;

// ---- the shared model files ----
//
// Expected values come from Python's json module over each file's header (u64 little-endian length, then the
// JSON), independent of this reader: tensors sorted by (data_offsets[0], name); `listing_fnv` is FNV-1a 64 of
// "name|DTYPE|d0,d1,...\n" for every tensor in that order; `params` the sum of the shapes' products; `mid` the
// tensor at index n/2 and `mid_fnv` FNV-1a 64 of its bytes [8 + len + begin, 8 + len + end). The tensor and
// parameter counts agree with models/image/SOURCES.md (ddpm: 173 tensors named network.*, 606,852 float32
// params; taef2 decoder 1,338,499 and encoder 1,338,528 params) and with sd-tiny-random/README.md and
// shapes-t2i/README.md (unet 304 tensors / 1,106,212; vae 124 / 658,375; text_encoder 84 / 68,473; shapes-t2i
// unet 2,451,011 and text_encoder 136,000 params).
struct real_case {
    const char* file;
    size_t n_tensors;
    int64_t params;
    uint64_t listing_fnv;
    const char* first;
    const char* last;
    const char* mid;
    uint64_t mid_fnv;
    size_t n_metadata;
    safetensors_dtype type;  // every tensor in these files has this dtype
};
// clang-format off
const real_case k_real[] = {
    {"ddpm_mnist.safetensors", 173, 606852, 0xcda7028d6bc86e00ull, "network.time_embed.weight", "network.conv_out.bias",
     "network.b_mid.1.ln.bias", 0xdaf9ce510cd712beull, 3, safetensors_dtype::f32},
    {"ddpm_fashion.safetensors", 173, 606852, 0xcda7028d6bc86e00ull, "network.time_embed.weight",
     "network.conv_out.bias", "network.b_mid.1.ln.bias", 0x85a8ee6b5f2236f7ull, 3, safetensors_dtype::f32},
    {"taef2_decoder.safetensors", 79, 1338499, 0x945ceb8554ced439ull, "1.weight", "19.bias", "9.conv.0.weight",
     0xdb87e1275af37c21ull, 3, safetensors_dtype::f16},
    {"taef2_encoder.safetensors", 79, 1338528, 0xef975c570e3786e2ull, "0.weight", "14.bias", "8.conv.4.bias",
     0xd04a78384cd734c3ull, 3, safetensors_dtype::f16},
    {"sd-tiny-random/unet/diffusion_pytorch_model.safetensors", 304, 1106212, 0x5d9c36860f64c377ull, "conv_in.bias",
     "up_blocks.1.resnets.2.time_emb_proj.weight", "up_blocks.0.resnets.0.conv1.bias", 0x52a4ff1dccd63cc4ull, 1,
     safetensors_dtype::f32},
    {"sd-tiny-random/vae/diffusion_pytorch_model.safetensors", 124, 658375, 0x9bb22a73c84cc8abull,
     "decoder.conv_in.bias", "quant_conv.weight", "decoder.up_blocks.1.resnets.1.conv2.bias", 0xc14f1ec4b1486f01ull, 1,
     safetensors_dtype::f32},
    {"sd-tiny-random/text_encoder/model.safetensors", 84, 68473, 0x6b784832fac71c9cull,
     "text_model.embeddings.position_embedding.weight", "text_model.final_layer_norm.weight",
     "text_model.encoder.layers.2.self_attn.k_proj.bias", 0x8421ae126c7ced25ull, 1, safetensors_dtype::f32},
    {"shapes-t2i/unet/diffusion_pytorch_model.safetensors", 248, 2451011, 0x0f7c68726f6b8b1full, "conv_in.bias",
     "up_blocks.2.resnets.1.time_emb_proj.weight", "up_blocks.0.attentions.0.proj_out.bias", 0x3e5588098cd213c8ull, 1,
     safetensors_dtype::f16},
    {"shapes-t2i/text_encoder/model.safetensors", 36, 136000, 0x1814265495f63023ull,
     "text_model.embeddings.position_embedding.weight", "text_model.final_layer_norm.weight",
     "text_model.encoder.layers.1.layer_norm1.bias", 0xe44c23edf3523149ull, 1, safetensors_dtype::f16},
};
// clang-format on

std::string listing_line(const safetensors_tensor_info& t) {
    std::string s = t.name;
    s.append("|").append(safetensors_dtype_name(t.type)).append("|");
    for (size_t i = 0; i < t.shape.size(); ++i) s.append(i ? "," : "").append(std::to_string(t.shape[i]));
    return s.append("\n");
}

TEST(safetensors_real, every_file_matches_the_independent_listing) {
    for (const auto& c : k_real) {
        SCOPED_TRACE(c.file);
        auto f = safetensors_open(k_image / c.file);
        ASSERT_TRUE(f) << f.error().to_string();
        ASSERT_EQ(f->tensors().size(), c.n_tensors);
        std::string listing;
        int64_t params = 0;
        for (const auto& t : f->tensors()) {
            listing += listing_line(t);
            params += t.elements;
            EXPECT_EQ(t.type, c.type) << t.name;
            // Every tensor views in place with its shape and bytes.
            auto v = f->view(t);
            ASSERT_TRUE(v) << t.name << ": " << v.error().to_string();
            EXPECT_EQ(v->raw(), static_cast<const void*>(t.data)) << t.name;
            EXPECT_EQ(v->elements(), t.elements) << t.name;
            EXPECT_EQ(v->bytes(), t.n_bytes()) << t.name;
            ASSERT_EQ(static_cast<size_t>(v->n_dims()), t.shape.size()) << t.name;
            for (int d = 0; d < v->n_dims(); ++d) EXPECT_EQ(v->dim(d), t.shape[static_cast<size_t>(d)]) << t.name;
        }
        // On a mismatch, diff this against the Python listing described above.
        EXPECT_EQ(fnv1a64(std::as_bytes(std::span(listing))), c.listing_fnv) << listing;
        EXPECT_EQ(params, c.params);
        EXPECT_EQ(f->tensors().front().name, c.first);
        EXPECT_EQ(f->tensors().back().name, c.last);
        EXPECT_EQ(f->tensors()[c.n_tensors / 2].name, c.mid);
        const safetensors_tensor_info* mid = f->find_tensor(c.mid);
        ASSERT_NE(mid, nullptr);
        EXPECT_EQ(fnv1a64({mid->data, mid->n_bytes()}), c.mid_fnv);
        EXPECT_EQ(f->metadata().size(), c.n_metadata);
        EXPECT_EQ(f->metadata().at("format"), "pt");
        EXPECT_EQ(f->data_offset() % 8, 0u);  // the writers pad the header to 8 bytes
    }
}

TEST(safetensors_real, ddpm_metadata_and_names) {
    auto f = safetensors_open(k_image / "ddpm_mnist.safetensors");
    ASSERT_TRUE(f) << f.error().to_string();
    EXPECT_EQ(f->metadata().at("license"), "MIT");
    EXPECT_EQ(f->metadata().at("source"),
              "BrianPulfer/PapersReimplementations@9ebf59af99219b8888695ba0133c299d8251dc7f:ddpm/ddpm_mnist.pt");
    for (const auto& t : f->tensors()) EXPECT_EQ(t.name.rfind("network.", 0), 0u) << t.name;
    const auto* emb = f->find_tensor("network.time_embed.weight");
    ASSERT_NE(emb, nullptr);
    EXPECT_EQ(emb->shape, (std::vector<int64_t>{1000, 100}));
    EXPECT_EQ(emb->begin, 0u);
    EXPECT_EQ(emb->end, 400000u);
    EXPECT_EQ(f->find_tensor("network.nope"), nullptr);
    auto missing = f->view("network.nope");
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error().code(), errc::not_found);
}

TEST(safetensors_real, every_truncation_of_a_real_file_fails_cleanly) {
    const auto bytes = read_file(k_image / "ddpm_mnist.safetensors");
    ASSERT_EQ(bytes.size(), 2443232u);
    uint64_t n = 0;
    std::memcpy(&n, bytes.data(), 8);
    ASSERT_EQ(n, 15816u);
    // Prefixes: through the header every byte, then a stride through the data.
    for (size_t len = 0; len < bytes.size(); len += (len < 8 + n + 64 ? 1 : 4099)) {
        auto f = safetensors_parse(std::span(bytes.data(), len));
        ASSERT_FALSE(f) << "prefix of " << len << " bytes parsed";
        ASSERT_EQ(f.error().code(), errc::corrupt_file) << len << ": " << f.error().to_string();
    }
    // A header length cut short anywhere inside the JSON object: the JSON no longer closes.
    const auto* text = reinterpret_cast<const char*>(bytes.data() + 8);
    const size_t close = std::string_view(text, n).rfind('}');
    ASSERT_NE(close, std::string_view::npos);
    std::vector<std::byte> copy = bytes;
    for (uint64_t k = 0; k <= close; ++k) {
        std::memcpy(copy.data(), &k, 8);
        auto f = safetensors_parse(copy);
        ASSERT_FALSE(f) << "header length " << k << " parsed";
        ASSERT_EQ(f.error().code(), errc::corrupt_file) << k;
        ASSERT_NE(f.error().message().find("header JSON"), std::string::npos) << k << ": " << f.error().message();
    }
}

// ---- synthetic files ----

// The header length, the header, then `data_bytes` of a byte pattern.
std::vector<std::byte> make_file(std::string header, size_t data_bytes, bool pad = true) {
    while (pad && header.size() % 8) header += ' ';
    std::vector<std::byte> out(8 + header.size() + data_bytes);
    const uint64_t n = header.size();
    std::memcpy(out.data(), &n, 8);
    std::memcpy(out.data() + 8, header.data(), header.size());
    for (size_t i = 0; i < data_bytes; ++i) out[8 + header.size() + i] = static_cast<std::byte>(i * 13 + 1);
    return out;
}

const char* const k_valid_header = R"({
  "__metadata__": {"format": "pt", "note": "synthetic"},
  "a": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
  "b": {"dtype": "F16", "shape": [4], "data_offsets": [24, 32]},
  "c": {"dtype": "I64", "shape": [2], "data_offsets": [32, 48]},
  "d": {"dtype": "BF16", "shape": [], "data_offsets": [48, 50]},
  "e": {"dtype": "U8", "shape": [0, 5], "data_offsets": [50, 50]},
  "f": {"dtype": "F32", "shape": [1, 1, 1, 1, 2], "data_offsets": [52, 60]},
  "g": {"dtype": "BOOL", "shape": [3], "data_offsets": [60, 63], "extra": "ignored"},
  "h": {"dtype": "F32", "shape": [4, 0], "data_offsets": [64, 64]}
})";

TEST(safetensors_synthetic, valid_file_lists_every_tensor) {
    const auto bytes = make_file(k_valid_header, 64);
    auto f = safetensors_parse(bytes);
    ASSERT_TRUE(f) << f.error().to_string();
    struct row {
        const char* name;
        safetensors_dtype type;
        std::vector<int64_t> shape;
        int64_t elements;
        uint64_t begin, end;
    };
    const row want[] = {
        {"a", safetensors_dtype::f32, {2, 3}, 6, 0, 24},    {"b", safetensors_dtype::f16, {4}, 4, 24, 32},
        {"c", safetensors_dtype::i64, {2}, 2, 32, 48},      {"d", safetensors_dtype::bf16, {}, 1, 48, 50},
        {"e", safetensors_dtype::u8, {0, 5}, 0, 50, 50},    {"f", safetensors_dtype::f32, {1, 1, 1, 1, 2}, 2, 52, 60},
        {"g", safetensors_dtype::boolean, {3}, 3, 60, 63},  {"h", safetensors_dtype::f32, {4, 0}, 0, 64, 64},
    };
    ASSERT_EQ(f->tensors().size(), std::size(want));
    for (size_t i = 0; i < std::size(want); ++i) {
        const auto& t = f->tensors()[i];
        const auto& w = want[i];
        EXPECT_EQ(t.name, w.name);
        EXPECT_EQ(t.type, w.type) << w.name;
        EXPECT_EQ(t.shape, w.shape) << w.name;
        EXPECT_EQ(t.elements, w.elements) << w.name;
        EXPECT_EQ(t.begin, w.begin) << w.name;
        EXPECT_EQ(t.end, w.end) << w.name;
        EXPECT_EQ(t.data, bytes.data() + f->data_offset() + w.begin) << w.name;
    }
    EXPECT_EQ(f->metadata().size(), 2u);
    EXPECT_EQ(f->metadata().at("note"), "synthetic");

    // Views: F32 / F16 / BF16 up to 4 dims; a scalar is a 0-dim tensor of one element.
    struct view_case { const char* name; std::optional<dtype> type; errc code; const char* needle; };
    const view_case views[] = {
        {"a", dtype::f32, errc::ok, ""},
        {"b", dtype::f16, errc::ok, ""},
        {"d", dtype::bf16, errc::ok, ""},
        {"c", std::nullopt, errc::unsupported, "tensor 'c': dtype I64 cannot be viewed"},
        {"g", std::nullopt, errc::unsupported, "dtype BOOL cannot be viewed"},
        {"f", std::nullopt, errc::unsupported, "tensor 'f': 5 dims cannot be viewed"},
        {"e", std::nullopt, errc::unsupported, "dtype U8 cannot be viewed"},
        {"h", std::nullopt, errc::unsupported, "tensor 'h': a last dim of 0 cannot be viewed"},
        {"zz", std::nullopt, errc::not_found, "tensor 'zz' not found"},
    };
    for (const auto& c : views) {
        auto v = f->view(c.name);
        if (c.code == errc::ok) {
            ASSERT_TRUE(v) << c.name << ": " << v.error().to_string();
            EXPECT_EQ(v->type(), *c.type) << c.name;
            EXPECT_EQ(v->raw(), static_cast<const void*>(f->find_tensor(c.name)->data)) << c.name;
            EXPECT_EQ(v->bytes(), f->find_tensor(c.name)->n_bytes()) << c.name;
        } else {
            ASSERT_FALSE(v) << c.name;
            EXPECT_EQ(v.error().code(), c.code) << c.name;
            EXPECT_NE(v.error().message().find(c.needle), std::string::npos) << c.name << ": " << v.error().message();
        }
    }
    EXPECT_EQ(f->view("d")->elements(), 1);
    EXPECT_EQ(f->view("a")->shape(), (shape_t{2, 3}));
}

TEST(safetensors_synthetic, dtype_table_matches_the_spec) {
    // Element sizes from the safetensors format description.
    struct dt { const char* name; safetensors_dtype type; size_t size; std::optional<dtype> ours; };
    const dt rows[] = {
        {"BOOL", safetensors_dtype::boolean, 1, {}},   {"U8", safetensors_dtype::u8, 1, {}},
        {"I8", safetensors_dtype::i8, 1, {}},          {"I16", safetensors_dtype::i16, 2, {}},
        {"U16", safetensors_dtype::u16, 2, {}},        {"F16", safetensors_dtype::f16, 2, dtype::f16},
        {"BF16", safetensors_dtype::bf16, 2, dtype::bf16}, {"I32", safetensors_dtype::i32, 4, {}},
        {"U32", safetensors_dtype::u32, 4, {}},        {"F32", safetensors_dtype::f32, 4, dtype::f32},
        {"F64", safetensors_dtype::f64, 8, {}},        {"I64", safetensors_dtype::i64, 8, {}},
        {"U64", safetensors_dtype::u64, 8, {}},        {"F8_E4M3", safetensors_dtype::f8_e4m3, 1, {}},
        {"F8_E5M2", safetensors_dtype::f8_e5m2, 1, {}},
    };
    for (const auto& r : rows) {
        EXPECT_EQ(safetensors_dtype_from_name(r.name), r.type) << r.name;
        EXPECT_EQ(safetensors_dtype_name(r.type), r.name);
        EXPECT_EQ(safetensors_dtype_size(r.type), r.size) << r.name;
        EXPECT_EQ(safetensors_to_dtype(r.type), r.ours) << r.name;
    }
    EXPECT_EQ(safetensors_dtype_from_name("f32"), std::nullopt);  // names are case-sensitive
}

TEST(safetensors_synthetic, misaligned_data_is_listed_but_not_viewed) {
    // An unpadded 61-byte header puts the data at byte 69: listing works, an in-place f32 view cannot.
    const std::string header = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
    const auto bytes = make_file(header + std::string(61 - header.size(), ' '), 8, /*pad=*/false);
    auto f = safetensors_parse(bytes);
    ASSERT_TRUE(f) << f.error().to_string();
    EXPECT_EQ(f->data_offset(), 69u);
    auto v = f->view("a");
    ASSERT_FALSE(v);
    EXPECT_EQ(v.error().code(), errc::unsupported);
    EXPECT_NE(v.error().message().find("not 4-byte aligned"), std::string::npos) << v.error().message();
}

struct bad_case {
    const char* name;
    std::string header;
    size_t data_bytes;
    const char* needle;  // the message must name the problem; the code is always corrupt_file
    std::optional<uint64_t> header_len = std::nullopt;  // overrides the true length
};

// {"name": {body}, ...} from (name, body) pairs.
std::string header_of(std::initializer_list<std::pair<const char*, std::string>> tensors) {
    std::string s = "{";
    for (const auto& [name, body] : tensors) {
        if (s.size() > 1) s += ", ";
        s.append("\"").append(name).append("\": {").append(body).append("}");
    }
    return s.append("}");
}

TEST(safetensors_synthetic, bad_headers_fail_with_the_right_error) {
    const std::string a_ok = R"("dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24])";
    auto one = [](const std::string& body) { return header_of({{"a", body}}); };
    const bad_case cases[] = {
        {"header length past the end", one(a_ok), 24, "header length 100000 exceeds the", 100000},
        {"header length over the cap", one(a_ok), 24, "is over the cap", 200ull << 20},
        {"header length 2^64 - 1", one(a_ok), 24, "header length 18446744073709551615 is over the cap", ~0ull},
        {"empty header", "", 0, "header JSON"},
        {"invalid JSON", R"({"a": )", 0, "header JSON"},
        {"not UTF-8", "{\"\xff\": 1}", 0, "header JSON"},
        {"trailing garbage", one(a_ok) + "x", 24, "header JSON"},
        {"JSON array", "[1, 2]", 0, "header JSON is array, not an object"},
        {"JSON string", R"("hi")", 0, "header JSON is string, not an object"},
        {"duplicate tensor", header_of({{"a", a_ok}, {"a", a_ok}}), 24,
         "duplicate key 'a'"},
        {"duplicate field", one(a_ok + R"(, "dtype": "F16")"), 24, "duplicate key 'dtype'"},
        {"nested too deep", R"({"a": [[[[[[[[[1]]]]]]]]]})", 0, "nested deeper than 8"},
        {"entry not an object", R"({"a": 5})", 0, "tensor 'a': entry is number, not an object"},
        {"dtype missing", one(R"("shape": [2], "data_offsets": [0, 8])"), 8, "tensor 'a': dtype is missing"},
        {"dtype a number", one(R"("dtype": 1, "shape": [2], "data_offsets": [0, 8])"), 8,
         "tensor 'a': dtype is number, not a string"},
        {"dtype unknown", one(R"("dtype": "F7", "shape": [2], "data_offsets": [0, 8])"), 8,
         "tensor 'a': dtype 'F7' is not a safetensors dtype"},
        {"shape missing", one(R"("dtype": "F32", "data_offsets": [0, 8])"), 8, "tensor 'a': shape is missing"},
        {"shape an object", one(R"("dtype": "F32", "shape": {}, "data_offsets": [0, 8])"), 8,
         "tensor 'a': shape is object, not an array"},
        {"shape negative", one(R"("dtype": "F32", "shape": [-2], "data_offsets": [0, 8])"), 8,
         "tensor 'a': shape value -2 is negative"},
        {"shape fractional", one(R"("dtype": "F32", "shape": [2.5], "data_offsets": [0, 8])"), 8,
         "tensor 'a': shape entry 2.5 is number, not an integer"},
        {"shape a string", one(R"("dtype": "F32", "shape": ["2"], "data_offsets": [0, 8])"), 8,
         "tensor 'a': shape entry \"2\" is string, not an integer"},
        {"shape over int64", one(R"("dtype": "U8", "shape": [9223372036854775808], "data_offsets": [0, 8])"), 8,
         "tensor 'a': shape value 9223372036854775808 is too large"},
        {"element count overflows",
         one(R"("dtype": "F32", "shape": [4294967296, 4294967296, 4], "data_offsets": [0, 8])"), 8,
         "tensor 'a': shape [4294967296,4294967296,4] of F32 overflows its byte size"},
        {"byte count overflows", one(R"("dtype": "F64", "shape": [4611686018427387904], "data_offsets": [0, 8])"), 8,
         "tensor 'a': shape [4611686018427387904] of F64 overflows its byte size"},
        {"data_offsets missing", one(R"("dtype": "F32", "shape": [2])"), 8, "tensor 'a': data_offsets is missing"},
        {"data_offsets three entries", one(R"("dtype": "F32", "shape": [2], "data_offsets": [0, 8, 16])"), 16,
         "tensor 'a': data_offsets [0,8,16] is not an array of two integers"},
        {"data_offsets a string", one(R"("dtype": "F32", "shape": [2], "data_offsets": "0-8")"), 8,
         "tensor 'a': data_offsets \"0-8\" is not an array of two integers"},
        {"data_offsets negative", one(R"("dtype": "F32", "shape": [2], "data_offsets": [-1, 7])"), 8,
         "tensor 'a': data_offsets value -1 is negative"},
        {"data_offsets fractional", one(R"("dtype": "F32", "shape": [2], "data_offsets": [0, 8.0])"), 8,
         "tensor 'a': data_offsets entry 8.0 is number, not an integer"},
        {"begin after end", one(R"("dtype": "F32", "shape": [0], "data_offsets": [8, 0])"), 8,
         "tensor 'a': data_offsets [8, 0] has begin after end"},
        {"end past the data", one(a_ok), 16, "tensor 'a': data_offsets [0, 24) is past the end of the data (16 bytes)"},
        {"offsets over int64",
         one(R"("dtype": "F32", "shape": [2], "data_offsets": [18446744073709551000, 18446744073709551008])"), 16,
         "tensor 'a': data_offsets value 18446744073709551000 is too large"},
        {"size mismatch", one(R"("dtype": "F32", "shape": [2, 3], "data_offsets": [0, 20])"), 24,
         "tensor 'a': data_offsets [0, 20) holds 20 bytes; shape [2,3] of F32 needs 24"},
        {"overlap", header_of({{"a", a_ok}, {"b", R"("dtype": "F16", "shape": [4], "data_offsets": [16, 24])"}}),
         24, "tensors 'a' [0, 24) and 'b' [16, 24) overlap"},
        {"same range twice", header_of({{"a", a_ok}, {"b", a_ok}}), 24,
         "tensors 'a' [0, 24) and 'b' [0, 24) overlap"},
        {"metadata an array", R"({"__metadata__": ["x"]})", 0, "__metadata__ is array, not an object"},
        {"metadata value a number", R"({"__metadata__": {"k": 1}})", 0, "__metadata__ 'k' is number, not a string"},
    };
    {  // a well-formed one-tensor file parses, so each failure below is the edit's doing
        auto ok = safetensors_parse(make_file(one(a_ok), 24));
        ASSERT_TRUE(ok) << ok.error().to_string();
    }
    for (const auto& c : cases) {
        auto bytes = make_file(c.header, c.data_bytes);
        if (c.header_len) std::memcpy(bytes.data(), &*c.header_len, 8);
        auto f = safetensors_parse(bytes);
        ASSERT_FALSE(f) << c.name;
        EXPECT_EQ(f.error().code(), errc::corrupt_file) << c.name << ": " << f.error().to_string();
        EXPECT_NE(f.error().message().find(c.needle), std::string::npos)
            << c.name << "\n  want: " << c.needle << "\n  got:  " << f.error().message();
    }
    for (size_t len = 0; len < 8; ++len) {
        std::vector<std::byte> tiny(len, std::byte{0});
        auto f = safetensors_parse(tiny);
        ASSERT_FALSE(f) << len;
        EXPECT_NE(f.error().message().find("truncated: " + std::to_string(len) + " bytes"), std::string::npos);
    }
}

TEST(safetensors_synthetic, open_reports_missing_files) {
    auto f = safetensors_open(k_image / "no-such-file.safetensors");
    ASSERT_FALSE(f);
    EXPECT_EQ(f.error().code(), errc::not_found);
    EXPECT_NE(f.error().message().find("no-such-file.safetensors"), std::string::npos);
}

}  // namespace
}  // namespace mm
