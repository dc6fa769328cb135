// json_nesting_within: the nesting bound checked before untrusted JSON reaches nlohmann's recursive parser.
#include <gtest/gtest.h>

#include <string>

#include "common/json_nesting.h"

namespace mm {
namespace {

TEST(json_nesting, counts_brackets_outside_strings_only) {
    EXPECT_TRUE(json_nesting_within("", 0));
    EXPECT_TRUE(json_nesting_within("42", 0));
    EXPECT_FALSE(json_nesting_within("[]", 0));
    EXPECT_TRUE(json_nesting_within(R"({"a":[1,{"b":2}]})", 3));
    EXPECT_FALSE(json_nesting_within(R"({"a":[1,{"b":2}]})", 2));
    EXPECT_TRUE(json_nesting_within(R"(["[[[[", "{{{{"])", 1)) << "brackets in strings do not nest";
    EXPECT_TRUE(json_nesting_within(R"(["\"[[[", 1])", 1)) << "an escaped quote does not end the string";
    EXPECT_FALSE(json_nesting_within(R"(["\\", [[1]]])", 2)) << "an escaped backslash does";
    EXPECT_TRUE(json_nesting_within("[1],[2],[3]", 1)) << "siblings do not add up";
    EXPECT_TRUE(json_nesting_within("]]]][", 1)) << "stray closers do not go below zero";
}

TEST(json_nesting, a_body_of_brackets_is_refused_at_the_default_bound) {
    const std::string deep = std::string(500000, '[') + std::string(500000, ']');
    EXPECT_FALSE(json_nesting_within(deep));
    const std::string ok = std::string(k_json_max_nesting, '[') + std::string(k_json_max_nesting, ']');
    EXPECT_TRUE(json_nesting_within(ok));
    EXPECT_FALSE(json_nesting_within("[" + ok + "]"));
}

}  // namespace
}  // namespace mm
