// The HTTP server through real sockets on 127.0.0.1: routes, errors, limits, timeouts, the connection cap,
// stop(), and the mmserve binary itself. Every client operation is bounded by a deadline, so a server bug
// fails a test instead of hanging it; nothing sleeps to wait for state.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "services/server.h"
#include "test_client.h"

extern char** environ;

namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using json = nlohmann::json;
using namespace std::chrono_literals;
using mm::services::server;
using mm::services::server_params;
using mm::test::http_reply;
using mm::test::k_deadline;
using mm::test::test_client;

std::unique_ptr<server> start_server(server_params p = {}) {
    p.host = "127.0.0.1";
    p.port = 0;
    auto s = std::make_unique<server>(p);
    const mm::status st = s->start();
    EXPECT_TRUE(st.ok()) << st.to_string();
    EXPECT_NE(s->port(), 0);
    return s;
}

std::string get(std::string_view target, std::string_view version = "1.1") {
    return "GET " + std::string(target) + " HTTP/" + std::string(version) + "\r\nHost: t\r\n\r\n";
}

std::string post(std::string_view target, size_t body_bytes) {
    return "POST " + std::string(target) + " HTTP/1.1\r\nHost: t\r\nContent-Type: application/octet-stream\r\n" +
           "Content-Length: " + std::to_string(body_bytes) + "\r\n\r\n" + std::string(body_bytes, 'x');
}

std::string post_chunked(std::string_view target, size_t n_chunks, size_t chunk_bytes) {
    std::ostringstream s;
    s << "POST " << target << " HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n";
    for (size_t i = 0; i < n_chunks; ++i)
        s << std::hex << chunk_bytes << "\r\n" << std::string(chunk_bytes, 'x') << "\r\n";
    s << "0\r\n\r\n";
    return s.str();
}

// The error body must be exactly {"error":{"message","type","param","code"}} with the given code.
void expect_error_body(const http_reply& res, const json& want_code, const std::string& name) {
    EXPECT_EQ(res[http::field::content_type], "application/json") << name;
    json body;
    ASSERT_NO_THROW(body = json::parse(res.body())) << name << ": " << res.body();
    ASSERT_TRUE(body.is_object() && body.size() == 1 && body.contains("error")) << name << ": " << res.body();
    const json& e = body["error"];
    EXPECT_EQ(e.size(), 4u) << name << ": " << res.body();
    EXPECT_TRUE(e.contains("message") && e["message"].is_string() && !e["message"].get<std::string>().empty())
        << name << ": " << res.body();
    EXPECT_TRUE(e.contains("type") && e["type"].is_string()) << name << ": " << res.body();
    EXPECT_TRUE(e.contains("param") && e["param"].is_null()) << name << ": " << res.body();
    EXPECT_EQ(e.value("code", json("<missing>")), want_code) << name << ": " << res.body();
}

void expect_health_ok(const http_reply& res, const std::string& name) {
    EXPECT_EQ(res.result_int(), 200u) << name << ": " << res.body();
    EXPECT_EQ(res[http::field::content_type], "application/json") << name;
    EXPECT_EQ(json::parse(res.body(), nullptr, false), json({{"status", "ok"}})) << name << ": " << res.body();
}

struct exchange_case {
    const char* name;
    std::string request;
    unsigned status;
    json error_code;     // for error replies; "" for a 200
    bool closes;         // the server closes after replying; otherwise the connection serves another request
    const char* allow;   // the Allow header a 405 must carry
};

