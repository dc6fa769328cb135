// mmserve: the command line. Loads the config (--config FILE, else ./mmserve.json if present, else the
// defaults), applies the flags over it, and runs the server until SIGINT/SIGTERM.
// stdout carries one line (where we listen, for people and for scripts that asked for port 0); logs go to stderr.
#include <charconv>
#include <cstdlib>
#include <optional>
#include <chrono>
#include <filesystem>
#include <csignal>
#include <cstdio>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include "common/log.h"
#include "common/status.h"
#include "account_routes.h"
#include "admin_cli.h"
#include "admin_key.h"
#include "alert_notifier.h"
#include "clock.h"
#include "key_hash.h"
#include "meter.h"
#include "model_loader.h"
#include "services/metrics.h"
#include "sqlite_ledger.h"
#include "services/model_routes.h"
#include "services/server.h"
#include "services/server_config.h"
#include "unserved_routes.h"

namespace {

using mm::errc;
using mm::status;
using mm::services::server_config;
using mm::services::server_params;

constexpr const char* k_default_config = "mmserve.json";  // at the repo root, where the README's command runs

constexpr int k_exit_usage = 2;  // bad command line, as with most Unix tools

// Each flag is declared once: its name, argument, help, and how it lands in the params.
struct serve_flag {
    const char* name;
    const char* arg;
    const char* help;
    status (*apply)(server_config& c, std::string_view value);
};

status parse_port(server_config& p, std::string_view v) {
    unsigned port = 0;
    auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), port);
    if (ec != std::errc() || end != v.data() + v.size() || v.empty() || port > 65535)
        return status(errc::invalid_argument, "--port: expected 0..65535, got '" + std::string(v) + "'");
    p.port = static_cast<uint16_t>(port);
    return mm::ok_status();
}

status parse_host(server_config& p, std::string_view v) {
    if (v.empty()) return status(errc::invalid_argument, "--host: must not be empty");
    p.host = std::string(v);
    return mm::ok_status();
}

status parse_data_dir(server_config& p, std::string_view v) {
    if (v.empty()) return status(errc::invalid_argument, "--data-dir: must not be empty");
    p.data_dir = std::string(v);
    return mm::ok_status();
}

// --config is read before the others (they override the file), so it has no apply step of its own here.
status parse_config_noop(server_config&, std::string_view) { return mm::ok_status(); }

constexpr serve_flag k_serve_flags[] = {
    {"--config", "FILE", "JSON config (default ./mmserve.json when present; see keys below)", parse_config_noop},
    {"--host", "H", "address to listen on (overrides host; default 127.0.0.1, 0.0.0.0 serves every interface)", parse_host},
    {"--port", "P", "TCP port (overrides port; default 8080, 0 lets the OS pick one, printed on start)", parse_port},
    {"--data-dir", "DIR", "ledger and secrets folder (overrides data_dir; default ./data)", parse_data_dir},
};

void print_usage(std::FILE* out) {
    std::fprintf(out,
                 "usage: mmserve <command> [options]\n\n"
                 "commands:\n"
                 "  serve    run the OpenAI-compatible HTTP server\n"
                 "  keys     create, list or revoke API keys on a running server (admin key)\n"
                 "  users    show or set a user's budget, shared by all its keys (admin key)\n"
                 "  usage    requests and charges from a running server (admin key)\n\n"
                 "run 'mmserve serve --help' for the server's options.\n");
}

void print_serve_usage(std::FILE* out) {
    std::fprintf(out, "usage: mmserve serve [options]\n\noptions:\n");
    for (const auto& f : k_serve_flags) {
        const std::string lhs = std::string(f.name) + " " + f.arg;
        std::fprintf(out, "  %-16s %s\n", lhs.c_str(), f.help);
    }
    std::fprintf(out, "  %-16s %s\n", "--help", "print this help");
    std::fprintf(out, "\nconfig keys:\n%s", mm::services::server_config_help().c_str());
    std::fprintf(out, "\nSIGINT or SIGTERM stops the server gracefully.\n");
}

int usage_error(const std::string& message, void (*usage)(std::FILE*)) {
    std::fprintf(stderr, "mmserve: %s\n\n", message.c_str());
    usage(stderr);
    return k_exit_usage;
}

// Fills c from "--flag value" and "--flag=value"; a returned message means a usage error. Given
// config_file, only checks the flags and finds --config's value.
status parse_serve_args(const std::vector<std::string_view>& args, server_config& c, std::string* config_file) {
    for (size_t i = 0; i < args.size(); ++i) {
        std::string_view name = args[i], value;
        const bool inline_value = name.find('=') != std::string_view::npos;
        if (inline_value) {
            value = name.substr(name.find('=') + 1);
            name = name.substr(0, name.find('='));
        }
        const serve_flag* flag = nullptr;
        for (const auto& f : k_serve_flags)
            if (name == f.name) flag = &f;
        if (!flag) return status(errc::invalid_argument, "unknown option '" + std::string(args[i]) + "'");
        if (!inline_value) {
            if (i + 1 >= args.size()) return status(errc::invalid_argument, std::string(name) + ": missing value");
            value = args[++i];
        }
        if (config_file && name == "--config") *config_file = std::string(value);
        if (!config_file) MM_TRY(flag->apply(c, value));
    }
    return mm::ok_status();
}

// The file named by --config, else ./mmserve.json when present, else the defaults.
mm::result<server_config> load_config_file(const std::string& file) {
    if (file.empty() && !std::filesystem::exists(k_default_config)) return server_config{};
    return mm::services::server_config_load(file.empty() ? k_default_config : file);
}

