// sqlite_ledger_db: a small RAII layer over the SQLite C API for the ledger: one connection, its prepared
// statements cached by their SQL text, and one-use query handles that reset the statement when done.
// Thread safety: one thread at a time per sql_db (the ledger gives the writer thread its own and guards
// the read connection with a mutex).
#pragma once

#include <sqlite3.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/status.h"

namespace mm::services {

struct sqlite_close {
    void operator()(sqlite3* db) const noexcept { sqlite3_close_v2(db); }
};
struct sqlite_finalize {
    void operator()(sqlite3_stmt* s) const noexcept { sqlite3_finalize(s); }
};
using sqlite_ptr = std::unique_ptr<sqlite3, sqlite_close>;
using sqlite_stmt_ptr = std::unique_ptr<sqlite3_stmt, sqlite_finalize>;

// The status for SQLite result code rc on db: constraint failures are the caller's (invalid_argument),
// anything else is the storage's (io_error).
status sqlite_status(sqlite3* db, int rc, std::string_view what);

// One use of a prepared statement: bind (1-based), step, read columns (0-based); resets on destruction.
class sql_query {
public:
    explicit sql_query(sqlite3_stmt* s) : s_(s) {}
    sql_query(const sql_query&) = delete;
    sql_query& operator=(const sql_query&) = delete;
    ~sql_query() {
        sqlite3_reset(s_);
        sqlite3_clear_bindings(s_);
    }

    sql_query& bind(int i, int64_t v);
    sql_query& bind(int i, std::string_view v);
    sql_query& bind(int i, const char* v) { return bind(i, std::string_view(v)); }
    sql_query& bind(int i, std::optional<int64_t> v);
    sql_query& bind_blob(int i, std::string_view v);

    result<bool> step();  // true: a row is ready; false: done
    status run();         // steps to the end, ignoring rows

    bool is_null(int c) const { return sqlite3_column_type(s_, c) == SQLITE_NULL; }
    int64_t int_at(int c) const { return sqlite3_column_int64(s_, c); }
    std::optional<int64_t> opt_int_at(int c) const;
    std::string text_at(int c) const;  // also reads blobs
    int changes() const { return sqlite3_changes(sqlite3_db_handle(s_)); }

private:
    sqlite3_stmt* s_;
};

class sql_db {
public:
    // Opens (creating if absent) with the ledger's settings: WAL, synchronous=FULL (a commit is on disk
    // when COMMIT returns), foreign keys, a busy timeout for the moments a checkpoint holds a lock.
    // vfs names a registered SQLite VFS (tests inject storage faults through one); empty: the default.
    static result<sql_db> open(const std::filesystem::path& path, bool read_only, const std::string& vfs = {});

    sqlite3* get() const { return db_.get(); }
    status exec(const char* sql);  // statements without results; several separated by ';' allowed
    status run(const char* sql);   // one statement without results, through the statement cache
    // The cached statement for sql (keyed by the pointer, so pass string literals).
    result<sqlite3_stmt*> prepare(const char* sql);
    bool in_transaction() const { return sqlite3_get_autocommit(db_.get()) == 0; }

private:
    sqlite_ptr db_;
    std::unordered_map<const char*, sqlite_stmt_ptr> stmts_;  // finalized before db_ closes (declared later)
};

// Declares `sql_query var` over db's cached statement for sql, or returns the prepare error from the
// enclosing function (which returns status or result<T>).
#define MM_SQL_QUERY(var, db, sql)                        \
    auto var##_stmt_ = (db).prepare(sql);                  \
    if (!var##_stmt_) return var##_stmt_.error();          \
    ::mm::services::sql_query var(*var##_stmt_)

}  // namespace mm::services
