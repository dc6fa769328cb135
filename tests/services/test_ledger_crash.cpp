// Crash recovery of the meter's ledger, two ways. kill -9: a child process commits from several threads
// and is killed mid-stream; every id it reported committed must be committed exactly once after reopen,
// and nothing may stay reserved. Power loss, simulated under SQLite: a VFS that forwards to the default
// one but remembers, per file, the bytes every unsynced write overwrote. cut() makes the disk deaf (later
// writes, syncs and deletes do nothing); restore() puts each file back as it stood at its last
// successful sync, the worst a disk that lost power may hold. A commit the ledger acknowledged before
// the cut must be there afterwards: this fails if a caller is answered before the fsync, or if
// synchronous is below FULL (kill -9 alone cannot see either: the OS keeps unsynced writes).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "clock.h"
#include "common/log.h"
#include "sqlite_ledger.h"

namespace mm::services {
namespace {

namespace fs = std::filesystem;

constexpr int64_t k_t0 = 1710504000000;  // 2024-03-15T12:00:00Z
constexpr const char* k_server_secret = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

struct temp_dir {
    fs::path path;
    temp_dir() {
        std::string t = (fs::temp_directory_path() / "mm_ledger_crash_XXXXXX").string();
        path = ::mkdtemp(t.data());
    }
    ~temp_dir() { fs::remove_all(path); }
};

// prefix + n; appending also avoids a g++ 12 -Wrestrict false positive on `"literal" + std::string`.
std::string numbered(std::string prefix, int n) {
    prefix += std::to_string(n);
    return prefix;
}

// ---- kill -9 --------------------------------------------------------------------------------------

constexpr int k_crash_open = 5;       // reservations the child leaves open on purpose
constexpr int k_crash_threads = 4;    // committing threads in the child
constexpr int k_crash_seen = 300;     // ids the parent reads before it kills the child
constexpr micros k_crash_price = 3;

// The child: opens the ledger, leaves k_crash_open reservations open, then commits forever from several
// threads, writing each request id to the pipe only after commit() has returned. Never returns.
[[noreturn]] void crash_child(const fs::path& db, const std::string& key_id, int out_fd) {
    manual_clock clk(k_t0);
    auto l = sqlite_ledger::open({.path = db, .server_secret = k_server_secret, .clk = &clk});
    if (!l) _exit(2);
    for (int i = 0; i < k_crash_open; ++i)
        if (!(*l)->reserve(numbered("open", i), key_id, "chat.completions", k_crash_price)) _exit(3);
    std::vector<std::thread> threads;
    for (int t = 0; t < k_crash_threads; ++t)
        threads.emplace_back([&, t] {
            for (int i = 0;; ++i) {
                const std::string id = numbered(numbered("c", t) + "_", i);
                if (!(*l)->reserve(id, key_id, "chat.completions", k_crash_price)) _exit(4);
                if (!(*l)->commit(id)) _exit(5);
                const std::string line = id + "\n";  // < PIPE_BUF: one atomic write
                if (::write(out_fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) _exit(6);
            }
        });
    for (auto& th : threads) th.join();
    _exit(7);
}

// Reads lines from fd into seen until it has `until` of them or the pipe closes; false past the deadline.
bool read_ids(int fd, std::string& buf, std::set<std::string>& seen, size_t until,
              std::chrono::steady_clock::time_point deadline) {
    char chunk[4096];
    while (seen.size() < until) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) return false;
        pollfd p{.fd = fd, .events = POLLIN, .revents = 0};
        if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
        const ssize_t n = ::read(fd, chunk, sizeof chunk);
        if (n <= 0) return true;  // EOF: the child is gone
        buf.append(chunk, static_cast<size_t>(n));
        for (size_t nl; (nl = buf.find('\n')) != std::string::npos; buf.erase(0, nl + 1)) seen.insert(buf.substr(0, nl));
    }
    return true;
}

TEST(ledger_crash, kill_9_mid_stream_loses_no_commit_doubles_none_and_voids_open_reservations) {
    temp_dir dir;
    manual_clock clk(k_t0);
    const sqlite_ledger_params params{.path = dir.path / "ledger.sqlite3", .server_secret = k_server_secret, .clk = &clk};
    std::string key_id;
    {
        auto l = sqlite_ledger::open(params);
        ASSERT_TRUE(l) << l.error().to_string();
        auto k = (*l)->key_create({.user = "crash", .limits = {}});
        ASSERT_TRUE(k);
        key_id = k->id;
    }
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    std::fflush(nullptr);
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        ::close(fds[0]);
        crash_child(params.path, key_id, fds[1]);
    }
    ::close(fds[1]);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    std::string buf;
    std::set<std::string> seen;
    const bool in_time = read_ids(fds[0], buf, seen, k_crash_seen, deadline);
    ::kill(pid, SIGKILL);
    int wstatus = 0;
    ASSERT_EQ(::waitpid(pid, &wstatus, 0), pid);
    ASSERT_TRUE(in_time) << "the child committed too slowly";
    ASSERT_TRUE(WIFSIGNALED(wstatus)) << "the child exited by itself with " << WEXITSTATUS(wstatus);
    ASSERT_GE(seen.size(), static_cast<size_t>(k_crash_seen)) << "the child died early";
    (void)read_ids(fds[0], buf, seen, SIZE_MAX, deadline);  // what it wrote before the kill landed
    ::close(fds[0]);

