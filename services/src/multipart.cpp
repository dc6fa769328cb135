#include "multipart.h"

#include <algorithm>
#include <cctype>
#include <functional>

namespace mm::services {
namespace {

status bad(const std::string& what) { return status(errc::invalid_argument, "multipart body: " + what); }

bool iequal(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
           });
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

// Header parameters: `; name=value` pairs where value is a token or a quoted-string (backslash escapes).
// Returns false on a malformed list.
bool parse_params(std::string_view s, const std::function<void(std::string_view, std::string)>& on_param) {
    while (true) {
        s = trim(s);
        if (s.empty()) return true;
        if (s.front() != ';') return false;
        s.remove_prefix(1);
        s = trim(s);
        if (s.empty()) return true;  // a trailing ';' is tolerated, as browsers and curl never send it but some clients do
        const size_t eq = s.find('=');
        if (eq == std::string_view::npos || eq == 0) return false;
        const std::string_view name = trim(s.substr(0, eq));
        s.remove_prefix(eq + 1);
        s = trim(s);
        std::string value;
        if (!s.empty() && s.front() == '"') {
            size_t i = 1;
            for (; i < s.size() && s[i] != '"'; ++i) {
                if (s[i] == '\\' && i + 1 < s.size()) ++i;
                value += s[i];
            }
            if (i >= s.size()) return false;  // unterminated quoted-string
            s.remove_prefix(i + 1);
        } else {
            const size_t end = std::min(s.find(';'), s.size());
            value = std::string(trim(s.substr(0, end)));
            s.remove_prefix(end);
        }
        on_param(name, std::move(value));
    }
}

bool boundary_char(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || std::string_view("'()+_,-./:=? ").find(c) != std::string_view::npos;
}

}  // namespace

const multipart_part* multipart_find(const std::vector<multipart_part>& parts, std::string_view name) {
    for (const auto& p : parts)
        if (p.name == name) return &p;
    return nullptr;
}

result<std::vector<multipart_part>> multipart_parse(std::string_view content_type, std::string_view body,
                                                    multipart_limits limits) {
    // The media type and its boundary parameter.
    const size_t semi = std::min(content_type.find(';'), content_type.size());
    if (!iequal(trim(content_type.substr(0, semi)), "multipart/form-data"))
        return bad("the Content-Type must be multipart/form-data, not '" + std::string(trim(content_type.substr(0, semi))) + "'");
    std::string boundary;
    if (!parse_params(content_type.substr(semi), [&](std::string_view n, std::string v) {
            if (iequal(n, "boundary")) boundary = std::move(v);
        }))
        return bad("the Content-Type's parameters are malformed");
    if (boundary.empty() || boundary.size() > 70 || boundary.back() == ' ' ||
        !std::all_of(boundary.begin(), boundary.end(), boundary_char))
        return bad("the Content-Type needs a boundary of 1 to 70 allowed characters");

    const std::string delimiter = "\r\n--" + boundary;  // every boundary line but a first one at offset 0
    const std::boyer_moore_horspool_searcher find_delim(delimiter.begin(), delimiter.end());
    auto next_delimiter = [&](size_t from) -> size_t {
        const auto it = std::search(body.begin() + static_cast<std::ptrdiff_t>(from), body.end(), find_delim);
        return it == body.end() ? std::string_view::npos : static_cast<size_t>(it - body.begin());
    };

    // The first boundary: at the very start, or after a preamble.
    size_t at;
    if (body.substr(0, delimiter.size() - 2) == std::string_view(delimiter).substr(2)) {
        at = delimiter.size() - 2;
    } else {
        const size_t d = next_delimiter(0);
        if (d == std::string_view::npos) return bad("no boundary line: the body does not use the declared boundary");
        at = d + delimiter.size();
    }

    std::vector<multipart_part> parts;
    for (;;) {
        // After a boundary: "--" ends the body; else optional padding, then CRLF and a part.
        if (body.substr(at, 2) == "--") return parts;
        while (at < body.size() && (body[at] == ' ' || body[at] == '\t')) ++at;
        if (body.substr(at, 2) != "\r\n") return bad("a boundary line is not followed by CRLF (cut or malformed body)");
        at += 2;
        if (parts.size() >= limits.max_parts)
            return bad("more than " + std::to_string(limits.max_parts) + " parts");

        // Headers, up to an empty line.
        multipart_part part{.name = {}, .filename = std::nullopt, .content_type = "text/plain", .data = {}};
        bool has_disposition = false;
        const size_t header_start = at;
        for (;;) {
            const size_t eol = body.find("\r\n", at);
            if (eol == std::string_view::npos) return bad("a part's headers are cut off");
            if (eol - header_start > limits.max_header_bytes)
                return bad("a part's headers exceed " + std::to_string(limits.max_header_bytes) + " bytes");
            const std::string_view line = body.substr(at, eol - at);
            at = eol + 2;
            if (line.empty()) break;
            const size_t colon = line.find(':');
            if (colon == std::string_view::npos || colon == 0) return bad("a part header without a name: '" + std::string(line.substr(0, 64)) + "'");
            const std::string_view name = trim(line.substr(0, colon));
            const std::string_view value = trim(line.substr(colon + 1));
            if (iequal(name, "Content-Disposition")) {
                const size_t vs = std::min(value.find(';'), value.size());
                if (!iequal(trim(value.substr(0, vs)), "form-data")) return bad("a part's Content-Disposition is not form-data");
                bool named = false;
                if (!parse_params(value.substr(vs), [&](std::string_view n, std::string v) {
                        if (iequal(n, "name")) part.name = std::move(v), named = true;
                        else if (iequal(n, "filename")) part.filename = std::move(v);
                    }))
                    return bad("a part's Content-Disposition parameters are malformed");
                if (!named) return bad("a part's Content-Disposition has no name");
                has_disposition = true;
            } else if (iequal(name, "Content-Type")) {
                part.content_type = std::string(value);
            }
        }
        if (!has_disposition) return bad("a part has no Content-Disposition header");

        // Data, up to the next boundary line.
        const size_t end = next_delimiter(at);
        if (end == std::string_view::npos)
            return bad("the closing boundary is missing (the body was cut short?)");
        part.data = body.substr(at, end - at);
        if (!part.filename && part.data.size() > limits.max_field_bytes)
            return bad("the field '" + part.name + "' exceeds " + std::to_string(limits.max_field_bytes) + " bytes");
        parts.push_back(std::move(part));
        at = end + delimiter.size();
    }
}

}  // namespace mm::services
