#include "common/status.h"

namespace mm {

const char* errc_name(errc c) {
    switch (c) {
        case errc::ok: return "ok";
        case errc::invalid_argument: return "invalid_argument";
        case errc::not_found: return "not_found";
        case errc::model_not_found: return "model_not_found";
        case errc::out_of_range: return "out_of_range";
        case errc::corrupt_file: return "corrupt_file";
        case errc::unsupported: return "unsupported";
        case errc::io_error: return "io_error";
        case errc::resource_exhausted: return "resource_exhausted";
        case errc::cancelled: return "cancelled";
        case errc::deadline_exceeded: return "deadline_exceeded";
        case errc::request_timeout: return "request_timeout";
        case errc::unauthenticated: return "unauthenticated";
        case errc::permission_denied: return "permission_denied";
        case errc::rate_limited: return "rate_limited";
        case errc::budget_exhausted: return "budget_exhausted";
        case errc::idempotency_running: return "idempotency_running";
        case errc::idempotency_mismatch: return "idempotency_mismatch";
        case errc::idempotency_unreplayable: return "idempotency_unreplayable";
        case errc::overloaded: return "overloaded";
        case errc::queue_full: return "queue_full";
        case errc::context_length_exceeded: return "context_length_exceeded";
        case errc::internal: return "internal";
    }
    return "unknown";
}

void assert_fail(const char* expr, const char* file, int line) {
    std::fprintf(stderr, "MM_ASSERT failed: %s at %s:%d\n", expr, file, line);
    std::fflush(stderr);
    std::abort();
}

}  // namespace mm
