#include "sqlite_ledger_db.h"

namespace mm::services {

status sqlite_status(sqlite3* db, int rc, std::string_view what) {
    const int primary = rc & 0xff;
    const errc code = primary == SQLITE_CONSTRAINT ? errc::invalid_argument : errc::io_error;
    std::string msg(what);
    msg += ": ";
    msg += db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    return status(code, std::move(msg));
}

sql_query& sql_query::bind(int i, int64_t v) {
    MM_ASSERT(sqlite3_bind_int64(s_, i, v) == SQLITE_OK);
    return *this;
}

sql_query& sql_query::bind(int i, std::string_view v) {
    MM_ASSERT(sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT) == SQLITE_OK);
    return *this;
}

sql_query& sql_query::bind(int i, std::optional<int64_t> v) {
    MM_ASSERT((v ? sqlite3_bind_int64(s_, i, *v) : sqlite3_bind_null(s_, i)) == SQLITE_OK);
    return *this;
}

sql_query& sql_query::bind_blob(int i, std::string_view v) {
    MM_ASSERT(sqlite3_bind_blob(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT) == SQLITE_OK);
    return *this;
}

result<bool> sql_query::step() {
    const int rc = sqlite3_step(s_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return sqlite_status(sqlite3_db_handle(s_), rc, sqlite3_sql(s_));
}

status sql_query::run() {
    for (;;) {
        auto r = step();
        if (!r) return r.error();
        if (!*r) return ok_status();
    }
}

std::optional<int64_t> sql_query::opt_int_at(int c) const {
    if (is_null(c)) return std::nullopt;
    return int_at(c);
}

std::string sql_query::text_at(int c) const {
    const auto* p = static_cast<const char*>(sqlite3_column_blob(s_, c));
    const int n = sqlite3_column_bytes(s_, c);
    return p ? std::string(p, static_cast<size_t>(n)) : std::string();
}

result<sql_db> sql_db::open(const std::filesystem::path& path, bool read_only, const std::string& vfs) {
    sqlite3* raw = nullptr;
    const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    const int rc = sqlite3_open_v2(path.c_str(), &raw, flags, vfs.empty() ? nullptr : vfs.c_str());
    sql_db db;
    db.db_.reset(raw);
    if (rc != SQLITE_OK) return sqlite_status(raw, rc, "opening " + path.string());
    sqlite3_extended_result_codes(raw, 1);
    // journal_mode=WAL is persistent in the file, but asking on every open is cheap and repairs a file
    // someone switched back. query_only keeps the read connection honest.
    MM_TRY(db.exec("PRAGMA busy_timeout = 5000;"
                   "PRAGMA journal_mode = WAL;"
                   "PRAGMA synchronous = FULL;"
                   "PRAGMA foreign_keys = ON;"));
    if (read_only) MM_TRY(db.exec("PRAGMA query_only = 1;"));
    return db;
}

status sql_db::exec(const char* sql) {
    char* err = nullptr;
    const int rc = sqlite3_exec(db_.get(), sql, nullptr, nullptr, &err);
    if (rc == SQLITE_OK) return ok_status();
    std::string msg = err ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    const errc code = (rc & 0xff) == SQLITE_CONSTRAINT ? errc::invalid_argument : errc::io_error;
    return status(code, msg);
}

status sql_db::run(const char* sql) {
    auto s = prepare(sql);
    if (!s) return s.error();
    return sql_query(*s).run();
}

result<sqlite3_stmt*> sql_db::prepare(const char* sql) {
    auto it = stmts_.find(sql);
    if (it != stmts_.end()) return it->second.get();
    sqlite3_stmt* s = nullptr;
    const int rc = sqlite3_prepare_v3(db_.get(), sql, -1, SQLITE_PREPARE_PERSISTENT, &s, nullptr);
    if (rc != SQLITE_OK) return sqlite_status(db_.get(), rc, std::string("preparing ") + sql);
    stmts_.emplace(sql, sqlite_stmt_ptr(s));
    return s;
}

}  // namespace mm::services
