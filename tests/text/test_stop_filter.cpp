// stop_filter: released text never splits a character, never shows a stop string or its unfinished start.
#include <gtest/gtest.h>

#include "text/stop_filter.h"

namespace mm::text {
namespace {

// Feeds pieces, returns what was released (with the flush) and whether it stopped.
std::pair<std::string, bool> run(std::vector<std::string> stops, std::vector<std::string> pieces) {
    stop_filter f(std::move(stops));
    std::string out;
    for (const auto& p : pieces) out += f.push(p);
    out += f.flush();
    return {out, f.stopped()};
}

TEST(stop_filter, stops_match_across_pieces_and_are_not_released) {
    struct row { const char* name; std::vector<std::string> stops, pieces; std::string want; bool stopped; };
    const row rows[] = {
        {"no stops", {}, {"Once", " upon"}, "Once upon", false},
        {"stop inside one piece", {"\n\n"}, {"a\n\nb"}, "a", true},
        {"stop across pieces", {"END"}, {"fine E", "N", "Dtail"}, "fine ", true},
        {"a false start is released", {"END"}, {"EN", "x"}, "ENx", false},
        {"earliest of several", {"zz", "b"}, {"abzz"}, "a", true},
        {"prefix held at the end is flushed", {"END"}, {"abc E"}, "abc E", false},
        {"stop at the very start", {"S"}, {"Sx"}, "", true},
    };
    for (const auto& r : rows) {
        auto [out, stopped] = run(r.stops, r.pieces);
        EXPECT_EQ(out, r.want) << r.name;
        EXPECT_EQ(stopped, r.stopped) << r.name;
    }
}

TEST(stop_filter, characters_are_never_split) {
    stop_filter f({});
    // "ö" = C3 B6, "🙂" = F0 9F 99 82, fed one byte per token as byte-fallback tokens are.
    EXPECT_EQ(f.push("w\xC3"), "w");
    EXPECT_EQ(f.push("\xB6"), "\xC3\xB6");
    EXPECT_EQ(f.push("\xF0\x9F"), "");
    EXPECT_EQ(f.push("\x99"), "");
    EXPECT_EQ(f.push("\x82!"), "\xF0\x9F\x99\x82!");
    EXPECT_EQ(f.push("\xF0\x9F"), "");
    EXPECT_EQ(f.flush(), "\xEF\xBF\xBD\xEF\xBF\xBD") << "a character cut by the end becomes U+FFFD";
}

TEST(stop_filter, invalid_bytes_become_replacement_characters) {
    EXPECT_EQ(utf8_sanitize("a\xFF" "b"), "a\xEF\xBF\xBD" "b");
    EXPECT_EQ(utf8_sanitize("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD") << "overlong";
    EXPECT_EQ(utf8_sanitize("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD") << "surrogate";
    EXPECT_EQ(utf8_sanitize("h\xC3\xA9llo"), "h\xC3\xA9llo");
}

}  // namespace
}  // namespace mm::text