    std::FILE* log = std::tmpfile();
    ASSERT_NE(log, nullptr);
    log_configure({.out = log, .min_level = log_level::warn});
    auto opened = sqlite_ledger::open(params);
    log_configure({});
    ASSERT_TRUE(opened) << opened.error().to_string();
    auto& l = *opened;
    std::rewind(log);
    std::string log_text;
    for (int ch; (ch = std::fgetc(log)) != EOF;) log_text.push_back(static_cast<char>(ch));
    std::fclose(log);

    // Voided: the ones left open on purpose, plus at most one in flight per thread.
    EXPECT_GE(l->voided_at_open(), k_crash_open);
    EXPECT_LE(l->voided_at_open(), k_crash_open + k_crash_threads);
    EXPECT_NE(log_text.find("\"event\":\"ledger_reservations_voided\",\"count\":" +
                            std::to_string(l->voided_at_open())),
              std::string::npos)
        << log_text;
    for (int i = 0; i < k_crash_open; ++i) {
        auto c = l->charge_get(numbered("open", i));
        ASSERT_TRUE(c);
        EXPECT_EQ(c->state, charge_state::voided);
        EXPECT_EQ(c->outcome, charge_outcome::crashed);
    }
    for (const std::string& id : seen) {
        auto c = l->charge_get(id);
        ASSERT_TRUE(c) << id << " was reported committed and is missing";
        ASSERT_EQ(c->state, charge_state::committed) << id;
        ASSERT_EQ(c->price, k_crash_price) << id;
    }
    auto rows = l->usage({.group_by = usage_group::key});
    ASSERT_TRUE(rows);
    ASSERT_EQ(rows->size(), 1u);
    const usage_row& r = (*rows)[0];
    EXPECT_EQ(r.outcomes.count("pending"), 0u) << "no reservation may stay open";
    EXPECT_EQ(r.outcomes.at("crashed"), l->voided_at_open());
    // Committed = reported + at most one per thread that committed but was killed before writing its id.
    EXPECT_GE(r.billed_requests, static_cast<int64_t>(seen.size()));
    EXPECT_LE(r.billed_requests, static_cast<int64_t>(seen.size()) + k_crash_threads);
    EXPECT_EQ(r.charged, r.billed_requests * k_crash_price);
    auto me = l->me(key_id);
    ASSERT_TRUE(me);
    EXPECT_EQ(me->key_budget.spent, r.charged) << "reloaded totals match the table";
    EXPECT_EQ(me->key_budget.reserved, 0);
    EXPECT_TRUE(l->reserve("after", key_id, "chat.completions", 1)) << "and the ledger works on";
}


