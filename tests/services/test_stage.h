// A test-only stage for the meter's tests: a billable route that succeeds, fails, streams or waits on
// command, on threads of its own, honouring its request's cancel token. It lives in tests/ only, so the
// product binary cannot reach it.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "services/router.h"

namespace mm::test {

class test_stage {
public:
    ~test_stage() {
        release();
        std::lock_guard lock(mu_);
        for (auto& t : threads_) t.join();
    }

    // Body: {"action": "ok" | "fail" | "stream" | "hold" | "work", "chunks": n, "pad": bytes, "ms": n,
    // "then_fail": bool}. A stream's chunks carry pad filler bytes each (for answers of a given size).
    // A stream with then_fail ends as failed after its chunks. "hold" waits until
    // release() or its cancel token, then answers ok (released) or cancelled; "work" takes ms milliseconds,
    // as a stage step would, and stops early on a cancel.
    services::async_route_handler handler() {
        return [this](std::shared_ptr<const services::http_request> req, std::shared_ptr<services::responder> out) {
            std::lock_guard lock(mu_);
            threads_.emplace_back([this, req, out] { run(*req, *out); });
        };
    }

    void release() { released_ = true; }
    int ran() const { return ran_.load(); }
    int cancelled() const { return cancelled_.load(); }
    int holding() const { return holding_.load(); }

private:
    void run(const services::http_request& req, services::responder& out) {
        ++ran_;
        const auto body = nlohmann::json::parse(req.body(), nullptr, false);
        const std::string action = body.is_object() ? body.value("action", "ok") : "ok";
        if (action == "fail") return out.reply(status(errc::internal, "the stage failed on command"));
        if (action == "stream") {
            out.stream_begin({.content_type = "text/event-stream"});
            const int n = body.value("chunks", 3);
            const std::string pad(body.value("pad", size_t{0}), 'x');
            for (int i = 0; i < n; ++i) out.stream_write("data: " + std::to_string(i) + pad + "\n\n");
            if (body.value("then_fail", false)) {
                out.stream_write("data: {\"error\": {\"message\": \"the stage failed on command\"}}\n\n");
                return out.stream_fail(status(errc::internal, "the stage failed on command"));
            }
            if (body.value("then_hold", false) && !wait(&out.cancel())) {
                ++cancelled_;
                return out.stream_end({});  // the meter sees the cancel and voids
            }
            return out.stream_end("data: [DONE]\n\n");
        }
        if (action == "work") {
            const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(body.value("ms", 10));
            while (std::chrono::steady_clock::now() < until && !out.cancel().stopped())
                std::this_thread::sleep_for(std::chrono::milliseconds(1));  // simulated compute, not a wait for state
        }
        if (action == "hold" && !wait(&out.cancel())) {
            ++cancelled_;
            return out.reply(status(errc::cancelled, "cancelled"));
        }
        out.reply(services::route_reply{.body = nlohmann::json{{"ok", true}, {"echo", body}}.dump()});
    }

    // Until release() (true) or the token fires (false); bounded so a broken test cannot hang.
    bool wait(const cancel_token* token = nullptr) {
        ++holding_;
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
        while (!released_ && (!token || !token->stopped()) && std::chrono::steady_clock::now() < deadline)
            std::this_thread::yield();
        --holding_;
        return released_.load();
    }

    std::mutex mu_;
    std::vector<std::thread> threads_;  // guarded by mu_
    std::atomic<bool> released_{false};
    std::atomic<int> ran_{0}, cancelled_{0}, holding_{0};
};

}  // namespace mm::test