TEST(server, answers_each_request_with_status_body_and_connection_state) {
    constexpr size_t limit = 1 << 20;  // server_params' default body limit
    const exchange_case cases[] = {
        {"health", get("/health"), 200, "", false, nullptr},
        {"health_with_query", get("/health?verbose=1"), 200, "", false, nullptr},
        {"health_http10_closes", get("/health", "1.0"), 200, "", true, nullptr},
        {"unknown_route", get("/v1/nope"), 404, "not_found", false, nullptr},
        {"invalid_utf8_in_path", get("/\xff\xfe"), 404, "not_found", false, nullptr},
        {"post_health", post("/health", 0), 405, "method_not_allowed", false, "GET"},
        {"unknown_method", "BREW /health HTTP/1.1\r\nHost: t\r\n\r\n", 405, "method_not_allowed", false, "GET"},
        {"body_at_limit", post("/health", limit), 405, "method_not_allowed", false, "GET"},
        {"body_over_limit", post("/health", limit + 1), 413, "request_too_large", true, nullptr},
        // Still sending when the 413 goes out: only a lingering close lets the client finish and read it.
        {"body_far_over_limit", post("/health", 16 * limit), 413, "request_too_large", true, nullptr},
        {"declared_length_over_limit",
         "POST /health HTTP/1.1\r\nHost: t\r\nContent-Length: 10000000000\r\n\r\n", 413, "request_too_large", true,
         nullptr},
        {"chunked_over_limit", post_chunked("/health", 3, limit / 2), 413, "request_too_large", true, nullptr},
        {"malformed_request_line", "GARBAGE\r\n\r\n", 400, nullptr, true, nullptr},
        {"bad_version", "GET /health HTTP/9.9\r\nHost: t\r\n\r\n", 400, nullptr, true, nullptr},
        {"header_without_colon", "GET /health HTTP/1.1\r\nno colon here\r\n\r\n", 400, nullptr, true, nullptr},
        {"bad_content_length", "POST /health HTTP/1.1\r\nContent-Length: ten\r\n\r\n", 400, nullptr, true, nullptr},
        {"header_over_limit", "GET /health HTTP/1.1\r\nX-Pad: " + std::string(20'000, 'p') + "\r\n\r\n", 431,
         "request_header_too_large", true, nullptr},
    };
    auto srv = start_server();
    for (const auto& c : cases) {
        test_client client(srv->port());
        auto res = client.request(c.request);
        if (!res) {
            ADD_FAILURE() << c.name << ": no response (connect: " << client.connect_error().message() << ")";
            continue;
        }
        EXPECT_EQ(res->result_int(), c.status) << c.name << ": " << res->body();
        if (c.status == 200)
            expect_health_ok(*res, c.name);
        else
            expect_error_body(*res, c.error_code, c.name);
        if (c.allow) {
            EXPECT_EQ(std::string((*res)[http::field::allow]), c.allow) << c.name;
        }
        if (c.closes) {
            EXPECT_TRUE(client.closed_by_server()) << c.name << ": connection left open";
        } else {
            auto again = client.request(get("/health"));
            ASSERT_TRUE(again) << c.name << ": connection not kept alive";
            expect_health_ok(*again, std::string(c.name) + " (second request)");
        }
    }
}

// Not a fuzzer (Beast's parser has its own); a check that garbage ends in a 400 or a close, never a crash.
TEST(server, survives_random_bytes) {
    auto srv = start_server({.header_timeout = 2s});
    for (uint32_t seed = 1; seed <= 20; ++seed) {
        std::mt19937 rng(seed);
        std::string junk(1 + rng() % 3000, '\0');
        for (auto& ch : junk) ch = static_cast<char>(rng());
        if (seed % 2 == 0) junk = "GET /health HTTP/1.1\r\n" + junk;  // a valid start, then garbage headers
        junk += "\r\n\r\n";
        test_client client(srv->port());
        if (client.write(junk)) continue;  // the server may close on the first bad byte, before we finish
        if (auto res = client.read()) {
            EXPECT_EQ(res->result_int(), 400u) << "seed " << seed << ": " << res->body();
            expect_error_body(*res, nullptr, "seed " + std::to_string(seed));
        }
    }
    test_client after(srv->port());
    auto res = after.request(get("/health"));
    ASSERT_TRUE(res) << "server stopped answering";
    expect_health_ok(*res, "after the junk");
}

TEST(server, keep_alive_serves_sequential_and_pipelined_requests_on_one_connection) {
    auto srv = start_server();
    test_client client(srv->port());
    for (int i = 0; i < 2; ++i) {
        auto res = client.request(get("/health"));
        ASSERT_TRUE(res) << "request " << i;
        expect_health_ok(*res, "sequential " + std::to_string(i));
    }
    ASSERT_FALSE(client.write(get("/health") + get("/nope")));
    auto first = client.read(), second = client.read();
    ASSERT_TRUE(first && second);
    expect_health_ok(*first, "pipelined first");
    EXPECT_EQ(second->result_int(), 404u);
    EXPECT_EQ(srv->n_connections(), 1u);
}

// A client trickling its header one byte at a time is cut off at the header timeout with a 408, and one io
// thread keeps serving everybody else meanwhile.
TEST(server, slow_header_client_is_disconnected_while_others_are_served) {
    // 1 s leaves the fast client a wide margin on a loaded machine; the slow header would take ~3 s.
    auto srv = start_server({.n_io_threads = 1, .header_timeout = 1s});
    const std::string header = "GET /health HTTP/1.1\r\nHost: slow\r\nX-Pad: " + std::string(80, 'p') + "\r\n\r\n";

    struct slow_result {
        bool disconnected = false;
        size_t n_sent = 0;
        std::string received;
    };
    std::promise<void> first_byte_sent;
    std::atomic<bool> slow_disconnected{false};
    auto slow = std::async(std::launch::async, [&] {
        net::io_context ioc;
        tcp::socket sock(ioc);
        net::steady_timer pace(ioc), deadline(ioc);
        slow_result r;
        beast::error_code ec;
        sock.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), srv->port()), ec);
        if (ec) return r;
        auto end = [&] {
            r.disconnected = true;
            slow_disconnected = true;
            pace.cancel();
            deadline.cancel();
        };
        // Everything the server sends, up to its close.
        net::async_read(sock, net::dynamic_buffer(r.received), [&](beast::error_code ec, size_t) {
            if (ec) end();
        });
        std::function<void()> send_next = [&] {
            if (r.disconnected || r.n_sent == header.size()) return;
            beast::error_code wec;
            net::write(sock, net::buffer(&header[r.n_sent], 1), wec);
            if (wec) return end();
            if (++r.n_sent == 1) first_byte_sent.set_value();
            pace.expires_after(25ms);  // 25 ms a byte: the whole header would take ~3 s
            pace.async_wait([&](beast::error_code e) { if (!e) send_next(); });
        };
        deadline.expires_after(k_deadline);
        deadline.async_wait([&](beast::error_code e) { if (!e) { pace.cancel(); sock.close(); } });
        send_next();
        ioc.run();
        return r;
    });

    ASSERT_EQ(first_byte_sent.get_future().wait_for(k_deadline), std::future_status::ready);
    test_client fast(srv->port());
    auto res = fast.request(get("/health"));
    const bool slow_still_connected = !slow_disconnected;
    ASSERT_TRUE(res);
    expect_health_ok(*res, "fast client");
    EXPECT_TRUE(slow_still_connected) << "the fast client was answered only after the slow one was dropped";

    ASSERT_EQ(slow.wait_for(k_deadline + 1s), std::future_status::ready);
    const slow_result r = slow.get();
    EXPECT_TRUE(r.disconnected);
    EXPECT_LT(r.n_sent, header.size()) << "the slow client finished its header before the timeout";
    // The reply says why: 408 with OpenAI's error shape, then the close.
    EXPECT_EQ(r.received.rfind("HTTP/1.1 408", 0), 0u) << r.received;
    const size_t body_at = r.received.find("\r\n\r\n");
    ASSERT_NE(body_at, std::string::npos) << r.received;
    const json body = json::parse(r.received.substr(body_at + 4), nullptr, false);
    EXPECT_EQ(body["error"].value("code", ""), "request_timeout") << r.received;
}

