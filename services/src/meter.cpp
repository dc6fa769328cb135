#include "meter.h"

#include <atomic>
#include <mutex>

#include <boost/asio/post.hpp>

#include "common/log.h"
#include "key_hash.h"

namespace mm::services {
namespace {

namespace http = boost::beast::http;
using header_list = std::vector<std::pair<std::string, std::string>>;

// Largest answer kept for idempotent replay; a bigger one is still answered, just not replayable.
constexpr size_t k_max_stored_response = 4 << 20;

std::string_view bearer_token(const http_request& req) {
    auto it = req.find(http::field::authorization);
    if (it == req.end()) return {};
    std::string_view v = std_view(it->value());
    constexpr std::string_view scheme = "Bearer ";
    if (v.size() <= scheme.size() || v.substr(0, scheme.size()) != scheme) return {};
    v.remove_prefix(scheme.size());
    while (!v.empty() && v.back() == ' ') v.remove_suffix(1);
    return v;
}

header_list rate_headers(const rate_decision& d) {
    header_list h;
    if (d.limit > 0) {
        h.emplace_back("x-ratelimit-limit-requests", std::to_string(d.limit));
        h.emplace_back("x-ratelimit-remaining-requests", std::to_string(d.remaining));
        h.emplace_back("x-ratelimit-reset-requests", rate_reset_text(d.reset_ms));
    }
    return h;
}

// Stands between a billable route and the client: commits the charge before the answer's last byte goes
// out, voids it for an error or a cancel, releases the rate-limit slot, and stores the answer for
// idempotent replay. Everything it learns it learns from the route's own calls.
class metered_responder : public responder {
public:
    struct state {
        ledger* book;
        metrics* stats;
        std::string request_id, key_id, endpoint, idem_key;
        header_list headers;  // rate-limit and request-id headers for every answer
    };

    metered_responder(state s, std::shared_ptr<responder> inner, std::function<void()> release)
        : s_(std::move(s)), inner_(std::move(inner)), release_(std::move(release)) {}
    ~metered_responder() override {
        if (!done_.exchange(true)) {  // the route let go without answering: nothing to bill
            settle(false, charge_outcome::failed);
            inner_->reply(status(errc::internal, "the route gave no answer"));
        }
    }

    void reply(result<route_reply> r) override {
        if (done_.exchange(true)) return;
        const bool ok = r.has_value() && r->status < 400;
        if (ok && !inner_->cancel().stopped()) {
            if (status c = settle(true, charge_outcome::ok); !c) {
                log_error("charge_commit_failed", {{"req", s_.request_id}, {"error", c.to_string()}});
                return inner_->reply(status(errc::internal, "could not record the charge; not billed"));
            }
            remember(r->status, r->content_type, r->body);
        } else {
            settle(false, inner_->cancel().stopped() ? charge_outcome::cancelled : charge_outcome::failed);
        }
        if (r) {
            for (auto& h : s_.headers) r->headers.push_back(h);
        } else {
            r = error_reply(r.error(), s_.headers);
        }
        inner_->reply(std::move(r));
    }

    void stream_begin(route_reply head) override {
        head_status_ = head.status;
        head_type_ = head.content_type;
        for (auto& h : s_.headers) head.headers.push_back(h);
        inner_->stream_begin(std::move(head));
    }
    void stream_write(std::string chunk) override {
        if (!s_.idem_key.empty() && streamed_.size() + chunk.size() <= k_max_stored_response) streamed_ += chunk;
        inner_->stream_write(std::move(chunk));
    }
    void stream_end() override {
        if (done_.exchange(true)) return;
        if (inner_->cancel().stopped()) {
            settle(false, charge_outcome::cancelled);
        } else if (status c = settle(true, charge_outcome::ok); !c) {
            // The head is out, so the status cannot change; the stream ends unbilled and says so in the log.
            log_error("charge_commit_failed", {{"req", s_.request_id}, {"error", c.to_string()}});
        } else {
            remember(head_status_, head_type_, streamed_);
        }
        inner_->stream_end();
    }
    const cancel_token& cancel() const override { return inner_->cancel(); }

private:
    // Commit (success) or void (anything else); also ends the idempotency record and the rate-limit slot.
    status settle(bool commit, charge_outcome outcome) {
        status s = commit ? s_.book->commit(s_.request_id) : s_.book->void_(s_.request_id, outcome);
        if (!commit && !s.ok()) log_error("charge_void_failed", {{"req", s_.request_id}, {"error", s.to_string()}});
        if (!commit || !s.ok()) {
            if (!s_.idem_key.empty()) (void)s_.book->idem_abandon(s_.key_id, s_.idem_key);
        }
        if (s_.stats) s_.stats->meter_event(s_.endpoint, commit && s.ok() ? "committed" : "voided");
        release_();
        return s;
    }
    void remember(unsigned http_status, const std::string& type, const std::string& body) {
        if (s_.idem_key.empty()) return;
        if (body.size() > k_max_stored_response) {
            (void)s_.book->idem_abandon(s_.key_id, s_.idem_key);
            return;
        }
        (void)s_.book->idem_finish(s_.key_id, s_.idem_key,
                                   {.http_status = static_cast<int>(http_status), .content_type = type, .body = body});
    }

