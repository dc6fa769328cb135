#include "common/log.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <mutex>

namespace mm {
namespace {

struct logger_state {
    std::mutex mu;
    log_sink sink;
};

logger_state& state() {
    static logger_state s;  // the one process-wide sink, configured once by main()
    return s;
}

const char* level_name(log_level l) {
    switch (l) {
        case log_level::debug: return "debug";
        case log_level::info: return "info";
        case log_level::warn: return "warn";
        case log_level::error: return "error";
    }
    return "info";
}

}  // namespace

void json_escape_to(std::string& out, std::string_view s) {
    out += '"';
    for (unsigned char c : s) {
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                if (c < 0x20) {
                    char buf[8];
                    std::snprintf(buf, sizeof buf, "\\u%04x", c);
                    out += buf;
                } else {
                    out += static_cast<char>(c);
                }
        }
    }
    out += '"';
}

std::string log_format(log_level level, std::string_view event, std::initializer_list<log_field> fields,
                       double unix_secs) {
    std::string line;
    char ts[32];
    std::snprintf(ts, sizeof ts, "%.3f", unix_secs);
    line += "{\"ts\":";
    line += ts;
    line += ",\"level\":\"";
    line += level_name(level);
    line += "\",\"event\":";
    json_escape_to(line, event);
    for (const auto& f : fields) {
        line += ',';
        json_escape_to(line, f.key);
        line += ':';
        if (auto* s = std::get_if<std::string_view>(&f.value)) {
            json_escape_to(line, *s);
        } else if (auto* i = std::get_if<int64_t>(&f.value)) {
            line += std::to_string(*i);
        } else if (auto* d = std::get_if<double>(&f.value)) {
            if (std::isfinite(*d)) {
                char buf[32];
                std::snprintf(buf, sizeof buf, "%.6g", *d);
                line += buf;
            } else {
                line += "null";  // JSON has no inf / NaN
            }
        } else {
            line += std::get<bool>(f.value) ? "true" : "false";
        }
    }
    line += '}';
    return line;
}

void log_configure(log_sink sink) {
    std::lock_guard lock(state().mu);
    state().sink = sink;
}

void log_write(log_level level, std::string_view event, std::initializer_list<log_field> fields) {
    auto& s = state();
    const double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    std::lock_guard lock(s.mu);
    if (level < s.sink.min_level || !s.sink.out) return;
    std::string line = log_format(level, event, fields, now);
    line += '\n';
    std::fwrite(line.data(), 1, line.size(), s.sink.out);
    std::fflush(s.sink.out);
}

}  // namespace mm
