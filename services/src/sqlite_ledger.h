// sqlite_ledger: the default ledger, one SQLite file (data_dir/ledger.sqlite3) in WAL mode.
//
// Writes go through one writer thread that owns the write connection (group commit): callers queue an
// operation and wait on its future; the writer applies everything queued in ONE transaction (each op
// inside its own savepoint, so one op's failure does not undo its neighbours), commits with one fsync
// (synchronous=FULL), then answers every caller. A call therefore returns only once its effect is on
// disk. Budget checks run on the writer against in-memory per-key and per-user totals for the current
// period, which makes reserve atomic without a lock around the database. Keys and users are mirrored in
// memory too, so authentication never touches the disk; reports read through a second connection.
//
// reserve places its hold in memory (the budget check needs nothing else) and queues the reserved row
// behind it; commit and void follow that row through the queue. When the commit or void is queued before
// the writer reaches the reserved row (a quick request), the row is skipped and the settle inserts the
// whole row: one write per charge instead of two. A hold whose row was lost with a failed batch stays in
// memory, and its commit or void writes the whole row too. A skipped charge was never on disk as reserved,
// so a crash before its settle commits leaves nothing of it, as it must: its answer had not gone out.
//
// A charge belongs to the period that holds its created_ms (reserve time), so a reservation opened at
// 23:59 and committed at 00:01 is billed to the day it started. Reservations still open when the file
// is opened are voided with outcome "crashed" (and counted in a warning); Idempotency-Key records still
// "running" are deleted, since their requests died with the process. A lock file beside the database
// keeps a second process from opening it (it would void the first one's live reservations).
//
// Thread safety: thread-safe. The alert sink runs on the writer thread after the transaction commits
// and before the committing callers are answered; it must be quick and must not call back into this
// ledger's writing operations (they would wait on the thread that is running the sink).
#pragma once

#include <condition_variable>
#include <deque>
#include <filesystem>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "clock.h"
#include "ledger.h"
#include "ledger_response_cache.h"
#include "sqlite_ledger_db.h"

namespace mm::services {

struct sqlite_ledger_params {
    std::filesystem::path path;  // usually data_dir / "ledger.sqlite3"; the parent is created if missing
    std::string server_secret;   // from server_secret_load_or_create; keys are hashed with it
    const clock* clk = nullptr;  // required; must outlive the ledger
    alert_sink on_alert{};       // optional
    size_t cache_max_entries = 1024;
    size_t max_batch = 4096;  // operations per transaction at most
    std::string vfs{};        // a registered SQLite VFS; empty: the default (tests inject storage faults)
};
status validate(const sqlite_ledger_params& p);

class sqlite_ledger final : public ledger {
    struct private_tag {};

public:
    static result<std::unique_ptr<sqlite_ledger>> open(sqlite_ledger_params p);
    sqlite_ledger(private_tag, sqlite_ledger_params p, int lock_fd, sql_db write_db, sql_db read_db,
                  int64_t voided_at_open);
    ~sqlite_ledger() override;  // finishes what is queued, then stops the writer; callers must be gone
    sqlite_ledger(const sqlite_ledger&) = delete;
    sqlite_ledger& operator=(const sqlite_ledger&) = delete;

    // How many open reservations this open() found and voided as "crashed".
    int64_t voided_at_open() const { return voided_at_open_; }

    result<key_created> key_create(const key_create_params& p) override;
    result<key_info> key_find_by_hash(std::string_view hash) const override;
    result<key_info> key_authenticate(std::string_view secret) const override;
    result<key_info> key_get(std::string_view key_id) const override;
    std::vector<key_info> key_list(std::optional<std::string_view> user = std::nullopt) const override;
    status key_revoke(std::string_view key_id) override;
    status key_set_limits(std::string_view key_id, const key_limits& limits) override;
    status user_set_budget(std::string_view user, std::optional<micros> budget, period p) override;
    result<user_info> user_get(std::string_view user) const override;

    status reserve(std::string_view request_id, std::string_view key_id, std::string_view endpoint,
                   micros price) override;
    std::optional<status> try_reserve(std::string_view request_id, std::string_view key_id, std::string_view endpoint,
                                      micros price) override;
    void commit_async(std::string_view request_id, charge_outcome outcome, std::optional<idem_store> idem,
                      done_fn done) override;
    void void_async(std::string_view request_id, charge_outcome outcome, done_fn done) override;
    status record_unbilled(std::string_view request_id, std::string_view key_id, std::string_view endpoint,
                           charge_outcome outcome) override;
    result<charge_info> charge_get(std::string_view request_id) const override;