// ---- power loss ----------------------------------------------------------------------------------

// Registered under its name for its lifetime. Thread safety: thread-safe (SQLite calls it from the
// ledger's writer and reader threads).
class fault_vfs {
public:
    explicit fault_vfs(const char* name) {
        real_ = sqlite3_vfs_find(nullptr);
        vfs_.iVersion = 1;
        vfs_.szOsFile = static_cast<int>(sizeof(fault_file)) + real_->szOsFile;
        vfs_.mxPathname = real_->mxPathname;
        vfs_.zName = name;
        vfs_.pAppData = this;
        vfs_.xOpen = &x_open;
        vfs_.xDelete = &x_delete;
        vfs_.xAccess = [](sqlite3_vfs* v, const char* p, int f, int* out) { return of(v)->real_->xAccess(of(v)->real_, p, f, out); };
        vfs_.xFullPathname = [](sqlite3_vfs* v, const char* p, int n, char* out) {
            return of(v)->real_->xFullPathname(of(v)->real_, p, n, out);
        };
        vfs_.xDlOpen = [](sqlite3_vfs* v, const char* p) { return of(v)->real_->xDlOpen(of(v)->real_, p); };
        vfs_.xDlError = [](sqlite3_vfs* v, int n, char* out) { of(v)->real_->xDlError(of(v)->real_, n, out); };
        vfs_.xDlSym = [](sqlite3_vfs* v, void* h, const char* s) { return of(v)->real_->xDlSym(of(v)->real_, h, s); };
        vfs_.xDlClose = [](sqlite3_vfs* v, void* h) { of(v)->real_->xDlClose(of(v)->real_, h); };
        vfs_.xRandomness = [](sqlite3_vfs* v, int n, char* out) { return of(v)->real_->xRandomness(of(v)->real_, n, out); };
        vfs_.xSleep = [](sqlite3_vfs* v, int us) { return of(v)->real_->xSleep(of(v)->real_, us); };
        vfs_.xCurrentTime = [](sqlite3_vfs* v, double* t) { return of(v)->real_->xCurrentTime(of(v)->real_, t); };
        vfs_.xGetLastError = [](sqlite3_vfs* v, int n, char* out) { return of(v)->real_->xGetLastError(of(v)->real_, n, out); };
        EXPECT_EQ(sqlite3_vfs_register(&vfs_, /*makeDflt=*/0), SQLITE_OK);
    }
    ~fault_vfs() { sqlite3_vfs_unregister(&vfs_); }

    void cut() {
        std::lock_guard lock(mu_);
        cut_ = true;
    }

    // While on, every fsync fails with an I/O error (and writes still land, as on a failing disk).
    void fail_syncs(bool on) {
        std::lock_guard lock(mu_);
        fail_syncs_ = on;
    }

    // Rewinds every tracked file to its last sync and drops the shared-memory index (rebuilt from the WAL
    // on open). Returns how many bytes were lost: unsynced overwrites undone plus unsynced growth cut off.
    int64_t restore(const fs::path& db) {
        std::lock_guard lock(mu_);
        int64_t lost = 0;
        for (auto& [path, j] : files_) {
            const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
            if (fd < 0) continue;
            for (auto it = j.undos.rbegin(); it != j.undos.rend(); ++it) {
                EXPECT_EQ(::pwrite(fd, it->old.data(), it->old.size(), it->offset), static_cast<ssize_t>(it->old.size()));
                lost += static_cast<int64_t>(it->old.size());
            }
            lost += std::max<int64_t>(0, ::lseek(fd, 0, SEEK_END) - j.synced_size);
            EXPECT_EQ(::ftruncate(fd, j.synced_size), 0);
            ::close(fd);
            j.undos.clear();
        }
        fs::remove(db.string() + "-shm");
        cut_ = false;
        return lost;
    }

private:
    struct undo {
        int64_t offset;
        std::string old;
    };
    struct journal {
        int64_t synced_size = 0;
        std::vector<undo> undos;  // unsynced writes, oldest first
    };
    struct fault_file {
        sqlite3_file base;  // first, as SQLite requires
        fault_vfs* owner;
        journal* j;  // null for files not tracked (temp files)
        sqlite3_file* real() { return reinterpret_cast<sqlite3_file*>(this + 1); }
    };