// A client whose header is whole but whose body stalls gets a 408 at the body timeout, not a silent close.
TEST(server, a_stalled_body_gets_408_at_the_body_timeout) {
    auto srv = start_server({.body_timeout = 300ms});
    test_client c(srv->port());
    ASSERT_FALSE(c.write("POST /nope HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"half\":"));
    auto res = c.read();
    ASSERT_TRUE(res) << "closed without an answer";
    EXPECT_EQ(res->result_int(), 408u) << res->body();
    expect_error_body(*res, "request_timeout", "stalled body");
    EXPECT_NE(res->body().find("request body"), std::string::npos) << res->body();
    EXPECT_TRUE(c.closed_by_server());
    // A body that arrives in time, in two pieces, is answered (405: /health takes GET), not timed out.
    test_client ok(srv->port());
    ASSERT_FALSE(ok.write("POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\n{}"));
    ASSERT_FALSE(ok.write("  "));
    auto served = ok.read();
    ASSERT_TRUE(served);
    EXPECT_NE(served->result_int(), 408u) << served->body();
}

TEST(server, idle_and_silent_connections_are_closed) {
    auto srv = start_server({.header_timeout = 300ms, .idle_timeout = 300ms});
    test_client silent(srv->port());  // connects and never sends
    test_client idle(srv->port());    // one request, then nothing
    auto res = idle.request(get("/health"));
    ASSERT_TRUE(res);
    expect_health_ok(*res, "idle client's request");
    EXPECT_TRUE(idle.closed_by_server()) << "kept-alive connection outlived the idle timeout";
    EXPECT_TRUE(silent.closed_by_server()) << "silent connection outlived the header timeout";
}

