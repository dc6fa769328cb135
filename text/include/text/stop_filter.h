// stop_filter: turns token bytes into text that is safe to send. It holds back a tail that is an incomplete
// UTF-8 character or the beginning of a stop string, and ends the text where a stop string completes (the
// stop string itself is never released). flush() releases what is held at the end, with invalid UTF-8
// replaced by U+FFFD, so every released string is valid UTF-8.
// Thread safety: one per sequence.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace mm::text {

class stop_filter {
public:
    explicit stop_filter(std::vector<std::string> stops) : stops_(std::move(stops)) {}

    // Appends bytes; returns what can be released now. After a stop string matched, stopped() is true and
    // further pushes release nothing.
    std::string push(std::string_view bytes);
    std::string flush();
    bool stopped() const { return stopped_; }

private:
    std::vector<std::string> stops_;
    std::string pending_;
    bool stopped_ = false;
};

// Replaces every byte that is not part of a valid UTF-8 sequence with U+FFFD.
std::string utf8_sanitize(std::string_view s);

}  // namespace mm::text