    static fault_vfs* of(sqlite3_vfs* v) { return static_cast<fault_vfs*>(v->pAppData); }
    static fault_file* of(sqlite3_file* f) { return reinterpret_cast<fault_file*>(f); }

    // Saves [off, off + n) as it is now, if the file reaches that far. mu_ held.
    static void save(fault_file* f, int64_t off, int64_t n) {
        sqlite3_int64 size = 0;
        f->real()->pMethods->xFileSize(f->real(), &size);
        if (!f->j || off >= size) return;
        const int64_t len = std::min<int64_t>(n, size - off);
        std::string old(static_cast<size_t>(len), '\0');
        f->real()->pMethods->xRead(f->real(), old.data(), static_cast<int>(len), off);
        f->j->undos.push_back({off, std::move(old)});
    }

    static int x_open(sqlite3_vfs* v, sqlite3_filename name, sqlite3_file* file, int flags, int* out_flags) {
        fault_vfs* self = of(v);
        fault_file* f = of(file);
        f->owner = self;
        f->j = nullptr;
        const int rc = self->real_->xOpen(self->real_, name, f->real(), flags, out_flags);
        if (rc != SQLITE_OK) {
            f->base.pMethods = nullptr;
            return rc;
        }
        f->base.pMethods = &k_io;
        if (name && (flags & (SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_WAL | SQLITE_OPEN_MAIN_JOURNAL))) {
            std::lock_guard lock(self->mu_);
            auto [it, fresh] = self->files_.try_emplace(name);
            if (fresh) {  // what is on disk when first seen counts as synced
                sqlite3_int64 size = 0;
                f->real()->pMethods->xFileSize(f->real(), &size);
                it->second.synced_size = size;
            }
            f->j = &it->second;
        }
        return SQLITE_OK;
    }

    static int x_delete(sqlite3_vfs* v, const char* name, int sync_dir) {
        fault_vfs* self = of(v);
        std::lock_guard lock(self->mu_);
        if (self->cut_) return SQLITE_OK;
        self->files_.erase(name);
        return self->real_->xDelete(self->real_, name, sync_dir);
    }

    static const sqlite3_io_methods k_io;

    std::mutex mu_;
    bool cut_ = false;                     // guarded by mu_
    bool fail_syncs_ = false;              // guarded by mu_
    std::map<std::string, journal> files_;  // guarded by mu_; by path
    sqlite3_vfs* real_ = nullptr;
    sqlite3_vfs vfs_{};
};

