// mm_stage_server: the real server, meter and ledger with the test-only stage at POST /v1/test/run, as a
// separate process that a test can kill -9. Built in tests/ only. Usage: mm_stage_server DATA_DIR ADMIN_KEY
// Prints "listening PORT" once serving.
#include <csignal>
#include <cstdio>

#include "account_routes.h"
#include "admin_key.h"
#include "clock.h"
#include "key_hash.h"
#include "meter.h"
#include "services/server.h"
#include "sqlite_ledger.h"
#include "test_stage.h"

using namespace mm::services;

int main(int argc, char** argv) {
    if (argc != 3) return 2;
    const std::filesystem::path dir = argv[1];
    auto secret = server_secret_load_or_create(dir);
    if (!secret) return 1;
    system_clock clk;
    auto book = sqlite_ledger::open({.path = dir / "ledger.sqlite3", .server_secret = *secret, .clk = &clk});
    if (!book) {
        std::fprintf(stderr, "%s\n", book.error().to_string().c_str());
        return 1;
    }
    server_config config;
    config.prices["chat.completions"] = 1000;
    meter m({.config = config, .book = **book, .time = clk, .server_secret = *secret,
             .admin_key_hash = key_hash(*secret, argv[2]), .n_workers = 8});
    mm::test::test_stage stage;
    auto table = server_routes();
    for (auto& r : account_routes(m)) table.push_back(std::move(r));
    table.push_back({boost::beast::http::verb::post, "/v1/test/run", nullptr, m.metered("chat.completions", stage.handler(), {}, meter::route_work::quick)});
    server_params p;
    p.host = "127.0.0.1";
    p.port = 0;
    p.max_connections = 1024;
    server srv(p, std::move(table));
    if (!srv.start()) return 1;
    std::printf("listening %u\n", srv.port());
    std::fflush(stdout);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, nullptr);
    int sig = 0;
    sigwait(&set, &sig);
    return 0;
}
