// status and result<T>: errors as values across folder boundaries.
// Thread safety: plain values; copy freely.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <utility>

namespace mm {

enum class errc {
    ok = 0,
    invalid_argument,     // bad input from the caller (request field, file contents)
    not_found,            // a named thing (tensor, key, route) does not exist
    model_not_found,      // a request named a model that is not configured or not loaded
    out_of_range,         // a value outside its allowed range (context length, size)
    corrupt_file,         // a model file whose bytes break its format
    unsupported,          // well-formed but not something we implement (a dtype, a version)
    io_error,             // the OS failed us (open, mmap, read)
    resource_exhausted,   // a limit was hit (memory budget, body size)
    cancelled,            // the run's cancel token fired
    deadline_exceeded,    // a timeout
    request_timeout,      // the client took too long to send its request (HTTP 408)
    unauthenticated,
    permission_denied,
    rate_limited,
    budget_exhausted,
    idempotency_running,
    idempotency_mismatch,
    idempotency_unreplayable,  // done and billed, but its answer was too large to keep for replay
    overloaded,           // the server is at a capacity limit (connections)
    queue_full,           // a stage's bounded queue is full: retry shortly
    context_length_exceeded,  // a prompt (plus what it asks to generate) does not fit the model's context
    internal,             // a bug surfaced as a value (never bad input)
};

const char* errc_name(errc c);

class status {
public:
    status() = default;
    explicit status(errc code, std::string message = {}) : code_(code), message_(std::move(message)) {}
    // param names the request field at fault, for callers that answer a client (OpenAI's error "param").
    status(errc code, std::string message, std::string param)
        : code_(code), message_(std::move(message)), param_(std::move(param)) {}

    bool ok() const { return code_ == errc::ok; }
    explicit operator bool() const { return ok(); }
    errc code() const { return code_; }
    const std::string& message() const { return message_; }
    const std::string& param() const { return param_; }  // empty when no one field is at fault

    // Prefixes what was being done: "loading x.gguf: tensor 3: offset out of range".
    status context(const std::string& what) const& { return status(code_, what + ": " + message_, param_); }
    status context(const std::string& what) && {
        message_ = what + ": " + message_;
        return std::move(*this);
    }
    std::string to_string() const { return std::string(errc_name(code_)) + ": " + message_; }

private:
    errc code_ = errc::ok;
    std::string message_;
    std::string param_;
};

inline status ok_status() { return {}; }

// A value or the status that explains why there is none. Never holds an ok status without a value.
template <class T>
class [[nodiscard]] result {
public:
    result(T value) : value_(std::move(value)) {}
    result(status error) : error_(std::move(error)) {
        if (error_.ok()) error_ = status(errc::internal, "result built from an ok status");
    }

    bool has_value() const { return value_.has_value(); }
    explicit operator bool() const { return has_value(); }
    T& operator*() & { return *value_; }
    const T& operator*() const& { return *value_; }
    T&& operator*() && { return std::move(*value_); }
    T* operator->() { return &*value_; }
    const T* operator->() const { return &*value_; }
    T& value() & { return *value_; }
    T&& value() && { return std::move(*value_); }
    const status& error() const { return error_; }

private:
    std::optional<T> value_;
    status error_;
};

[[noreturn]] void assert_fail(const char* expr, const char* file, int line);

}  // namespace mm

// A broken invariant is a bug, never bad input: abort with where it happened.
#define MM_ASSERT(x) ((x) ? (void)0 : ::mm::assert_fail(#x, __FILE__, __LINE__))

// Returns the status of a failed expression from the enclosing function.
#define MM_TRY(expr)                        \
    do {                                    \
        ::mm::status mm_try_s_ = (expr);    \
        if (!mm_try_s_.ok()) return mm_try_s_; \
    } while (0)

// Declares or assigns lhs from a result, returning its status from the enclosing function on failure.
// Expands to several statements: use it as a statement of its own, never as an unbraced if/for body.
#define MM_ASSIGN(lhs, expr) MM_ASSIGN_IMPL_(MM_CONCAT_(mm_assign_r_, __LINE__), lhs, expr)
#define MM_ASSIGN_IMPL_(tmp, lhs, expr) \
    auto tmp = (expr);                  \
    if (!tmp) return tmp.error();       \
    lhs = std::move(*tmp)
#define MM_CONCAT_(a, b) MM_CONCAT2_(a, b)
#define MM_CONCAT2_(a, b) a##b