    result<idem_begin_result> idem_begin(std::string_view key_id, std::string_view idem_key,
                                         std::string_view body_hash) override;
    status idem_finish(std::string_view key_id, std::string_view idem_key,
                       const stored_response& response) override;
    status idem_abandon(std::string_view key_id, std::string_view idem_key) override;
    result<int64_t> idem_purge_expired() override;

    std::optional<stored_response> cache_get(std::string_view cache_key) const override;
    void cache_put(std::string_view cache_key, stored_response response) override;

    result<me_info> me(std::string_view key_id) const override;
    result<user_report> user_report_get(std::string_view user) const override;
    result<std::vector<usage_row>> usage(const usage_query& q) const override;

private:
    struct string_hash {
        using is_transparent = void;
        size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
    };
    template <class V>
    using string_map = std::unordered_map<std::string, V, string_hash, std::equal_to<>>;

    struct key_entry {
        key_info info;
        std::string hash;
    };
    // A subject's (key's or user's) money in one period, as of the last applied operation.
    struct subject_totals {
        period p = period::none;
        period_range range;
        micros spent = 0;
        micros reserved = 0;
        int alerted_pct = 0;  // highest threshold already recorded for this period
    };
    struct open_charge {
        std::string key_id;
        std::string user;
        micros price = 0;
        int64_t created_ms = 0;
        std::string endpoint;
        bool settle_queued = false;  // its commit or void is queued behind its reserved row
        bool row_skipped = false;    // so the reserved row was not written; the settle inserts the whole row
    };

    // One queued write. apply runs on the writer inside the batch's transaction and says whether the op
    // succeeded (on failure its savepoint is rolled back); then exactly one of finish (committed) or
    // fail (the batch did not commit) answers the caller.
    class write_op {
    public:
        virtual ~write_op() = default;
        virtual bool apply() = 0;
        virtual void finish() = 0;
        virtual void fail(const status& s) = 0;
    };
    template <class R>
    class typed_op;

    // Queues fn for the writer; done gets its result once the batch's transaction has committed (or
    // failed), on the writer thread. fn runs later, so it owns what it uses.
    template <class R>
    void submit_async(std::function<R()> fn, std::function<void(R)> done);
    // Queues fn for the writer and waits until its transaction has committed (or failed).
    template <class R>
    R submit(std::function<R()> fn);

    void writer_loop();
    void run_batch(std::vector<std::unique_ptr<write_op>>& batch);
    status load_state();  // on the writer connection; replaces the in-memory mirror

    // Places the hold for reserve; state_mu_ held. Off the writer it decides only when the subjects'
    // totals are in memory (nullopt otherwise); on the writer it builds them first.
    std::optional<status> hold(const std::string& request_id, const std::string& key_id, const std::string& endpoint,
                               micros price, bool on_writer);
    // The totals of a subject in the current period when the mirror has them; state_mu_ held.
    subject_totals* totals_cached(alert::subject_kind kind, const std::string& subject, period p, int64_t now_ms);
    // reserve and try_reserve: with may_wait false, nullopt where deciding would wait.
    std::optional<status> reserve_step(std::string_view request_id, std::string_view key_id, std::string_view endpoint,
                                       micros price, bool may_wait);
    // Whether a charge row with this id is on disk, through the read connection; read_mu_ held.
    result<bool> charge_exists(std::string_view request_id) const;

    // Flags an open charge whose commit or void is about to be queued; takes state_mu_.
    void mark_settle_queued(std::string_view request_id);

    // Moves a charge from reserved to state, writing the whole row if its reserved row never landed
    // (unpersisted: the charge's row is not yet in a committed transaction). Writer thread, without
    // state_mu_: only the writer writes rows, and the network threads need that lock meanwhile.
    status settle_row(const std::string& request_id, const open_charge& c, bool unpersisted, charge_state state,
                      charge_outcome outcome, int64_t now);

    // An open charge as it stands, and whether its row is still unpersisted; takes state_mu_.
    std::pair<std::optional<open_charge>, bool> open_charge_copy(const std::string& request_id) const;

