// multipart: a multipart/form-data reader (RFC 7578 over RFC 2046) for upload routes (audio files with their
// form fields). It reads the whole body the server has already size-limited, in one linear pass, and hands
// back views into it. Every byte is untrusted: a bad boundary, a cut body, oversized headers or too many parts
// are errors that say what is wrong (invalid_argument, which the API answers as 400).
// Thread safety: pure functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace mm::services {

struct multipart_part {
    std::string name;                     // Content-Disposition's name
    std::optional<std::string> filename;  // present for file parts
    std::string content_type;             // the part's Content-Type; "text/plain" when absent
    std::string_view data;                // into the body passed to multipart_parse
};

struct multipart_limits {
    size_t max_parts = 64;
    size_t max_header_bytes = 8 << 10;  // one part's header block
    size_t max_field_bytes = 64 << 10;  // a part without a filename (a form field)
};

// content_type: the request's Content-Type header ("multipart/form-data; boundary=...").
result<std::vector<multipart_part>> multipart_parse(std::string_view content_type, std::string_view body,
                                                    multipart_limits limits = {});

// The first part with this name, or null.
const multipart_part* multipart_find(const std::vector<multipart_part>& parts, std::string_view name);

}  // namespace mm::services