TEST(server, connections_over_the_cap_get_503_until_one_closes) {
    auto srv = start_server({.max_connections = 2});
    test_client a(srv->port()), b(srv->port());
    for (auto* c : {&a, &b}) {  // a reply proves the server has admitted the connection
        auto res = c->request(get("/health"));
        ASSERT_TRUE(res);
        expect_health_ok(*res, "under the cap");
    }
    EXPECT_EQ(srv->n_connections(), 2u);

    test_client over(srv->port());
    auto refused = over.request(get("/health"));
    ASSERT_TRUE(refused) << "over the cap: no reply";
    EXPECT_EQ(refused->result_int(), 503u) << refused->body();
    expect_error_body(*refused, "overloaded", "over the cap");
    EXPECT_EQ((*refused)[http::field::retry_after], "1");
    EXPECT_TRUE(over.closed_by_server());

    // Once a slot frees, a new client gets in. The server sees the close asynchronously, so retry to a deadline.
    a.close();
    bool admitted = false;
    const auto until = std::chrono::steady_clock::now() + k_deadline;
    while (!admitted && std::chrono::steady_clock::now() < until) {
        test_client next(srv->port());
        auto res = next.request(get("/health"));
        admitted = res && res->result_int() == 200;
    }
    EXPECT_TRUE(admitted) << "no connection admitted after one closed";
    auto still = b.request(get("/health"));
    ASSERT_TRUE(still);
    expect_health_ok(*still, "connection kept through the cap");
}

TEST(server, stop_from_another_thread_closes_connections_and_the_port) {
    auto srv = start_server({.stop_timeout = 60s});  // stop() must finish on its own, long before this
    test_client kept(srv->port());
    auto res = kept.request(get("/health"));
    ASSERT_TRUE(res);
    const uint16_t port = srv->port();

    auto stopped = std::async(std::launch::async, [&] { srv->stop(); });
    ASSERT_EQ(stopped.wait_for(k_deadline), std::future_status::ready) << "stop() did not return";
    EXPECT_TRUE(kept.closed_by_server());
    test_client late(port);
    EXPECT_TRUE(late.connect_error()) << "still accepting after stop()";
    srv->stop();  // idempotent
}

TEST(server, start_reports_a_bad_host_and_a_taken_port) {
    auto first = start_server();
    server taken({.host = "127.0.0.1", .port = first->port()});
    const mm::status s1 = taken.start();
    EXPECT_EQ(s1.code(), mm::errc::io_error) << s1.to_string();

    server bad_host({.host = "not an address", .port = 0});
    EXPECT_FALSE(bad_host.start().ok());

    server bad_params({.n_io_threads = 0});
    EXPECT_EQ(bad_params.start().code(), mm::errc::out_of_range);
}

// --- the mmserve binary ---------------------------------------------------------------------------------

struct child_output {
    int exit_code = -1;  // -1: killed or did not exit
    std::string out, err;
};

