// tensor ownership and views, conversions between dtypes, and the small shared pieces (status, cancel,
// progress, the JSON-lines logger).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "common/arena.h"
#include "common/cancel.h"
#include "common/log.h"
#include "common/progress.h"
#include "common/status.h"
#include "common/tensor.h"

namespace mm {
namespace {

TEST(tensor, owning_tensor_is_zeroed_aligned_and_sized_by_dtype) {
    struct row { const char* name; dtype t; shape_t shape; size_t bytes; };
    const row rows[] = {
        {"f32 matrix", dtype::f32, {3, 5}, 60},       {"f16 vector", dtype::f16, {7}, 14},
        {"bf16 4d", dtype::bf16, {2, 1, 3, 4}, 48},   {"q8_0 rows", dtype::q8_0, {3, 64}, 3 * 2 * 34},
        {"q4_0 rows", dtype::q4_0, {5, 32}, 5 * 18},
    };
    for (const auto& r : rows) {
        tensor t = tensor::zeros(r.t, r.shape);
        EXPECT_EQ(t.bytes(), r.bytes) << r.name;
        EXPECT_EQ(reinterpret_cast<uintptr_t>(t.raw()) % 64, 0u) << r.name;
        const auto* p = static_cast<const unsigned char*>(t.raw());
        for (size_t i = 0; i < r.bytes; ++i) ASSERT_EQ(p[i], 0) << r.name << " byte " << i;
    }
}

TEST(tensor, views_share_memory_and_clone_copies_it) {
    std::vector<float> buf{1, 2, 3, 4, 5, 6};
    tensor v = tensor::view(dtype::f32, {2, 3}, buf.data());
    EXPECT_FALSE(v.owns_data());
    EXPECT_EQ(v.rows(), 2);
    EXPECT_EQ(v.cols(), 3);
    tensor c = v.clone();
    buf[0] = 100;
    EXPECT_EQ(v.f32()[0], 100);
    EXPECT_EQ(c.f32()[0], 1);
    tensor r = c.reshape({3, 2});
    EXPECT_EQ(r.raw(), c.raw());
    EXPECT_EQ(r.shape(), (shape_t{3, 2}));
    EXPECT_EQ(r.shape().to_string(), "[3, 2]");
}

TEST(tensor, reshape_keeps_owned_data_alive) {
    tensor r;
    {
        tensor t = tensor::from({4}, std::vector<float>{1, 2, 3, 4});
        r = t.reshape({2, 2});
    }
    EXPECT_EQ(r.f32()[3], 4);  // under ASan a dangling view would be a use-after-free
}

TEST(tensor, conversions_round_trip_within_each_dtype_precision) {
    std::vector<float> v(64);
    for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i) * 0.37f - 11.0f;
    const tensor x = tensor::from({2, 32}, v);
    struct row { dtype t; float rel; };  // relative step of each format: f16 2^-11, bf16 2^-8
    for (const auto& r : {row{dtype::f32, 0.0f}, row{dtype::f16, 0x1p-11f}, row{dtype::bf16, 0x1p-8f}}) {
        const tensor back = to_f32(convert(x, r.t));
        for (size_t i = 0; i < v.size(); ++i)
            EXPECT_LE(std::fabs(back.f32()[i] - v[i]), std::fabs(v[i]) * r.rel) << dtype_name(r.t) << " " << i;
    }
}

TEST(status, carries_code_message_and_context) {
    status s(errc::corrupt_file, "offset past end");
    EXPECT_FALSE(s.ok());
    const status c = s.context("loading a.gguf");
    EXPECT_EQ(c.code(), errc::corrupt_file);
    EXPECT_EQ(c.message(), "loading a.gguf: offset past end");
    EXPECT_EQ(c.to_string(), "corrupt_file: loading a.gguf: offset past end");
    result<int> r = status(errc::not_found, "x");
    EXPECT_FALSE(r);
    EXPECT_EQ(r.error().code(), errc::not_found);
    result<int> good = 3;
    ASSERT_TRUE(good);
    EXPECT_EQ(*good, 3);
    result<int> bad_ok = status();  // an ok status is not a value: it becomes an internal error
    EXPECT_EQ(bad_ok.error().code(), errc::internal);
}

TEST(cancel_token, copies_share_one_flag) {
    cancel_token a;
    cancel_token b = a;
    EXPECT_FALSE(b.stopped());
    a.cancel();
    EXPECT_TRUE(b.stopped());
}

TEST(progress, tee_calls_both_and_terminal_bar_is_silent_off_a_tty) {
    int a = 0, b = 0;
    auto fn = progress_tee([&](const progress_event& e) { a += static_cast<int>(e.done); },
                           [&](const progress_event&) { ++b; });
    fn({.stage = "load", .done = 2, .total = 4});
    fn({.stage = "load", .done = 4, .total = 4});
    EXPECT_EQ(a, 6);
    EXPECT_EQ(b, 2);

    std::FILE* f = std::tmpfile();
    {
        terminal_progress bar("model", f);
        bar.update({.stage = "load", .done = 1, .total = 2});
    }
    EXPECT_EQ(std::ftell(f), 0) << "a file is not a terminal: no bar";
    std::fclose(f);
}

TEST(log, one_json_object_per_line_with_typed_fields) {
    const std::string line = log_format(log_level::warn, "model_loaded",
                                        {{"model", "a\"b"}, {"tensors", 48}, {"secs", 1.5}, {"ok", true},
                                         {"ctl", std::string_view("\n\x01", 2)}},
                                        1700000000.25);
    EXPECT_EQ(line,
              "{\"ts\":1700000000.250,\"level\":\"warn\",\"event\":\"model_loaded\",\"model\":\"a\\\"b\","
              "\"tensors\":48,\"secs\":1.5,\"ok\":true,\"ctl\":\"\\n\\u0001\"}");
}

TEST(log, lines_below_the_level_are_dropped) {
    std::FILE* f = std::tmpfile();
    log_configure({.out = f, .min_level = log_level::info});
    log_debug("hidden");
    log_info("shown", {{"n", 1}});
    log_configure({});
    std::rewind(f);
    char buf[256] = {};
    const size_t n = std::fread(buf, 1, sizeof buf - 1, f);
    std::fclose(f);
    const std::string out(buf, n);
    EXPECT_EQ(out.find("hidden"), std::string::npos);
    EXPECT_NE(out.find("\"event\":\"shown\",\"n\":1}\n"), std::string::npos) << out;
}

}  // namespace
}  // namespace mm

