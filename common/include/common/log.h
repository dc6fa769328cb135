// One JSON object per line, with typed fields: log_info("model_loaded", {{"model", id}, {"secs", 1.5}}).
// Thread safety: thread-safe (one line is written with one fwrite under a lock).
#pragma once

#include <cstdint>
#include <cstdio>
#include <initializer_list>
#include <string>
#include <string_view>
#include <variant>

namespace mm {

enum class log_level { debug, info, warn, error };

struct log_field {
    std::string_view key;
    std::variant<std::string_view, int64_t, double, bool> value;
    log_field(std::string_view k, std::string_view v) : key(k), value(v) {}
    log_field(std::string_view k, const char* v) : key(k), value(std::string_view(v)) {}
    log_field(std::string_view k, const std::string& v) : key(k), value(std::string_view(v)) {}
    log_field(std::string_view k, int v) : key(k), value(int64_t{v}) {}
    log_field(std::string_view k, int64_t v) : key(k), value(v) {}
    log_field(std::string_view k, uint64_t v) : key(k), value(static_cast<int64_t>(v)) {}
    log_field(std::string_view k, double v) : key(k), value(v) {}
    log_field(std::string_view k, bool v) : key(k), value(v) {}
};

// Where lines go and from which level. Set once at start-up by main(); defaults to stderr, info.
struct log_sink {
    std::FILE* out = stderr;
    log_level min_level = log_level::info;
};
void log_configure(log_sink sink);

// Formats one line (no trailing newline); exposed for tests.
std::string log_format(log_level level, std::string_view event, std::initializer_list<log_field> fields,
                       double unix_secs);
void log_write(log_level level, std::string_view event, std::initializer_list<log_field> fields);

inline void log_debug(std::string_view ev, std::initializer_list<log_field> f = {}) { log_write(log_level::debug, ev, f); }
inline void log_info(std::string_view ev, std::initializer_list<log_field> f = {}) { log_write(log_level::info, ev, f); }
inline void log_warn(std::string_view ev, std::initializer_list<log_field> f = {}) { log_write(log_level::warn, ev, f); }
inline void log_error(std::string_view ev, std::initializer_list<log_field> f = {}) { log_write(log_level::error, ev, f); }

// JSON string escaping (quotes included), shared by the logger and anything else writing JSON by hand in common/.
void json_escape_to(std::string& out, std::string_view s);

}  // namespace mm