class child_process {
public:
    explicit child_process(const std::vector<std::string>& args) {
        int out[2], err[2];
        if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) return;
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, out[1], 1);
        posix_spawn_file_actions_adddup2(&fa, err[1], 2);
        std::vector<char*> argv;
        for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
        argv.push_back(nullptr);
        if (posix_spawn(&pid_, argv[0], &fa, nullptr, argv.data(), environ) != 0) pid_ = -1;
        posix_spawn_file_actions_destroy(&fa);
        close(out[1]);
        close(err[1]);
        out_fd_ = out[0];
        err_fd_ = err[0];
    }
    ~child_process() {
        if (pid_ > 0) {
            kill(pid_, SIGKILL);
            waitpid(pid_, nullptr, 0);
        }
        if (out_fd_ >= 0) close(out_fd_);
        if (err_fd_ >= 0) close(err_fd_);
    }
    bool started() const { return pid_ > 0; }
    void signal(int sig) { kill(pid_, sig); }

    // Reads stdout until it holds a full line; "" at the deadline or EOF.
    std::string read_line() {
        const auto until = std::chrono::steady_clock::now() + k_deadline;
        while (output_.out.find('\n') == std::string::npos && std::chrono::steady_clock::now() < until)
            if (!pump(until)) break;
        const auto nl = output_.out.find('\n');
        return nl == std::string::npos ? "" : output_.out.substr(0, nl);
    }

    // Reads both pipes to EOF and reaps the child; killed if it has not exited by the deadline.
    child_output finish() {
        const auto until = std::chrono::steady_clock::now() + k_deadline;
        while ((out_fd_ >= 0 || err_fd_ >= 0) && pump(until)) {
        }
        if (out_fd_ >= 0 || err_fd_ >= 0) kill(pid_, SIGKILL);
        int wstatus = 0;
        waitpid(pid_, &wstatus, 0);
        pid_ = -1;
        if (WIFEXITED(wstatus)) output_.exit_code = WEXITSTATUS(wstatus);
        return output_;
    }

private:
    // One poll over the open pipes; false at the deadline.
    bool pump(std::chrono::steady_clock::time_point until) {
        using std::chrono::milliseconds;
        const auto left = std::chrono::duration_cast<milliseconds>(until - std::chrono::steady_clock::now());
        if (left <= 0ms) return false;
        pollfd fds[2] = {{out_fd_, POLLIN, 0}, {err_fd_, POLLIN, 0}};
        if (poll(fds, 2, static_cast<int>(left.count())) <= 0) return false;
        for (auto [fd, text] : {std::pair{&out_fd_, &output_.out}, {&err_fd_, &output_.err}}) {
            pollfd& p = fds[fd == &out_fd_ ? 0 : 1];
            if (*fd < 0 || !(p.revents & (POLLIN | POLLHUP | POLLERR))) continue;
            char buf[4096];
            const ssize_t n = ::read(*fd, buf, sizeof buf);
            if (n > 0) {
                text->append(buf, static_cast<size_t>(n));
            } else {
                close(*fd);
                *fd = -1;
            }
        }
        return true;
    }

    pid_t pid_ = -1;
    int out_fd_ = -1, err_fd_ = -1;
    child_output output_;
};

const std::string k_mmserve = std::string(MM_BINARY_DIR) + "/services/mmserve";

