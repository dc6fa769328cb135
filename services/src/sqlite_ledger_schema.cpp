#include "sqlite_ledger_schema.h"

#include <iterator>
#include <string>

namespace mm::services {
namespace {

// Step i takes a file from version i to i + 1. Never edit a step that has shipped; add one.
constexpr const char* k_steps[] = {
    // 1: users, keys, one row per request's charge.
    R"sql(
    CREATE TABLE users (
        name        TEXT PRIMARY KEY,
        budget      INTEGER CHECK (budget IS NULL OR budget >= 0),
        period      TEXT NOT NULL CHECK (period IN ('day', 'month', 'none')),
        created_ms  INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE keys (
        id              TEXT PRIMARY KEY,
        user_name       TEXT NOT NULL REFERENCES users(name),
        prefix          TEXT NOT NULL,
        hash            TEXT NOT NULL UNIQUE,
        budget          INTEGER CHECK (budget IS NULL OR budget >= 0),
        period          TEXT NOT NULL CHECK (period IN ('day', 'month', 'none')),
        rpm             INTEGER NOT NULL DEFAULT 0,
        max_concurrent  INTEGER NOT NULL DEFAULT 0,
        created_ms      INTEGER NOT NULL,
        revoked_ms      INTEGER
    ) STRICT;
    CREATE INDEX keys_user ON keys(user_name);
    CREATE TABLE charges (
        id           INTEGER PRIMARY KEY,
        request_id   TEXT NOT NULL UNIQUE,
        key_id       TEXT NOT NULL REFERENCES keys(id),
        user_name    TEXT NOT NULL,
        endpoint     TEXT NOT NULL,
        price        INTEGER NOT NULL CHECK (price >= 0),
        state        TEXT NOT NULL CHECK (state IN ('reserved', 'committed', 'voided', 'unbilled')),
        outcome      TEXT,
        created_ms   INTEGER NOT NULL,
        finished_ms  INTEGER
    ) STRICT;
    CREATE INDEX charges_key_time ON charges(key_id, created_ms);
    CREATE INDEX charges_user_time ON charges(user_name, created_ms);
    CREATE INDEX charges_time ON charges(created_ms);
    CREATE INDEX charges_open ON charges(state) WHERE state = 'reserved';
    )sql",
    // 2: budget alerts (once per subject, period and threshold) and Idempotency-Key records.
    R"sql(
    CREATE TABLE alerts (
        id            INTEGER PRIMARY KEY,
        subject_kind  TEXT NOT NULL CHECK (subject_kind IN ('key', 'user')),
        subject       TEXT NOT NULL,
        period_start  INTEGER NOT NULL,
        threshold     INTEGER NOT NULL,
        spent         INTEGER NOT NULL,
        budget        INTEGER NOT NULL,
        created_ms    INTEGER NOT NULL,
        UNIQUE (subject_kind, subject, period_start, threshold)
    ) STRICT;
    CREATE TABLE idempotency (
        key_id        TEXT NOT NULL,
        idem_key      TEXT NOT NULL,
        body_hash     TEXT NOT NULL,
        state         TEXT NOT NULL CHECK (state IN ('running', 'done')),
        http_status   INTEGER,
        content_type  TEXT,
        body          BLOB,
        created_ms    INTEGER NOT NULL,
        PRIMARY KEY (key_id, idem_key)
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX idempotency_time ON idempotency(created_ms);
    )sql",
};

result<int> user_version(sql_db& db) {
    MM_SQL_QUERY(q, db, "PRAGMA user_version");
    auto row = q.step();
    if (!row) return row.error();
    return static_cast<int>(q.int_at(0));
}

status too_new(int have) {
    return status(errc::unsupported, "ledger schema version " + std::to_string(have) +
                                         " is newer than this build knows (" +
                                         std::to_string(ledger_schema_latest()) + "); run a newer mmserve");
}

}  // namespace

int ledger_schema_latest() { return static_cast<int>(std::size(k_steps)); }

status ledger_schema_migrate(sql_db& db, int target) {
    MM_ASSERT(target >= 0 && target <= ledger_schema_latest());
    auto before = user_version(db);
    if (!before) return before.error();
    if (*before > ledger_schema_latest()) return too_new(*before);
    if (*before >= target) return ok_status();

    MM_TRY(db.exec("BEGIN IMMEDIATE"));
    // Read again under the write lock: another process may have migrated while we waited for it.
    auto have = user_version(db);
    status s = !have ? have.error() : *have > ledger_schema_latest() ? too_new(*have) : ok_status();
    for (int v = have ? *have : target; s.ok() && v < target; ++v)
        s = db.exec(k_steps[v]).context("schema step " + std::to_string(v + 1));
    if (s.ok() && *have < target) s = db.exec(("PRAGMA user_version = " + std::to_string(target)).c_str());
    if (s.ok()) s = db.exec("COMMIT");
    if (!s.ok()) {
        if (db.in_transaction()) (void)db.exec("ROLLBACK");
        return s.context("migrating the ledger schema");
    }
    return ok_status();
}

status ledger_schema_create_at(const std::filesystem::path& path, int version, std::string_view seed_sql) {
    auto db = sql_db::open(path, /*read_only=*/false);
    if (!db) return db.error();
    MM_TRY(ledger_schema_migrate(*db, version));
    if (!seed_sql.empty()) MM_TRY(db->exec(std::string(seed_sql).c_str()));
    return ok_status();
}

}  // namespace mm::services
