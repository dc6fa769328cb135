// ledger: the meter's durable record (DESIGN.md "The meter"): API keys and users with their budgets,
// one charge per request (reserve, then commit or void), idempotency records, budget alerts, usage.
// Money is int64 micro-units throughout; never floating point. The default implementation is
// sqlite_ledger; the interface leaves room for a shared (PostgreSQL) one.
// Thread safety: implementations are thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "services/money.h"

namespace mm::services {


// The largest price reserve() accepts (a million units): far above any real price, and low enough that
// running totals of billions of requests stay inside int64.
inline constexpr micros k_price_max = 1'000'000'000'000;

// Budget periods, in UTC: a calendar day, a calendar month, or all time.
enum class period { day, month, none };
const char* period_name(period p);
result<period> period_parse(std::string_view s);

struct period_range {
    int64_t start_ms = 0;  // inclusive
    int64_t end_ms = 0;    // exclusive; INT64_MAX for period::none (which starts at the epoch)
};
period_range period_bounds(period p, int64_t t_ms);

// reserved: open; committed: billed at its price; voided: released, 0; unbilled: rejected before reserve, 0.
enum class charge_state { reserved, committed, voided, unbilled };
const char* charge_state_name(charge_state s);

// How a request ended. crashed: its reservation was still open when the ledger next opened (the process
// died between reserve and commit/void), so it was voided at start-up.
enum class charge_outcome { ok, failed, rejected_rate, rejected_budget, cancelled, cache_hit, replayed, crashed };
const char* charge_outcome_name(charge_outcome o);
result<charge_outcome> charge_outcome_parse(std::string_view s);

struct key_limits {
    std::optional<micros> budget{};  // none: unlimited
    period budget_period = period::month;
    int64_t rpm = 0;                // requests per minute; 0: unlimited
    int64_t max_concurrent = 0;     // requests in flight; 0: unlimited
};
status validate(const key_limits& l);

struct key_create_params {
    std::string user;  // created (without a budget) if unknown
    key_limits limits;
};

// Returned once by key_create: the secret is never stored and cannot be shown again.
struct key_created {
    std::string id;
    std::string secret;
    std::string prefix;
};

struct key_info {
    std::string id;
    std::string user;
    std::string prefix;
    key_limits limits;
    int64_t created_ms = 0;
    std::optional<int64_t> revoked_ms{};
};

struct user_info {
    std::string name;
    std::optional<micros> budget{};
    period budget_period = period::month;
};

struct charge_info {
    std::string request_id;
    std::string key_id;
    std::string user;
    std::string endpoint;
    micros price = 0;  // what was reserved; counts toward spent only once committed
    charge_state state = charge_state::reserved;
    std::optional<charge_outcome> outcome{};  // none while reserved
    int64_t created_ms = 0;                 // the charge belongs to the period holding this instant
    std::optional<int64_t> finished_ms{};
};

// One subject's (a key's or a user's) budget in its current period.
struct budget_view {
    std::optional<micros> budget{};
    period budget_period = period::month;
    period_range range{};
    micros spent = 0;
    micros reserved = 0;
    std::optional<micros> remaining{};  // budget - spent - reserved, at least 0; none without a budget
};

// A user as the admin sees it: the user-level budget in its current period (spent counts even without a
// budget) and the user's keys.
struct user_report {
    user_info user;
    budget_view budget;
    std::vector<key_info> keys;
};

struct me_info {
    key_info key;
    budget_view key_budget;
    std::optional<budget_view> user_budget{};  // present when the key's user has a budget
};

enum class usage_group { key, endpoint, day, outcome };
result<usage_group> usage_group_parse(std::string_view s);

struct usage_query {
    int64_t start_ms = 0;  // charges created in [start_ms, end_ms)
    int64_t end_ms = INT64_MAX;
    usage_group group_by = usage_group::day;
    std::optional<std::string> key_id{};
    std::optional<std::string> user{};
};

struct usage_row {
    std::string group;  // key id, endpoint, "YYYY-MM-DD" (UTC) or outcome name
    int64_t requests = 0;
    int64_t billed_requests = 0;  // committed charges
    micros charged = 0;
    std::map<std::string, int64_t> outcomes;  // outcome name -> count; open reservations count as "pending"
};

// A response kept for idempotent replay or the response cache. http_status 0 in an idempotency record:
// the request was answered and billed, its answer not kept (over the meter's size limit).
struct stored_response {
    int http_status = 200;
    std::string content_type;
    std::string body;
};

// An Idempotency-Key record finished with the answer it will replay.
struct idem_store {
    std::string key_id;
    std::string idem_key;
    stored_response response;
};

// Completion of an asynchronous ledger write.
using done_fn = std::function<void(status)>;

enum class idem_verdict {
    run,        // first time: the caller runs the request, then idem_finish or idem_abandon
    replay,     // done before with the same body: answer with the stored response, bill nothing
    in_flight,  // the first attempt is still running: 409
    mismatch,   // the key was used with another body: 422
    not_kept,   // done and billed, but the answer was too large to keep: 409, never run (or billed) again
};
struct idem_begin_result {
    idem_verdict verdict = idem_verdict::run;
    stored_response response{};  // set for replay
};
inline constexpr int64_t k_idempotency_ttl_ms = 24 * 3600 * 1000;

// A budget threshold crossed, recorded once per subject, period and threshold.
struct alert {
    enum class subject_kind { key, user };
    subject_kind kind = subject_kind::key;
    std::string subject;  // key id or user name
    std::string user;     // the key's user (== subject for a user alert)
    int threshold_pct = 0;  // 50, 80 or 100
    micros spent = 0;
    micros budget = 0;
    period budget_period = period::month;
    period_range range;
    int64_t created_ms = 0;
};
const char* alert_subject_name(alert::subject_kind k);
using alert_sink = std::function<void(const alert&)>;
inline constexpr int k_alert_thresholds_pct[] = {50, 80, 100};

class ledger {
public:
    virtual ~ledger() = default;