TEST(mmserve_binary, serves_health_and_stops_on_sigterm) {
    // Its own data dir (ledger, secrets) and a given admin key, so nothing is generated or printed for it.
    const std::string data_dir = (std::filesystem::temp_directory_path() /
                                  ("mm_binary_" + std::to_string(::getpid()))).string();
    ::setenv("MMSERVE_ADMIN_KEY", "admin-key-for-the-binary-test", 1);
    child_process child({k_mmserve, "serve", "--host", "127.0.0.1", "--port", "0", "--data-dir", data_dir});
    ASSERT_TRUE(child.started()) << k_mmserve;
    const std::string line = child.read_line();
    const std::string prefix = "mmserve listening on http://127.0.0.1:";
    ASSERT_EQ(line.rfind(prefix, 0), 0u) << "first stdout line: '" << line << "'";
    const int port = std::stoi(line.substr(prefix.size()));
    ASSERT_GT(port, 0);

    test_client client(static_cast<uint16_t>(port));
    auto res = client.request(get("/health"));
    ASSERT_TRUE(res);
    expect_health_ok(*res, "mmserve /health");

    // Stages this build has no model for: routed, key checked, then 404 model_not_found saying how to add one;
    // uploads take the upload limit (25 MiB by default), not the JSON body limit.
    struct unserved { const char* target; std::string body; const char* key; unsigned status; const char* code; };
    const std::string admin = "admin-key-for-the-binary-test";
    const unserved rows[] = {
        {"/v1/audio/transcriptions", "x", admin.c_str(), 404, "model_not_found"},
        {"/v1/audio/transcriptions", std::string(2 << 20, 'x'), admin.c_str(), 404, "model_not_found"},
        {"/v1/audio/transcriptions", std::string(26 << 20, 'x'), admin.c_str(), 413, nullptr},
        {"/v1/audio/translations", "x", "sk-not-a-key", 401, "invalid_api_key"},
        {"/v1/images/generations", "{}", admin.c_str(), 404, "model_not_found"},
        {"/v1/pipelines/text_to_image", "{}", admin.c_str(), 404, "model_not_found"},
    };
    for (const auto& r : rows) {
        auto a = mm::test::api_call(static_cast<uint16_t>(port), "POST", r.target, r.key, r.body);
        EXPECT_EQ(a.status, r.status) << r.target << " " << r.body.size() << ": " << a.raw.body();
        if (r.code) {
            EXPECT_EQ(a.body["error"].value("code", ""), r.code) << r.target << ": " << a.raw.body();
        }
        if (r.status == 404) {
            EXPECT_NE(a.body["error"].value("message", "").find("\"models\" list"), std::string::npos) << a.raw.body();
        }
    }
    test_client ws(static_cast<uint16_t>(port));
    auto refused = ws.request("GET /v1/realtime?intent=transcription HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                              "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                              "Sec-WebSocket-Version: 13\r\n\r\n");
    ASSERT_TRUE(refused);
    EXPECT_EQ(refused->result_int(), 404u) << refused->body();

    child.signal(SIGTERM);
    const child_output out = child.finish();
    EXPECT_EQ(out.exit_code, 0) << out.err;
    EXPECT_EQ(out.out, line + "\n") << "stdout holds only the listening line";
    // stderr: one JSON object per line, start and stop among them.
    std::vector<std::string> events;
    std::istringstream lines(out.err);
    for (std::string l; std::getline(lines, l);) {
        const json j = json::parse(l, nullptr, false);
        ASSERT_TRUE(j.is_object()) << "not a JSON log line: " << l;
        events.push_back(j.value("event", ""));
    }
    std::filesystem::remove_all(data_dir);
    for (const char* want : {"server_listening", "server_stopping", "server_stopped"})
        EXPECT_NE(std::find(events.begin(), events.end(), want), events.end()) << want << " not logged: " << out.err;
}

