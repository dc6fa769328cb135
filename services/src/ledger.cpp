// The ledger's value types: names, parsing, period arithmetic.
#include "ledger.h"

#include <chrono>
#include <future>
#include <limits>

namespace mm::services {
namespace {

template <class E, size_t N>
result<E> parse_by_name(std::string_view s, const char* (&names)[N], const char* what) {
    for (size_t i = 0; i < N; ++i)
        if (s == names[i]) return static_cast<E>(i);
    return status(errc::invalid_argument, std::string("unknown ") + what + " '" + std::string(s) + "'");
}

const char* k_period_names[] = {"day", "month", "none"};
const char* k_state_names[] = {"reserved", "committed", "voided", "unbilled"};
const char* k_outcome_names[] = {"ok",        "failed",    "rejected_rate", "rejected_budget",
                                 "cancelled", "cache_hit", "replayed",      "crashed"};
const char* k_group_names[] = {"key", "endpoint", "day", "outcome"};

int64_t ms_of(std::chrono::sys_days d) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(d.time_since_epoch()).count();
}

}  // namespace

const char* period_name(period p) { return k_period_names[static_cast<int>(p)]; }
result<period> period_parse(std::string_view s) { return parse_by_name<period>(s, k_period_names, "period"); }
const char* charge_state_name(charge_state s) { return k_state_names[static_cast<int>(s)]; }
const char* charge_outcome_name(charge_outcome o) { return k_outcome_names[static_cast<int>(o)]; }
result<charge_outcome> charge_outcome_parse(std::string_view s) {
    return parse_by_name<charge_outcome>(s, k_outcome_names, "outcome");
}
result<usage_group> usage_group_parse(std::string_view s) {
    return parse_by_name<usage_group>(s, k_group_names, "group_by");
}
const char* alert_subject_name(alert::subject_kind k) { return k == alert::subject_kind::key ? "key" : "user"; }

period_range period_bounds(period p, int64_t t_ms) {
    using namespace std::chrono;
    if (p == period::none) return {0, std::numeric_limits<int64_t>::max()};
    // floor, not truncation: an instant before the epoch still belongs to the day that contains it
    const sys_days day = floor<days>(sys_time<milliseconds>(milliseconds(t_ms)));
    if (p == period::day) return {ms_of(day), ms_of(day + days(1))};
    const year_month_day ymd(day);
    const year_month first = ymd.year() / ymd.month();
    const sys_days start = sys_days(first / 1);
    const sys_days end = sys_days((first + months(1)) / 1);
    return {ms_of(start), ms_of(end)};
}

status validate(const key_limits& l) {
    if (l.budget && *l.budget < 0) return status(errc::invalid_argument, "budget must be >= 0");
    if (l.rpm < 0) return status(errc::invalid_argument, "rpm must be >= 0");
    if (l.max_concurrent < 0) return status(errc::invalid_argument, "max_concurrent must be >= 0");
    return ok_status();
}

// The waiting forms: done runs on a ledger thread, which only fulfils the promise.
status ledger::commit(std::string_view request_id, charge_outcome outcome) {
    std::promise<status> p;
    auto f = p.get_future();
    commit_async(request_id, outcome, std::nullopt, [&p](status s) { p.set_value(std::move(s)); });
    return f.get();
}

status ledger::void_(std::string_view request_id, charge_outcome outcome) {
    std::promise<status> p;
    auto f = p.get_future();
    void_async(request_id, outcome, [&p](status s) { p.set_value(std::move(s)); });
    return f.get();
}

}  // namespace mm::services
