// The server's request path on loopback: requests/s and p50 / p99 latency for GET /health and for an
// authenticated, metered no-op (auth, rate limit, in-memory budget hold, durable commit), measured in one run with the
// same client, and their difference: what the meter adds to a request.
// The load generator is in-process: keep-alive connections on one asynchronous client thread, 64 of them for
// throughput and queueing, one for the latency of a request alone. Closed loop (each connection sends again
// as soon as it has its answer), 64 connections saturate the 2 cores that server and generator share, so
// their p50 is mostly queueing for a core; paced rows (64 connections at a fixed offered rate both routes
// can carry, latency counted from each request's scheduled time) show what the meter adds to a request
// under load when the machine is not saturated.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <memory>
#include <vector>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "account_routes.h"
#include "bench_header.h"
#include "clock.h"
#include "key_hash.h"
#include "meter.h"
#include "services/server.h"
#include "sqlite_ledger.h"

using namespace mm;
using namespace mm::services;
namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace fs = std::filesystem;

namespace {

constexpr int k_connections = 64;
constexpr const char* k_admin = "bench-admin-key-0123456789";

struct load_result {
    double rps = 0, p50_ms = 0, p99_ms = 0;
    double cpu_us = 0;  // process CPU (user + system, every thread: server and client) per request
    int errors = 0;
};

double process_cpu_seconds() {
    rusage u{};
    ::getrusage(RUSAGE_SELF, &u);
    return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-6;
}

using clock_type = std::chrono::steady_clock;

// One keep-alive connection of the load generator: sends the request, reads the answer, records the
// latency, and sends again until it has sent `left`: at once (closed loop), or when paced at its next slot,
// `interval` after the last, counting latency from the slot so a late send shows as delay.
struct client_conn : std::enable_shared_from_this<client_conn> {
    client_conn(net::io_context& ioc, const std::string& raw, int left, std::vector<double>& lat, int& errors)
        : s(ioc), timer(ioc), raw(raw), left(left), lat(lat), errors(errors) {}

    void start(const net::ip::tcp::endpoint& ep) {
        s.async_connect(ep, [self = shared_from_this()](beast::error_code ec) {
            if (ec) return self->fail();
            self->send();
        });
    }
    void send() {
        if (left == 0) return;
        if (interval == clock_type::duration::zero()) return send_now(clock_type::now());
        const auto slot = next;
        next += interval;
        timer.expires_at(slot);
        timer.async_wait([self = shared_from_this(), slot](beast::error_code) { self->send_now(slot); });
    }
    void send_now(clock_type::time_point from) {
        --left;
        t0 = from;
        net::async_write(s, net::buffer(raw), [self = shared_from_this()](beast::error_code ec, size_t) {
            if (ec) return self->fail();
            self->res = {};
            http::async_read(self->s, self->buf, self->res, [self](beast::error_code ec, size_t) {
                if (ec) return self->fail();
                self->lat.push_back(
                    std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - self->t0).count());
                if (self->res.result_int() != 200) ++self->errors;
                self->send();
            });
        });
    }
    void fail() { errors += left + 1; }

    beast::tcp_stream s;
    net::steady_timer timer;
    clock_type::duration interval = clock_type::duration::zero();  // zero: closed loop
    clock_type::time_point next;
    const std::string& raw;
    int left;
    std::vector<double>& lat;
    int& errors;
    beast::flat_buffer buf;
    http::response<http::string_body> res;
    std::chrono::steady_clock::time_point t0;
};

// `connections` keep-alive connections, each sending `per_conn` requests back to back (one in flight per
// connection), all driven by ONE client thread with asynchronous sockets, as wrk does: the generator costs
// the 2 cores little, and both rows pay it alike.
// With `rate` > 0 the connections are paced to that many requests/s together, their slots staggered.
load_result run_load(uint16_t port, const std::string& raw, int connections, int per_conn, double rate = 0) {
    net::io_context ioc;
    std::vector<double> lat;
    lat.reserve(static_cast<size_t>(connections) * static_cast<size_t>(per_conn));
    load_result r;
    const net::ip::tcp::endpoint ep(net::ip::make_address("127.0.0.1"), port);
    const auto begin = clock_type::now() + std::chrono::milliseconds(20);  // after the connects
    for (int c = 0; c < connections; ++c) {
        auto conn = std::make_shared<client_conn>(ioc, raw, per_conn, lat, r.errors);
        if (rate > 0) {
            conn->interval = std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(connections / rate));
            conn->next = begin + conn->interval * c / connections;
        }
        conn->start(ep);
    }
    const double cpu0 = process_cpu_seconds();
    const auto t0 = std::chrono::steady_clock::now();
    ioc.run();
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double cpu = process_cpu_seconds() - cpu0;
    std::sort(lat.begin(), lat.end());
    if (lat.empty()) return r;
    r.rps = static_cast<double>(lat.size()) / secs;
    r.cpu_us = cpu * 1e6 / static_cast<double>(lat.size());
    r.p50_ms = lat[lat.size() / 2];
    r.p99_ms = lat[lat.size() * 99 / 100];
    return r;
}

}  // namespace