// Budget alerts end to end: the binary, a config naming a webhook, metered completions on the demo model,
// and a listener on loopback that must get each threshold once, in order, and nothing after the budget runs out.
TEST(mmserve_binary, budget_alerts_reach_the_configured_webhook_once_per_threshold) {
    std::mutex mu;
    std::vector<json> hooks;  // guarded by mu
    mm::services::server receiver(
        {.host = "127.0.0.1", .port = 0},
        {{http::verb::post, "/hook", [&](const mm::services::http_request& req) -> mm::result<mm::services::route_reply> {
              std::lock_guard lock(mu);
              hooks.push_back(json::parse(req.body(), nullptr, false));
              return mm::services::route_reply{.body = "{}"};
          }}});
    ASSERT_TRUE(receiver.start());
    const auto dir = std::filesystem::temp_directory_path() / ("mm_alerts_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    const json config = {
        {"data_dir", (dir / "data").string()},
        {"models", {{{"id", "stories"}, {"kind", "llm"}, {"n_ctx", 128},
                     {"path", std::string(MM_SOURCE_DIR) + "/models/demo/stories260K-f32.gguf"}}}},
        {"prices", {{"completions", 1000}}},
        {"alerts", {{"webhook_url", "http://127.0.0.1:" + std::to_string(receiver.port()) + "/hook"}}}};
    const auto config_file = dir / "mmserve.json";
    { std::ofstream(config_file) << config.dump(); }
    const std::string admin = "admin-key-for-the-alert-test";
    ::setenv("MMSERVE_ADMIN_KEY", admin.c_str(), 1);
    child_process child({k_mmserve, "serve", "--config", config_file.string(), "--port", "0"});
    ASSERT_TRUE(child.started());
    const std::string line = child.read_line();
    const std::string prefix = "mmserve listening on http://127.0.0.1:";
    ASSERT_EQ(line.rfind(prefix, 0), 0u) << line;
    const auto port = static_cast<uint16_t>(std::stoi(line.substr(prefix.size())));
    const auto until = std::chrono::steady_clock::now() + k_deadline;
    while (mm::test::api_call(port, "GET", "/ready", "").status != 200 && std::chrono::steady_clock::now() < until) {}
    ASSERT_EQ(mm::test::api_call(port, "GET", "/ready", "").status, 200u);

    auto made = mm::test::api_call(port, "POST", "/v1/admin/keys", admin,
                                   json{{"user", "bob"}, {"budget", 2000}, {"period", "month"}}.dump());
    ASSERT_EQ(made.status, 201u) << made.raw.body();
    const std::string key = made.body.value("key", "");
    const std::string completion = json{{"model", "stories"}, {"prompt", "Once"}, {"max_tokens", 4}}.dump();
    EXPECT_EQ(mm::test::api_call(port, "POST", "/v1/completions", key, completion).status, 200u);  // 50 %
    EXPECT_EQ(mm::test::api_call(port, "POST", "/v1/completions", key, completion).status, 200u);  // 80 and 100 %
    auto over = mm::test::api_call(port, "POST", "/v1/completions", key, completion);
    EXPECT_EQ(over.status, 429u) << over.raw.body();
    EXPECT_EQ(over.body["error"].value("code", ""), "insufficient_quota");

    const auto hooked = [&] {
        std::lock_guard lock(mu);
        return hooks.size();
    };
    const auto hook_until = std::chrono::steady_clock::now() + k_deadline;
    while (hooked() < 3 && std::chrono::steady_clock::now() < hook_until) std::this_thread::yield();
    child.signal(SIGTERM);  // a clean stop delivers what is still queued
    EXPECT_EQ(child.finish().exit_code, 0);
    std::lock_guard lock(mu);
    ASSERT_EQ(hooks.size(), 3u);
    const int thresholds[] = {50, 80, 100};
    for (size_t i = 0; i < 3; ++i) {
        EXPECT_EQ(hooks[i].value("type", ""), "budget_alert") << hooks[i].dump();
        EXPECT_EQ(hooks[i].value("threshold_pct", 0), thresholds[i]) << hooks[i].dump();
        EXPECT_EQ(hooks[i].value("user", ""), "bob") << hooks[i].dump();
        EXPECT_EQ(hooks[i].value("budget", 0), 2000) << hooks[i].dump();
    }
    std::filesystem::remove_all(dir);
}

struct cli_case {
    const char* name;
    std::vector<std::string> args;
    int exit_code;
    const char* out_has;  // substring of stdout ("" for none expected)
    const char* err_has;  // substring of stderr
};

TEST(mmserve_binary, command_line_usage_and_errors) {
    const cli_case cases[] = {
        {"help", {"--help"}, 0, "usage: mmserve", ""},
        {"serve_help", {"serve", "--help"}, 0, "--port", ""},
        {"no_command", {}, 2, "", "missing command"},
        {"unknown_command", {"bogus"}, 2, "", "unknown command 'bogus'"},
        {"unknown_flag", {"serve", "--bogus"}, 2, "", "unknown option '--bogus'"},
        {"port_out_of_range", {"serve", "--port", "70000"}, 2, "", "--port"},
        {"port_not_a_number", {"serve", "--port=80x"}, 2, "", "--port"},
        {"port_missing_value", {"serve", "--port"}, 2, "", "missing value"},
    };
    for (const auto& c : cases) {
        std::vector<std::string> args{k_mmserve};
        args.insert(args.end(), c.args.begin(), c.args.end());
        child_process child(args);
        ASSERT_TRUE(child.started()) << c.name;
        const child_output out = child.finish();
        EXPECT_EQ(out.exit_code, c.exit_code) << c.name << "\nstdout: " << out.out << "\nstderr: " << out.err;
        EXPECT_NE(out.out.find(c.out_has), std::string::npos) << c.name << "\nstdout: " << out.out;
        EXPECT_NE(out.err.find(c.err_has), std::string::npos) << c.name << "\nstderr: " << out.err;
        if (c.exit_code != 0) {
            EXPECT_EQ(out.out, "") << c.name << ": errors go to stderr";
        }
    }
}

}  // namespace
