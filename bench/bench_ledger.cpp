// The ledger's durable commit rate: commit() of reserved charges from 1, 8 and 64 concurrent callers
// through the group-committing writer, beside a reference measured in this run on the same disk: plain
// SQLite, same schema and settings (WAL, synchronous=FULL), one transaction (one fsync) per commit.
// Also the whole metered request (reserve + commit, each durable). Usage: bench_ledger [dir]; the dir
// must be on the disk being measured (default: the system temp dir).
#include <sqlite3.h>
#include <stdlib.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "bench_header.h"
#include "clock.h"
#include "sqlite_ledger.h"
#include "sqlite_ledger_schema.h"

using namespace mm;
using namespace mm::services;
namespace fs = std::filesystem;

namespace {

constexpr const char* k_secret = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

[[noreturn]] void die(const std::string& what) {
    std::fprintf(stderr, "bench_ledger: %s\n", what.c_str());
    std::exit(1);
}

// Runs fn(thread, i) for i in [0, per_thread) on n_threads threads; returns the wall seconds.
double run_threads(int n_threads, int per_thread, const std::function<void(int, int)>& fn) {
    std::vector<std::thread> threads;
    const auto t0 = std::chrono::steady_clock::now();
    for (int t = 0; t < n_threads; ++t)
        threads.emplace_back([&, t] {
            for (int i = 0; i < per_thread; ++i) fn(t, i);
        });
    for (auto& th : threads) th.join();
    return seconds_since(t0);
}

std::string rid(const char* prefix, int t, int i) {
    std::string s = prefix;
    s += std::to_string(t);
    s += '_';
    s += std::to_string(i);
    return s;
}

// Reference: n commits, each its own transaction, over the ledger's own schema.
double reference_commits_per_s(const fs::path& dir, int n) {
    const fs::path db = dir / "reference.sqlite3";
    std::string seed = "INSERT INTO users VALUES ('u', NULL, 'month', 0);"
                       "INSERT INTO keys (id, user_name, prefix, hash, budget, period, rpm, max_concurrent, "
                       "created_ms) VALUES ('key_ref', 'u', 'p', 'h', NULL, 'month', 0, 0, 0);"
                       "BEGIN;";
    for (int i = 0; i < n; ++i)
        seed += "INSERT INTO charges (request_id, key_id, user_name, endpoint, price, state, created_ms) VALUES ('" +
                rid("r", 0, i) + "', 'key_ref', 'u', 'chat.completions', 1, 'reserved', 0);";
    seed += "COMMIT;";
    if (auto s = ledger_schema_create_at(db, ledger_schema_latest(), seed); !s) die(s.to_string());

    sqlite3* h = nullptr;
    if (sqlite3_open(db.c_str(), &h) != SQLITE_OK) die("open reference");
    sqlite3_exec(h, "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;", nullptr, nullptr, nullptr);
    sqlite3_stmt *begin = nullptr, *update = nullptr, *commit = nullptr;
    sqlite3_prepare_v2(h, "BEGIN IMMEDIATE", -1, &begin, nullptr);
    sqlite3_prepare_v2(h,
                       "UPDATE charges SET state = 'committed', outcome = 'ok', finished_ms = ?2 "
                       "WHERE request_id = ?1 AND state = 'reserved'",
                       -1, &update, nullptr);
    sqlite3_prepare_v2(h, "COMMIT", -1, &commit, nullptr);
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < n; ++i) {
        const std::string id = rid("r", 0, i);
        sqlite3_step(begin);
        sqlite3_reset(begin);
        sqlite3_bind_text(update, 1, id.c_str(), -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(update, 2, i);
        if (sqlite3_step(update) != SQLITE_DONE || sqlite3_changes(h) != 1) die("reference update");
        sqlite3_reset(update);
        if (sqlite3_step(commit) != SQLITE_DONE) die("reference commit");
        sqlite3_reset(commit);
    }
    const double s = seconds_since(t0);
    sqlite3_finalize(begin);
    sqlite3_finalize(update);
    sqlite3_finalize(commit);
    sqlite3_close(h);
    return n / s;
}

struct ledger_figures {
    double commits_per_s;
    double requests_per_s;  // reserve + commit
};

ledger_figures ledger_run(const fs::path& dir, int n_threads, int per_thread) {
    system_clock clk;
    auto opened = sqlite_ledger::open({.path = dir / ("ledger" + std::to_string(n_threads) + ".sqlite3"),
                                       .server_secret = k_secret,
                                       .clk = &clk});
    if (!opened) die(opened.error().to_string());
    auto& l = *opened;
    auto key = l->key_create({.user = "u", .limits = {}});
    if (!key) die(key.error().to_string());
    auto must = [](const status& s) {
        if (!s) die(s.to_string());
    };
    // Reservations first, untimed, so the timed part is commits alone (what the reference does).
    run_threads(n_threads, per_thread, [&](int t, int i) { must(l->reserve(rid("c", t, i), key->id, "chat", 1)); });
    const double commit_s = run_threads(n_threads, per_thread, [&](int t, int i) { must(l->commit(rid("c", t, i))); });
    const double request_s = run_threads(n_threads, per_thread, [&](int t, int i) {
        const std::string id = rid("q", t, i);
        must(l->reserve(id, key->id, "chat", 1));
        must(l->commit(id));
    });
    const double n = static_cast<double>(n_threads) * per_thread;
    return {n / commit_s, n / request_s};
}

}  // namespace

int main(int argc, char** argv) {
    bench::print_header("bench_ledger");
    const fs::path base = argc > 1 ? fs::path(argv[1]) : fs::temp_directory_path();
    std::string t = (base / "mm_bench_ledger_XXXXXX").string();
    if (!::mkdtemp(t.data())) die("mkdtemp in " + base.string());
    const fs::path dir = t;
    std::printf("sqlite %s, files in %s (WAL, synchronous=FULL: every figure is fsync-bound)\n\n", sqlite3_libversion(),
                dir.c_str());

    const double ref = reference_commits_per_s(dir, 2000);
    std::printf("reference: one transaction + fsync per commit, one connection: %.0f commits/s\n\n", ref);
    constexpr double k_target = 5000;  // durable commits/s with group commit (the server issue's figure)
    std::printf("%-11s %16s %10s %22s %10s\n", "committers", "ledger commit/s", "vs ref", "reserve+commit req/s",
                "target");
    struct config { int n_threads, per_thread; };
    for (const config c : {config{1, 2000}, config{8, 1000}, config{64, 250}}) {
        const ledger_figures f = ledger_run(dir, c.n_threads, c.per_thread);
        std::printf("%-11d %16.0f %9.2fx %22.0f %10s\n", c.n_threads, f.commits_per_s, f.commits_per_s / ref,
                    f.requests_per_s, c.n_threads == 64 ? (f.commits_per_s >= k_target ? ">= 5000 ok" : ">= 5000 MISSED") : "");
    }
    fs::remove_all(dir);
    return 0;
}