    // Keys and users. A revoked key no longer authenticates; key ids are kept for usage.
    virtual result<key_created> key_create(const key_create_params& p) = 0;
    virtual result<key_info> key_find_by_hash(std::string_view hash) const = 0;  // unauthenticated if none
    virtual result<key_info> key_authenticate(std::string_view secret) const = 0;
    virtual result<key_info> key_get(std::string_view key_id) const = 0;
    virtual std::vector<key_info> key_list(std::optional<std::string_view> user = std::nullopt) const = 0;
    virtual status key_revoke(std::string_view key_id) = 0;
    virtual status key_set_limits(std::string_view key_id, const key_limits& limits) = 0;
    virtual status user_set_budget(std::string_view user, std::optional<micros> budget, period p) = 0;
    virtual result<user_info> user_get(std::string_view user) const = 0;

    // Charges. reserve checks spent + reserved + price <= budget for the key and for its user, each in its
    // current period, atomically; budget_exhausted names which one ran out. The hold is in force when
    // reserve returns; its row may reach the disk later (a crash before the commit voids it anyway, and a
    // reservation found open at start-up is voided as crashed). commit and void are acknowledged only once
    // durable. A request id is used once, ever (invalid_argument on reuse).
    virtual status reserve(std::string_view request_id, std::string_view key_id, std::string_view endpoint,
                           micros price) = 0;
    // reserve, when it can be decided at once: without waiting on the ledger's writer (the key's and user's
    // totals for this period are already known) or on a lock a report holds; only the short in-memory
    // critical sections are waited for. nullopt: nothing was done; call reserve from a thread that may wait.
    // For callers on a network thread.
    virtual std::optional<status> try_reserve(std::string_view request_id, std::string_view key_id,
                                              std::string_view endpoint, micros price) = 0;
    // done runs once the commit is on disk (or failed), on a ledger thread: it must be quick and must not
    // wait on this ledger. idem, when given, finishes that Idempotency-Key record in the same transaction,
    // so a retry after a crash finds both the charge and its answer, or neither.
    virtual void commit_async(std::string_view request_id, charge_outcome outcome, std::optional<idem_store> idem,
                              done_fn done) = 0;
    virtual void void_async(std::string_view request_id, charge_outcome outcome, done_fn done) = 0;
    status commit(std::string_view request_id, charge_outcome outcome = charge_outcome::ok);  // waits
    status void_(std::string_view request_id, charge_outcome outcome);                        // waits
    virtual status record_unbilled(std::string_view request_id, std::string_view key_id,
                                   std::string_view endpoint, charge_outcome outcome) = 0;
    virtual result<charge_info> charge_get(std::string_view request_id) const = 0;

    // Idempotency-Key records, per key, kept k_idempotency_ttl_ms from the first attempt.
    virtual result<idem_begin_result> idem_begin(std::string_view key_id, std::string_view idem_key,
                                                 std::string_view body_hash) = 0;
    virtual status idem_finish(std::string_view key_id, std::string_view idem_key,
                               const stored_response& response) = 0;
    virtual status idem_abandon(std::string_view key_id, std::string_view idem_key) = 0;
    virtual result<int64_t> idem_purge_expired() = 0;  // how many were removed

    // Response cache for deterministic requests.
    virtual std::optional<stored_response> cache_get(std::string_view cache_key) const = 0;
    virtual void cache_put(std::string_view cache_key, stored_response response) = 0;

    // Reports.
    virtual result<me_info> me(std::string_view key_id) const = 0;
    virtual result<user_report> user_report_get(std::string_view user) const = 0;  // not_found if unknown
    virtual result<std::vector<usage_row>> usage(const usage_query& q) const = 0;
};

}  // namespace mm::services
