// sqlite_ledger: opening (lock, migrate, crash recovery), the in-memory mirror, and the group-commit writer.
#include "sqlite_ledger.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/log.h"
#include "sqlite_ledger_schema.h"

namespace mm::services {
namespace {

struct fd_guard {
    int fd = -1;
    ~fd_guard() {
        if (fd >= 0) ::close(fd);
    }
    int release() { return std::exchange(fd, -1); }
};

// The file lock that keeps a second process (or a second open in this one) off the ledger. flock on a
// separate file: closing any descriptor of the database itself would drop SQLite's own POSIX locks.
result<int> lock_ledger_file(const std::filesystem::path& db_path) {
    const std::string lock_path = db_path.string() + ".lock";
    fd_guard f{::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600)};
    if (f.fd < 0) return status(errc::io_error, "opening " + lock_path + ": " + std::strerror(errno));
    if (::flock(f.fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK)
            return status(errc::io_error, db_path.string() + " is open in another process (or another ledger)");
        return status(errc::io_error, "locking " + lock_path + ": " + std::strerror(errno));
    }
    return f.release();
}

// Start-up recovery, in one transaction: void the reservations of requests that died with the last
// process, forget their idempotency records, drop expired ones. Returns how many charges were voided.
result<int64_t> recover_at_open(sql_db& db, int64_t now_ms) {
    MM_TRY(db.exec("BEGIN IMMEDIATE"));
    auto fail = [&](status s) {
        (void)db.exec("ROLLBACK");
        return s.context("ledger recovery at open");
    };
    int64_t voided = 0, abandoned = 0, expired = 0;
    {
        MM_SQL_QUERY(q, db,
                     "UPDATE charges SET state = 'voided', outcome = 'crashed', finished_ms = ?1 "
                     "WHERE state = 'reserved'");
        if (auto s = q.bind(1, now_ms).run(); !s) return fail(s);
        voided = q.changes();
    }
    {
        MM_SQL_QUERY(q, db, "DELETE FROM idempotency WHERE state = 'running'");
        if (auto s = q.run(); !s) return fail(s);
        abandoned = q.changes();
    }
    {
        MM_SQL_QUERY(q, db, "DELETE FROM idempotency WHERE created_ms <= ?1");
        if (auto s = q.bind(1, now_ms - k_idempotency_ttl_ms).run(); !s) return fail(s);
        expired = q.changes();
    }
    if (auto s = db.exec("COMMIT"); !s) return fail(s);
    if (voided > 0) log_warn("ledger_reservations_voided", {{"count", voided}, {"outcome", "crashed"}});
    if (abandoned > 0) log_warn("ledger_idempotency_abandoned", {{"count", abandoned}});
    if (expired > 0) log_info("ledger_idempotency_purged", {{"count", expired}});
    return voided;
}

}  // namespace

status validate(const sqlite_ledger_params& p) {
    if (p.path.empty()) return status(errc::invalid_argument, "ledger path is empty");
    if (p.server_secret.empty()) return status(errc::invalid_argument, "ledger needs the server secret");
    if (p.clk == nullptr) return status(errc::invalid_argument, "ledger needs a clock");
    if (p.max_batch == 0) return status(errc::invalid_argument, "max_batch must be >= 1");
    return ok_status();
}

result<std::unique_ptr<sqlite_ledger>> sqlite_ledger::open(sqlite_ledger_params p) {
    MM_TRY(validate(p));
    if (p.path.has_parent_path()) {
        std::error_code ec;
        std::filesystem::create_directories(p.path.parent_path(), ec);
        if (ec) return status(errc::io_error, "creating " + p.path.parent_path().string() + ": " + ec.message());
    }
    auto lock = lock_ledger_file(p.path);
    if (!lock) return lock.error();
    fd_guard lock_guard{*lock};

    auto wdb = sql_db::open(p.path, /*read_only=*/false, p.vfs);
    if (!wdb) return wdb.error();
    // Owner-only, like the server secret: the ledger is everyone's usage (SQLite gives its -wal and -shm
    // files the database file's mode).
    if (std::error_code ec; std::filesystem::exists(p.path, ec))
        std::filesystem::permissions(p.path, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write,
                                     std::filesystem::perm_options::replace, ec);
    MM_TRY(ledger_schema_migrate(*wdb, ledger_schema_latest()).context(p.path.string()));
    auto voided = recover_at_open(*wdb, p.clk->now_ms());
    if (!voided) return voided.error();
    auto rdb = sql_db::open(p.path, /*read_only=*/true, p.vfs);
    if (!rdb) return rdb.error();

    auto l = std::make_unique<sqlite_ledger>(private_tag{}, std::move(p), lock_guard.release(), std::move(*wdb),
                                             std::move(*rdb), *voided);
    {
        std::lock_guard state_lock(l->state_mu_);
        MM_TRY(l->load_state().context("loading the ledger"));
    }
    l->writer_ = std::thread([raw = l.get()] {
        pthread_setname_np(pthread_self(), "mm-ledger");  // names the thread in top, perf and gdb
        raw->writer_loop();
    });
    return l;
}

sqlite_ledger::sqlite_ledger(private_tag, sqlite_ledger_params p, int lock_fd, sql_db write_db, sql_db read_db,
                             int64_t voided_at_open)
    : params_(std::move(p)),
      lock_fd_(lock_fd),
      voided_at_open_(voided_at_open),
      cache_(params_.cache_max_entries),
      wdb_(std::move(write_db)),
      rdb_(std::move(read_db)) {}

sqlite_ledger::~sqlite_ledger() {
    {
        std::lock_guard lock(queue_mu_);
        stopping_ = true;
    }
    queue_cv_.notify_all();
    if (writer_.joinable()) writer_.join();
    // Connections close before the lock is let go, so the next opener finds the files at rest.
    rdb_ = sql_db();
    wdb_ = sql_db();
    ::close(lock_fd_);
}