    state s_;
    std::shared_ptr<responder> inner_;
    std::function<void()> release_;
    std::atomic<bool> done_{false};
    unsigned head_status_ = 200;
    std::string head_type_;
    std::string streamed_;
};

}  // namespace

std::string request_id_generate() { return "req_" + key_id_generate().substr(4); }

meter::meter(meter_params p) : p_(std::move(p)), workers_(static_cast<size_t>(p_.n_workers)) {}

meter::~meter() { workers_.join(); }

void meter::run_blocking(std::function<void()> fn) { boost::asio::post(workers_, std::move(fn)); }

result<caller> meter::authenticate(const http_request& req) const {
    const std::string_view token = bearer_token(req);
    if (token.empty())
        return status(errc::unauthenticated,
                      "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'.");
    if (!p_.admin_key_hash.empty() && key_hash_equal(key_hash(p_.server_secret, token), p_.admin_key_hash))
        return caller{.admin = true, .key = {}};
    auto key = p_.book.key_authenticate(token);
    if (!key) return status(errc::unauthenticated, "Incorrect API key provided.");
    return caller{.admin = false, .key = *key};
}

async_route_handler meter::metered(std::string endpoint, async_route_handler run) {
    return [this, endpoint = std::move(endpoint), run = std::move(run)](std::shared_ptr<const http_request> req,
                                                                         std::shared_ptr<responder> out) {
        run_blocking([this, endpoint, run, req, out] { admit(endpoint, run, req, out); });
    };
}

void meter::admit(std::string endpoint, async_route_handler run, std::shared_ptr<const http_request> req,
                  std::shared_ptr<responder> out) {
    // 1. Authenticate.
    auto who = authenticate(*req);
    if (!who) return out->reply(who.error());
    if (who->admin)
        return out->reply(status(errc::permission_denied, "the admin key manages keys; use a user key for " + endpoint));
    const key_info& key = who->key;
    const std::string request_id = request_id_generate();
    header_list headers{{"x-request-id", request_id}};

    // 2. Rate limit: not billed, recorded as rejected.
    const rate_decision rd = limiter_.acquire(key.id, {.rpm = key.limits.rpm, .max_concurrent = key.limits.max_concurrent},
                                              p_.time.now_ms());
    for (auto& h : rate_headers(rd)) headers.push_back(h);
    if (!rd.allowed) {
        (void)p_.book.record_unbilled(request_id, key.id, endpoint, charge_outcome::rejected_rate);
        if (p_.stats) p_.stats->meter_event(endpoint, "rejected_rate");
        headers.emplace_back("Retry-After", std::to_string(rd.retry_after_s));
        return out->reply(error_reply(
            status(errc::rate_limited, rd.by_concurrency
                                           ? "Too many requests in flight for this key (max_concurrent " +
                                                 std::to_string(key.limits.max_concurrent) + ")."
                                           : "Rate limit reached for this key: " + std::to_string(key.limits.rpm) +
                                                 " requests per minute."),
            headers));
    }
    auto release = [this, id = key.id] { limiter_.release(id); };

    // 7. Idempotency-Key: replay, 409 while running, 422 for another body.
    std::string idem_key;
    if (auto it = req->find("Idempotency-Key"); it != req->end()) {
        idem_key = std::string(std_view(it->value()));
        if (idem_key.empty() || idem_key.size() > 255) {
            release();
            return out->reply(error_reply(status(errc::invalid_argument, "Idempotency-Key must be 1..255 characters"), headers));
        }
        const std::string body_hash = sha256_hex(std::string(std_view(req->method_string())) + " " +
                                                 std::string(std_view(req->target())) + "\n" + req->body());
        auto verdict = p_.book.idem_begin(key.id, idem_key, body_hash);
        if (!verdict) {
            release();
            return out->reply(error_reply(verdict.error(), headers));
        }
        if (verdict->verdict != idem_verdict::run) release();
        switch (verdict->verdict) {
            case idem_verdict::run: break;
            case idem_verdict::replay: {
                (void)p_.book.record_unbilled(request_id, key.id, endpoint, charge_outcome::replayed);
                if (p_.stats) p_.stats->meter_event(endpoint, "replayed");
                headers.emplace_back("Idempotent-Replayed", "true");
                return out->reply(route_reply{.status = static_cast<unsigned>(verdict->response.http_status),
                                              .content_type = verdict->response.content_type,
                                              .body = verdict->response.body,
                                              .headers = headers});
            }
            case idem_verdict::in_flight:
                return out->reply(error_reply(
                    status(errc::idempotency_running, "A request with this Idempotency-Key is still running."), headers));
            case idem_verdict::mismatch:
                return out->reply(error_reply(
                    status(errc::idempotency_mismatch,
                           "This Idempotency-Key was used with a different request body."),
                    headers));
        }
    }

    // 3. Reserve: atomic against the key's and the user's budgets.
    const micros price = p_.config.price(endpoint);
    if (status s = p_.book.reserve(request_id, key.id, endpoint, price); !s) {
        if (!idem_key.empty()) (void)p_.book.idem_abandon(key.id, idem_key);
        release();
        if (s.code() == errc::budget_exhausted) {
            (void)p_.book.record_unbilled(request_id, key.id, endpoint, charge_outcome::rejected_budget);
            if (p_.stats) p_.stats->meter_event(endpoint, "rejected_budget");
        }
        return out->reply(error_reply(s, headers));
    }

    // 4. Run; 5. commit or void happens in the responder.
    auto metered_out = std::make_shared<metered_responder>(
        metered_responder::state{&p_.book, p_.stats, request_id, key.id, endpoint, idem_key, headers},
        std::move(out), release);
    run(std::move(req), std::move(metered_out));
}

}  // namespace mm::services