    // Writer-thread helpers; state_mu_ held.
    result<subject_totals*> totals_for(alert::subject_kind kind, const std::string& subject, period p,
                                       int64_t now_ms);
    status alerts_after_commit(const open_charge& c, micros price, int64_t now_ms);
    void totals_release(const open_charge& c, bool committed);

    // Reader helper: spent of a subject in range, through the read connection.
    result<micros> spent_in(alert::subject_kind kind, std::string_view subject, period_range r) const;
    // Committed charges of a key or user in [r.start_ms, r.end_ms), through either connection.
    static result<micros> committed_sum(sql_db& db, alert::subject_kind kind, std::string_view subject, period_range r);
    micros open_reserved_in(alert::subject_kind kind, std::string_view subject, period_range r) const;
    budget_view budget_view_of(alert::subject_kind kind, const std::string& subject, std::optional<micros> budget,
                               period p, int64_t now_ms, bool* need_spent) const;

    const sqlite_ledger_params params_;
    const int lock_fd_;
    const int64_t voided_at_open_;
    mutable ledger_response_cache cache_;

    sql_db wdb_;  // the writer thread's alone

    mutable std::mutex read_mu_;
    mutable sql_db rdb_;  // guarded by read_mu_

    mutable std::mutex state_mu_;  // the in-memory mirror; writer ops hold it around their SQL only where the
                                   // mirror and the rows must move together (unbilled rows, totals, alerts)
    string_map<key_entry> keys_;                 // guarded by state_mu_; by key id
    string_map<std::string> key_by_hash_;        // guarded by state_mu_; hash -> id, unrevoked keys only
    string_map<user_info> users_;                // guarded by state_mu_
    string_map<open_charge> open_;               // guarded by state_mu_; by request id
    string_map<open_charge> unpersisted_;        // guarded by state_mu_; holds whose last write is not on disk
    std::vector<std::string> batch_persisted_;   // guarded by state_mu_; ids this batch writes for good
    string_map<subject_totals> key_totals_;      // guarded by state_mu_
    string_map<subject_totals> user_totals_;     // guarded by state_mu_
    std::vector<alert> batch_alerts_;            // guarded by state_mu_; delivered after COMMIT
    int64_t last_idem_purge_ms_ = 0;             // writer thread only
    bool broken_ = false;                        // writer thread only: state could not be reloaded

    std::mutex queue_mu_;
    std::condition_variable queue_cv_;
    std::deque<std::unique_ptr<write_op>> queue_;  // guarded by queue_mu_
    bool stopping_ = false;                        // guarded by queue_mu_
    std::thread writer_;
};

template <class R>
class sqlite_ledger::typed_op final : public sqlite_ledger::write_op {
public:
    typed_op(std::function<R()> fn, std::function<void(R)> done) : fn_(std::move(fn)), done_(std::move(done)) {}
    bool apply() override {
        try {
            out_.emplace(fn_());
        } catch (const std::exception& e) {
            out_.emplace(status(errc::internal, std::string("ledger operation threw: ") + e.what()));
        }
        return succeeded(*out_);
    }
    void finish() override { done_(std::move(*out_)); }
    void fail(const status& s) override { done_(R(s)); }

private:
    static bool succeeded(const status& s) { return s.ok(); }
    template <class T>
    static bool succeeded(const result<T>& r) { return r.has_value(); }

    std::function<R()> fn_;
    std::function<void(R)> done_;
    std::optional<R> out_;
};

template <class R>
void sqlite_ledger::submit_async(std::function<R()> fn, std::function<void(R)> done) {
    auto op = std::make_unique<typed_op<R>>(std::move(fn), std::move(done));
    {
        std::unique_lock lock(queue_mu_);
        if (stopping_) {
            lock.unlock();
            op->fail(status(errc::internal, "ledger is closing"));
            return;
        }
        queue_.push_back(std::move(op));
    }
    queue_cv_.notify_one();
}

template <class R>
R sqlite_ledger::submit(std::function<R()> fn) {
    std::promise<R> promise;
    auto done = promise.get_future();
    submit_async<R>(std::move(fn), [&promise](R r) { promise.set_value(std::move(r)); });
    return done.get();
}

}  // namespace mm::services