server_params params_from(const server_config& c) {
    server_params p;
    p.host = c.host;
    p.port = c.port;
    p.body_limit = c.limits.body_bytes;
    p.header_timeout = std::chrono::milliseconds(c.limits.header_timeout_ms);
    p.body_timeout = std::chrono::milliseconds(c.limits.body_timeout_ms);
    p.idle_timeout = std::chrono::milliseconds(c.limits.idle_timeout_ms);
    p.stop_timeout = std::chrono::milliseconds(c.limits.shutdown_timeout_ms);
    p.ws_message_limit = c.limits.ws_message_bytes;
    p.max_connections = static_cast<size_t>(c.limits.max_connections);
    return p;
}

int serve(const std::vector<std::string_view>& args) {
    for (auto a : args)
        if (a == "--help" || a == "-h") {
            print_serve_usage(stdout);
            return 0;
        }
    std::string config_file;
    server_config scratch;
    if (status s = parse_serve_args(args, scratch, &config_file); !s) return usage_error(s.message(), print_serve_usage);
    auto config = load_config_file(config_file);
    if (!config) {
        std::fprintf(stderr, "mmserve: config: %s\n", config.error().message().c_str());
        return k_exit_usage;
    }
    if (status s = parse_serve_args(args, *config, nullptr); !s) return usage_error(s.message(), print_serve_usage);
    const server_params params = params_from(*config);
    if (status s = mm::services::validate(params); !s) return usage_error(s.message(), print_serve_usage);

    // Blocked before the server starts, so a signal right after the "listening" line is never lost.
    boost::asio::io_context signal_ioc(1);
    boost::asio::signal_set signals(signal_ioc, SIGINT, SIGTERM);
    int stop_signal = 0;
    signals.async_wait([&](const boost::system::error_code&, int sig) { stop_signal = sig; });

    // The meter: server secret, admin key, ledger. All under the data dir.
    auto secret = mm::services::server_secret_load_or_create(config->data_dir);
    if (!secret) {
        std::fprintf(stderr, "mmserve: %s\n", secret.error().message().c_str());
        return 1;
    }
    const char* env_admin = std::getenv("MMSERVE_ADMIN_KEY");  // main() is the one place that reads the environment
    auto admin_hash = mm::services::admin_key_hash_resolve(
        config->data_dir, *secret, config->admin_key,
        env_admin ? std::optional<std::string>(env_admin) : std::nullopt, stderr);
    if (!admin_hash) {
        std::fprintf(stderr, "mmserve: %s\n", admin_hash.error().message().c_str());
        return 1;
    }
    mm::services::system_clock clk;
    mm::services::alert_notifier alerts({.webhook_url = config->alerts.webhook_url});  // outlives the ledger
    auto book = mm::services::sqlite_ledger::open({.path = config->data_dir / "ledger.sqlite3",
                                                   .server_secret = *secret,
                                                   .clk = &clk,
                                                   .on_alert = alerts.as_sink()});
    if (!book) {
        std::fprintf(stderr, "mmserve: ledger: %s\n", book.error().message().c_str());
        return 1;
    }
    mm::services::metrics stats;
    mm::services::meter meter({.config = *config, .book = **book, .time = clk, .server_secret = *secret,
                               .admin_key_hash = *admin_hash, .stats = &stats});
    mm::services::model_registry models;
    for (const auto& m : config->models) models.add(m.id, m.kind);
    mm::thread_pool pool;  // the one pool every stage computes on
    mm::services::text_models text;
    auto routes = mm::services::server_routes();
    routes.push_back(mm::services::metrics_route(stats));
    for (auto& r : mm::services::model_routes(models)) routes.push_back(std::move(r));
    for (auto& r : mm::services::account_routes(meter)) routes.push_back(std::move(r));
    for (auto& r : mm::services::text_routes(meter, text, models)) routes.push_back(std::move(r));
    for (auto& r : mm::services::unserved_routes(meter, config->limits.upload_bytes)) routes.push_back(std::move(r));
    mm::services::server srv(params, std::move(routes), &stats);
    if (status s = srv.start(); !s) {
        mm::log_error("server_start_failed", {{"error", s.to_string()}});
        std::fprintf(stderr, "mmserve: %s\n", s.message().c_str());
        return 1;
    }
    const std::string host = srv.address().find(':') != std::string::npos ? "[" + srv.address() + "]" : srv.address();
    const std::string url = "http://" + host + ":" + std::to_string(srv.port());
    mm::log_info("server_listening", {{"address", srv.address()}, {"port", int{srv.port()}}, {"url", url}});
    std::printf("mmserve listening on %s\n", url.c_str());
    std::fflush(stdout);
    // Models load beside the serving server: /ready answers 503 with their progress until all are in.
    std::thread loader([&] { mm::services::load_models(*config, models, text, pool, &stats); });

    signal_ioc.run();
    mm::log_info("server_stopping", {{"signal", stop_signal == SIGINT ? "SIGINT" : "SIGTERM"}});
    srv.stop();
    loader.join();
    mm::log_info("server_stopped", {{"url", url}});
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::string_view> args(argv + 1, argv + argc);
    if (args.empty()) return usage_error("missing command", print_usage);
    if (args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
        print_usage(stdout);
        return 0;
    }
    if (args[0] == "serve") return serve({args.begin() + 1, args.end()});
    if (args[0] == "keys" || args[0] == "users" || args[0] == "usage") {
        const char* env_admin = std::getenv("MMSERVE_ADMIN_KEY");
        return mm::services::admin_cli(args[0], {args.begin() + 1, args.end()},
                                       env_admin ? std::optional<std::string>(env_admin) : std::nullopt);
    }
    return usage_error("unknown command '" + std::string(args[0]) + "'", print_usage);
}