namespace mm {
namespace {

TEST(arena, hands_out_aligned_disjoint_zeroed_views_until_full) {
    arena a(1000);
    auto t1 = a.alloc(dtype::f32, {3, 5});  // 60 bytes
    auto t2 = a.alloc(dtype::q8_0, {2, 32});  // 68 bytes, starts at 64
    ASSERT_TRUE(t1 && t2);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t1->raw()) % 64, 0u);
    EXPECT_EQ(static_cast<std::byte*>(t2->raw()) - static_cast<std::byte*>(t1->raw()), 64);
    EXPECT_EQ(a.used(), 64u + 68u);
    t1->f32()[14] = 7;
    const auto* p2 = static_cast<const unsigned char*>(t2->raw());
    for (size_t i = 0; i < t2->bytes(); ++i) ASSERT_EQ(p2[i], 0) << i;

    auto too_big = a.alloc(dtype::f32, {250});  // 1000 bytes from offset 192
    ASSERT_FALSE(too_big);
    EXPECT_EQ(too_big.error().code(), errc::resource_exhausted);
    EXPECT_EQ(a.alloc(dtype::q4_0, {7}).error().code(), errc::invalid_argument);

    a.reset();
    auto again = a.alloc(dtype::f32, {3, 5});
    ASSERT_TRUE(again);
    EXPECT_EQ(again->raw(), t1->raw());
    EXPECT_EQ(again->f32()[14], 0) << "reused memory comes back zeroed";
}

}  // namespace
}  // namespace mm
