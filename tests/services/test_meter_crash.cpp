// kill -9 of the whole server while 200 metered requests are in flight, then the ledger's invariants:
// every request whose client got a complete answer has exactly one committed charge, and no reservation
// stays open after a restart. Loopback only; bounded in time (deadlines, no sleeps to wait for state).
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "clock.h"
#include "key_hash.h"
#include "meter.h"
#include "sqlite_ledger.h"
#include "test_client.h"

extern char** environ;

namespace mm::services {
namespace {

using json = nlohmann::json;
using mm::test::test_client;
namespace fs = std::filesystem;
namespace http = boost::beast::http;

constexpr const char* k_admin = "admin-key-for-the-crash-test-0";

struct child {
    pid_t pid = -1;
    int out = -1;
    uint16_t port = 0;

    explicit child(const fs::path& dir) {
        int fds[2];
        if (::pipe(fds) != 0) return;
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
        posix_spawn_file_actions_addclose(&fa, fds[0]);
        const std::string bin = std::string(MM_BINARY_DIR) + "/tests/mm_stage_server";
        const std::string d = dir.string();
        char* argv[] = {const_cast<char*>(bin.c_str()), const_cast<char*>(d.c_str()), const_cast<char*>(k_admin), nullptr};
        if (posix_spawn(&pid, bin.c_str(), &fa, nullptr, argv, environ) != 0) pid = -1;
        posix_spawn_file_actions_destroy(&fa);
        ::close(fds[1]);
        out = fds[0];
        std::string line;
        pollfd pfd{out, POLLIN, 0};
        while (pid > 0 && line.find('\n') == std::string::npos && ::poll(&pfd, 1, 20'000) > 0) {
            char c;
            if (::read(out, &c, 1) != 1) break;
            line += c;
        }
        if (line.rfind("listening ", 0) == 0) port = static_cast<uint16_t>(std::stoi(line.substr(10)));
    }
    void kill9() {
        if (pid > 0) {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, nullptr, 0);
            pid = -1;
        }
    }
    ~child() {
        if (pid > 0) {
            ::kill(pid, SIGTERM);
            ::waitpid(pid, nullptr, 0);
        }
        if (out >= 0) ::close(out);
    }
};

std::optional<http::response<http::string_body>> post(uint16_t port, const std::string& target, const std::string& key,
                                                      const std::string& body) {
    test_client c(port);
    return c.request("POST " + target + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + key +
                     "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
}

TEST(meter_crash, kill_9_with_200_requests_in_flight_loses_and_doubles_nothing) {
    const fs::path dir = fs::temp_directory_path() / ("mm_crash_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    std::string key;
    std::mutex mu;
    std::vector<std::string> completed;  // request ids whose client got the whole 200 answer; guarded by mu
    {
        child server(dir);
        ASSERT_GT(server.port, 0) << "mm_stage_server did not start";
        auto made = post(server.port, "/v1/admin/keys", k_admin, R"({"user": "crash"})");
        ASSERT_TRUE(made);
        key = json::parse(made->body())["key"];

        std::atomic<int> done{0};
        std::vector<std::thread> clients;
        for (int i = 0; i < 200; ++i)
            clients.emplace_back([&, i] {
                const std::string body = R"({"action": "work", "ms": )" + std::to_string(5 + (i * 7) % 60) + "}";
                auto res = post(server.port, "/v1/test/run", key, body);
                if (res && res->result_int() == 200) {
                    std::lock_guard lock(mu);
                    completed.push_back(std::string(res->at("x-request-id")));
                }
                ++done;
            });
        // Kill while requests are still running: once a quarter have their answers.
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
        while (std::chrono::steady_clock::now() < deadline) {
            std::lock_guard lock(mu);
            if (completed.size() >= 50) break;
        }
        server.kill9();
        for (auto& t : clients) t.join();
        EXPECT_LT(done.load() - static_cast<int>(completed.size()), 200) << "bookkeeping";
    }
    ASSERT_GE(completed.size(), 50u);
    ASSERT_LT(completed.size(), 200u) << "the kill came after every request had finished: nothing was tested";

    // Reopen the ledger as the restarted server would.
    auto secret = server_secret_load_or_create(dir);
    ASSERT_TRUE(secret);
    system_clock clk;
    auto book = sqlite_ledger::open({.path = dir / "ledger.sqlite3", .server_secret = *secret, .clk = &clk});
    ASSERT_TRUE(book) << book.error().to_string();
    for (const auto& id : completed) {
        auto c = (*book)->charge_get(id);
        ASSERT_TRUE(c) << id;
        EXPECT_EQ(c->state, charge_state::committed) << id << ": the client got its answer, so it must be billed";
        EXPECT_EQ(c->price, 1000) << id;
    }
    auto usage = (*book)->usage({.group_by = usage_group::outcome});
    ASSERT_TRUE(usage);
    int64_t committed = 0;
    for (const auto& row : *usage) {
        EXPECT_EQ(row.outcomes.count("pending"), 0u) << "a reservation stayed open: " << row.group;
        committed += row.billed_requests;
    }
    EXPECT_GE(committed, static_cast<int64_t>(completed.size()));
    EXPECT_LE(committed, 200);  // each request id is charged at most once (UNIQUE), never more than were sent
    book->reset();
    fs::remove_all(dir);
}

}  // namespace
}  // namespace mm::services