#define MM_FWD(f) (of(f)->real()->pMethods)
const sqlite3_io_methods fault_vfs::k_io = {
    3,
    [](sqlite3_file* f) { return MM_FWD(f)->xClose(of(f)->real()); },
    [](sqlite3_file* f, void* buf, int n, sqlite3_int64 off) { return MM_FWD(f)->xRead(of(f)->real(), buf, n, off); },
    [](sqlite3_file* f, const void* buf, int n, sqlite3_int64 off) {
        std::lock_guard lock(of(f)->owner->mu_);
        if (of(f)->owner->cut_) return SQLITE_OK;  // the deaf disk says yes and keeps nothing
        save(of(f), off, n);
        return MM_FWD(f)->xWrite(of(f)->real(), buf, n, off);
    },
    [](sqlite3_file* f, sqlite3_int64 size) {
        std::lock_guard lock(of(f)->owner->mu_);
        if (of(f)->owner->cut_) return SQLITE_OK;
        save(of(f), size, INT64_MAX / 2);
        return MM_FWD(f)->xTruncate(of(f)->real(), size);
    },
    [](sqlite3_file* f, int flags) {
        std::lock_guard lock(of(f)->owner->mu_);
        if (of(f)->owner->cut_) return SQLITE_OK;
        if (of(f)->owner->fail_syncs_) return SQLITE_IOERR_FSYNC;
        const int rc = MM_FWD(f)->xSync(of(f)->real(), flags);
        if (rc == SQLITE_OK && of(f)->j) {
            sqlite3_int64 size = 0;
            MM_FWD(f)->xFileSize(of(f)->real(), &size);
            of(f)->j->synced_size = size;
            of(f)->j->undos.clear();
        }
        return rc;
    },
    [](sqlite3_file* f, sqlite3_int64* size) { return MM_FWD(f)->xFileSize(of(f)->real(), size); },
    [](sqlite3_file* f, int lock) { return MM_FWD(f)->xLock(of(f)->real(), lock); },
    [](sqlite3_file* f, int lock) { return MM_FWD(f)->xUnlock(of(f)->real(), lock); },
    [](sqlite3_file* f, int* out) { return MM_FWD(f)->xCheckReservedLock(of(f)->real(), out); },
    [](sqlite3_file* f, int op, void* arg) { return MM_FWD(f)->xFileControl(of(f)->real(), op, arg); },
    [](sqlite3_file* f) { return MM_FWD(f)->xSectorSize(of(f)->real()); },
    [](sqlite3_file* f) { return MM_FWD(f)->xDeviceCharacteristics(of(f)->real()); },
    [](sqlite3_file* f, int pg, int pgsz, int extend, void volatile** pp) {
        return MM_FWD(f)->xShmMap(of(f)->real(), pg, pgsz, extend, pp);
    },
    [](sqlite3_file* f, int off, int n, int flags) { return MM_FWD(f)->xShmLock(of(f)->real(), off, n, flags); },
    [](sqlite3_file* f) { MM_FWD(f)->xShmBarrier(of(f)->real()); },
    [](sqlite3_file* f, int del) { return MM_FWD(f)->xShmUnmap(of(f)->real(), del); },
    [](sqlite3_file* f, sqlite3_int64, int, void** pp) {
        *pp = nullptr;  // no memory-mapped reads: every byte goes through xRead, which sees what xWrite kept
        return SQLITE_OK;
    },
    [](sqlite3_file*, sqlite3_int64, void*) { return SQLITE_OK; },
};
#undef MM_FWD