status sqlite_ledger::load_state() {
    string_map<user_info> users;
    {
        MM_SQL_QUERY(q, wdb_, "SELECT name, budget, period FROM users");
        for (;;) {
            auto row = q.step();
            if (!row) return row.error();
            if (!*row) break;
            auto per = period_parse(q.text_at(2));
            if (!per) return per.error();
            users.emplace(q.text_at(0), user_info{q.text_at(0), q.opt_int_at(1), *per});
        }
    }
    string_map<key_entry> keys;
    string_map<std::string> by_hash;
    {
        MM_SQL_QUERY(q, wdb_,
                     "SELECT id, user_name, prefix, hash, budget, period, rpm, max_concurrent, created_ms, "
                     "revoked_ms FROM keys");
        for (;;) {
            auto row = q.step();
            if (!row) return row.error();
            if (!*row) break;
            auto per = period_parse(q.text_at(5));
            if (!per) return per.error();
            key_entry e;
            e.info = key_info{.id = q.text_at(0),
                              .user = q.text_at(1),
                              .prefix = q.text_at(2),
                              .limits = {.budget = q.opt_int_at(4),
                                         .budget_period = *per,
                                         .rpm = q.int_at(6),
                                         .max_concurrent = q.int_at(7)},
                              .created_ms = q.int_at(8),
                              .revoked_ms = q.opt_int_at(9)};
            e.hash = q.text_at(3);
            if (!e.info.revoked_ms) by_hash.emplace(e.hash, e.info.id);
            keys.emplace(e.info.id, std::move(e));
        }
    }
    string_map<open_charge> open;
    {
        MM_SQL_QUERY(q, wdb_,
                     "SELECT request_id, key_id, user_name, price, created_ms, endpoint FROM charges "
                     "WHERE state = 'reserved'");
        for (;;) {
            auto row = q.step();
            if (!row) return row.error();
            if (!*row) break;
            open.emplace(q.text_at(0), open_charge{q.text_at(1), q.text_at(2), q.int_at(3), q.int_at(4), q.text_at(5)});
        }
    }
    users_ = std::move(users);
    keys_ = std::move(keys);
    key_by_hash_ = std::move(by_hash);
    open_ = std::move(open);
    key_totals_.clear();  // recomputed from the table on next use
    user_totals_.clear();
    return ok_status();
}

void sqlite_ledger::writer_loop() {
    std::vector<std::unique_ptr<write_op>> batch;
    for (;;) {
        {
            std::unique_lock lock(queue_mu_);
            queue_cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
            if (queue_.empty()) return;  // stopping, and everything queued has been answered
            while (!queue_.empty() && batch.size() < params_.max_batch) {
                batch.push_back(std::move(queue_.front()));
                queue_.pop_front();
            }
        }
        run_batch(batch);
        batch.clear();
    }
}

void sqlite_ledger::run_batch(std::vector<std::unique_ptr<write_op>>& batch) {
    status s = broken_ ? status(errc::io_error, "ledger state could not be reloaded after a failed write; restart")
                       : wdb_.run("BEGIN IMMEDIATE");
    for (size_t i = 0; s.ok() && i < batch.size(); ++i) {
        if (s = wdb_.run("SAVEPOINT op"); !s) break;
        const bool ok = batch[i]->apply();
        if (!wdb_.in_transaction()) {  // SQLite rolled the whole transaction back (disk full, I/O error)
            s = status(errc::io_error, std::string("ledger transaction aborted: ") + sqlite3_errmsg(wdb_.get()));
            break;
        }
        s = ok ? wdb_.run("RELEASE op") : wdb_.exec("ROLLBACK TO op; RELEASE op");
    }
    if (s.ok()) s = wdb_.run("COMMIT");
    if (!s.ok()) {
        if (wdb_.in_transaction()) (void)wdb_.exec("ROLLBACK");
        log_error("ledger_write_failed", {{"error", s.to_string()}, {"ops", static_cast<int64_t>(batch.size())}});
        {
            // The mirror already holds this batch's effects; rebuild it from what is on disk, plus the holds
            // whose rows are not there yet (they are still open as far as their callers know).
            std::lock_guard lock(state_mu_);
            batch_alerts_.clear();
            batch_persisted_.clear();
            if (!broken_) {
                if (auto r = load_state(); !r) {
                    broken_ = true;
                    log_error("ledger_reload_failed", {{"error", r.to_string()}});
                }
                for (const auto& [id, c] : unpersisted_) open_.try_emplace(id, c);
            }
        }
        for (auto& op : batch) op->fail(s);
        return;
    }
    std::vector<alert> alerts;
    {
        std::lock_guard lock(state_mu_);
        alerts.swap(batch_alerts_);
        for (const std::string& id : batch_persisted_) unpersisted_.erase(id);
        batch_persisted_.clear();
    }
    for (const alert& a : alerts) {
        log_info("budget_alert", {{"subject_kind", alert_subject_name(a.kind)},
                                  {"subject", a.subject},
                                  {"threshold_pct", a.threshold_pct},
                                  {"spent", a.spent},
                                  {"budget", a.budget},
                                  {"period", period_name(a.budget_period)},
                                  {"period_start_ms", a.range.start_ms}});
        if (!params_.on_alert) continue;
        try {
            params_.on_alert(a);
        } catch (const std::exception& e) {  // a sink's bug must not take the writer (and every caller) down
            log_error("budget_alert_sink_threw", {{"error", e.what()}});
        }
    }
    for (auto& op : batch) op->finish();
}

}  // namespace mm::services