int main(int argc, char** argv) {
    bench::print_header("bench_http");
    const fs::path dir = fs::path(argc > 1 ? argv[1] : fs::temp_directory_path().string()) /
                         ("mm_bench_http_" + std::to_string(::getpid()));
    fs::create_directories(dir);
    auto secret = server_secret_load_or_create(dir);
    system_clock clk;
    auto book = sqlite_ledger::open({.path = dir / "ledger.sqlite3", .server_secret = *secret, .clk = &clk});
    if (!book) {
        std::fprintf(stderr, "bench_http: %s\n", book.error().to_string().c_str());
        return 1;
    }
    server_config config;
    config.prices["chat.completions"] = 1000;
    meter m({.config = config, .book = **book, .time = clk, .server_secret = *secret,
             .admin_key_hash = key_hash(*secret, k_admin)});
    auto key = (*book)->key_create({.user = "bench", .limits = {}});

    auto table = server_routes();
    // The metered no-op: everything the meter does, and a stage that answers at once. Admitted where it was
    // read (route_work::quick); the "hand-off" row runs it on the meter's workers, as routes whose handlers
    // parse and tokenize (chat, completions) are.
    auto answer_at_once = [](std::shared_ptr<const http_request>, std::shared_ptr<responder> out) {
        out->reply(route_reply{.body = "{}"});
    };
    table.push_back({http::verb::post, "/bench/noop", nullptr,
                     m.metered("chat.completions", answer_at_once, {}, meter::route_work::quick)});
    table.push_back({http::verb::post, "/bench/noop-heavy", nullptr, m.metered("chat.completions", answer_at_once)});
    server_params p;
    p.host = "127.0.0.1";
    p.port = 0;
    server srv(p, std::move(table));
    if (!srv.start()) return 1;

    const std::string health = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
    auto metered_request = [&](const char* path) {
        return std::string("POST ") + path + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + key->secret +
               "\r\nContent-Length: 2\r\n\r\n{}";
    };
    const std::string noop = metered_request("/bench/noop"), noop_heavy = metered_request("/bench/noop-heavy");
    run_load(srv.port(), health, k_connections, 20);  // warm-up: connections, caches, the key's budget totals
    run_load(srv.port(), noop, 1, 50);

    std::printf("\n%-34s %10s %10s %10s %12s %8s\n", "route", "req/s", "p50 ms", "p99 ms", "cpu us/req", "errors");
    auto row = [](const char* name, const load_result& r) {
        std::printf("%-34s %10.0f %10.3f %10.3f %12.1f %8d\n", name, r.rps, r.p50_ms, r.p99_ms, r.cpu_us, r.errors);
    };
    const load_result h1 = run_load(srv.port(), health, 1, 2000);
    const load_result n1 = run_load(srv.port(), noop, 1, 2000);
    row("1 conn   GET /health (reference)", h1);
    row("1 conn   POST metered no-op", n1);
    // 64 000 requests a row: shorter rows moved by a tenth of a millisecond from run to run on this VM.
    const load_result h = run_load(srv.port(), health, k_connections, 1000);
    const load_result n = run_load(srv.port(), noop, k_connections, 1000);
    row("64 conns GET /health (reference)", h);
    row("64 conns POST metered no-op", n);
    const load_result nh = run_load(srv.port(), noop_heavy, k_connections, 1000);
    row("64 conns metered, worker hand-off", nh);
    // Paced at a fraction of the metered route's closed-loop throughput measured just above.
    const double pace[] = {0.25 * n.rps, 0.5 * n.rps};
    load_result hp[2], np[2];
    for (int i = 0; i < 2; ++i) {
        const int per = static_cast<int>(pace[i] * 2.0 / k_connections) + 1;  // about two seconds each
        hp[i] = run_load(srv.port(), health, k_connections, per, pace[i]);
        np[i] = run_load(srv.port(), noop, k_connections, per, pace[i]);
        char name[64];
        std::snprintf(name, sizeof name, "64 conns paced %5.0f/s GET /health", pace[i]);
        row(name, hp[i]);
        std::snprintf(name, sizeof name, "64 conns paced %5.0f/s metered", pace[i]);
        row(name, np[i]);
    }
    std::printf("meter overhead, 1 connection:   p50 +%.3f ms\n", n1.p50_ms - h1.p50_ms);
    std::printf("meter overhead, %d connections closed loop: p50 +%.3f ms (target < 1 ms), throughput %.2fx of /health\n",
                k_connections, n.p50_ms - h.p50_ms, n.rps / h.rps);
    std::printf("meter overhead, %d connections closed loop, handler on a worker: p50 +%.3f ms\n", k_connections,
                nh.p50_ms - h.p50_ms);
    for (int i = 0; i < 2; ++i)
        std::printf("meter overhead, %d connections paced at %.0f req/s: p50 +%.3f ms, p99 +%.3f ms\n", k_connections,
                    pace[i], np[i].p50_ms - hp[i].p50_ms, np[i].p99_ms - hp[i].p99_ms);
    std::printf("(each metered request: HMAC key check, budget hold in memory, its charge row written and committed\n"
                " in an fsynced group commit before the answer goes out; the load generator shares the 2 cores)\n");
    srv.stop();
    book->reset();
    fs::remove_all(dir);
    return 0;
}