TEST(ledger_crash, acknowledged_commits_survive_a_power_cut) {
    struct cut_case {
        const char* name;
        int n_threads;
        int cut_after;  // acknowledged commits before the power goes
    };
    const cut_case cases[] = {
        {"one committer", 1, 40},
        {"four committers", 4, 157},
        {"sixteen committers", 16, 401},
    };
    fault_vfs vfs("mm_fault");
    for (const auto& c : cases) {
        std::string t = (fs::temp_directory_path() / "mm_power_XXXXXX").string();
        ASSERT_NE(::mkdtemp(t.data()), nullptr);
        const fs::path dir = t, db = dir / "ledger.sqlite3";
        manual_clock clk(k_t0);
        const sqlite_ledger_params params{.path = db, .server_secret = k_server_secret, .clk = &clk, .vfs = "mm_fault"};

        auto opened = sqlite_ledger::open(params);
        ASSERT_TRUE(opened) << c.name << ": " << opened.error().to_string();
        auto l = std::move(*opened);
        auto key = l->key_create({.user = "u", .limits = {}});
        ASSERT_TRUE(key);
        ASSERT_TRUE(l->reserve("left_open", key->id, "chat.completions", 5));

        std::mutex ack_mu;
        bool power_cut = false;            // guarded by ack_mu
        std::vector<std::string> acked;    // guarded by ack_mu; answered before the cut
        std::vector<std::thread> threads;
        for (int th = 0; th < c.n_threads; ++th)
            threads.emplace_back([&, th] {
                for (int i = 0;; ++i) {
                    std::string id = "c";
                    id += std::to_string(th);
                    id += '_';
                    id += std::to_string(i);
                    const bool ok = l->reserve(id, key->id, "chat.completions", 3) && l->commit(id);
                    std::lock_guard lock(ack_mu);
                    if (power_cut) return;  // answers after the cut prove nothing
                    ASSERT_TRUE(ok) << c.name << ": " << id;
                    acked.push_back(id);
                    if (static_cast<int>(acked.size()) == c.cut_after) {
                        vfs.cut();
                        power_cut = true;
                        return;
                    }
                }
            });
        for (auto& th : threads) th.join();
        l.reset();  // the process goes down with the disk deaf: nothing it writes from here lands
        const int64_t lost = vfs.restore(db);

        auto reopened = sqlite_ledger::open({.path = db, .server_secret = k_server_secret, .clk = &clk});
        ASSERT_TRUE(reopened) << c.name << ": " << reopened.error().to_string();
        auto& r = *reopened;
        ASSERT_EQ(acked.size(), static_cast<size_t>(c.cut_after)) << c.name;
        for (const std::string& id : acked) {
            auto ch = r->charge_get(id);
            ASSERT_TRUE(ch) << c.name << ": " << id << " was acknowledged and is gone (" << lost
                            << " unsynced bytes lost)";
            EXPECT_EQ(ch->state, charge_state::committed) << c.name << ": " << id;
        }
        auto left = r->charge_get("left_open");
        ASSERT_TRUE(left) << c.name;
        EXPECT_EQ(left->outcome, charge_outcome::crashed) << c.name;
        auto me = r->me(key->id);
        ASSERT_TRUE(me);
        EXPECT_EQ(me->key_budget.reserved, 0) << c.name;
        EXPECT_GE(me->key_budget.spent, 3 * c.cut_after) << c.name;
        r.reset();
        fs::remove_all(dir);
    }
}

TEST(ledger_crash, a_failed_fsync_fails_its_whole_group_and_the_ledger_carries_on) {
    fault_vfs vfs("mm_fault_sync");
    temp_dir dir;
    manual_clock clk(k_t0);
    auto opened = sqlite_ledger::open(
        {.path = dir.path / "ledger.sqlite3", .server_secret = k_server_secret, .clk = &clk, .vfs = "mm_fault_sync"});
    ASSERT_TRUE(opened) << opened.error().to_string();
    auto& l = *opened;
    auto key = l->key_create({.user = "u", .limits = {.budget = 100}});
    ASSERT_TRUE(key);
    ASSERT_TRUE(l->reserve("r1", key->id, "chat.completions", 10));
    ASSERT_TRUE(l->reserve("r2", key->id, "chat.completions", 10));

    vfs.fail_syncs(true);
    const status failed = l->commit("r1");
    EXPECT_EQ(failed.code(), errc::io_error) << "a commit is not acknowledged unless its fsync succeeded";
    vfs.fail_syncs(false);

    // The in-memory totals were rebuilt from the file: r1 is still only reserved.
    auto me = l->me(key->id);
    ASSERT_TRUE(me);
    EXPECT_EQ(me->key_budget.spent, 0);
    EXPECT_EQ(me->key_budget.reserved, 20);
    ASSERT_TRUE(l->commit("r1")) << "the caller may retry once the disk is back";
    ASSERT_TRUE(l->commit("r2"));
    me = l->me(key->id);
    EXPECT_EQ(me->key_budget.spent, 20);
    EXPECT_EQ(me->key_budget.reserved, 0);
    EXPECT_EQ(l->charge_get("r1")->state, charge_state::committed);
}

}  // namespace
}  // namespace mm::services
