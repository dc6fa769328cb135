#include "meter.h"

#include <atomic>
#include <cstdio>
#include <mutex>

#include <boost/asio/post.hpp>

#include "common/log.h"
#include "key_hash.h"

namespace mm::services {
namespace {

namespace http = boost::beast::http;
using header_list = std::vector<std::pair<std::string, std::string>>;

// Largest answer kept for idempotent replay and the cache. A bigger one is still answered; its idempotency
// record is kept without it, so a retry is refused (409) rather than run and billed again.
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
    if (d.concurrent_limit > 0) {  // OpenAI has no header for requests in flight; these follow its naming
        h.emplace_back("x-ratelimit-limit-concurrent", std::to_string(d.concurrent_limit));
        h.emplace_back("x-ratelimit-remaining-concurrent", std::to_string(d.concurrent_remaining));
    }
    return h;
}

// Stands between a billable route and the client: commits the charge before the answer's last byte goes
// out, voids it for an error or a cancel, releases the rate-limit slot, and stores the answer for
// idempotent replay and the response cache. Everything it learns it learns from the route's own calls.
// The commit is asynchronous: the answer is handed on from the ledger's completion, so no thread waits
// for the fsync.
class metered_responder : public responder, public std::enable_shared_from_this<metered_responder> {
public:
    struct state {
        ledger* book;
        metrics* stats;
        std::function<void(std::function<void()>)> post;  // onto the meter's workers
        std::string request_id, key_id, endpoint, idem_key;
        std::optional<std::string> cache_key;  // set for a deterministic request whose answer is kept
        charge_outcome outcome = charge_outcome::ok;  // cache_hit when answered from the cache
        header_list headers;                   // rate-limit and request-id headers for every answer
    };

    metered_responder(state s, std::shared_ptr<responder> inner, std::function<void()> release)
        : s_(std::move(s)), inner_(std::move(inner)), release_(std::move(release)) {}
    ~metered_responder() override {
        if (!done_.exchange(true)) {  // the route let go without answering: nothing to bill
            s_.book->void_async(s_.request_id, charge_outcome::failed, [](status) {});
            s_.post([book = s_.book, key_id = s_.key_id, idem_key = s_.idem_key, release = release_] {
                if (!idem_key.empty()) (void)book->idem_abandon(key_id, idem_key);
                release();
            });
            inner_->reply(error_reply(status(errc::internal, "the route gave no answer"), s_.headers));
        }
    }

    void reply(result<route_reply> r) override {
        if (done_.exchange(true)) return;
        if (r) {
            for (auto& h : s_.headers) r->headers.push_back(h);
        } else {
            r = error_reply(r.error(), s_.headers);
        }
        if (r->status >= 400 || inner_->cancel().stopped()) {
            return void_then(inner_->cancel().stopped() ? charge_outcome::cancelled : charge_outcome::failed,
                             [self = shared_from_this(), r = std::move(*r)]() mutable { self->inner_->reply(std::move(r)); });
        }
        stored_response kept{.http_status = static_cast<int>(r->status), .content_type = r->content_type, .body = r->body};
        commit_then(std::move(kept), [self = shared_from_this(), r = std::move(*r)](bool billed) mutable {
            if (billed) return self->inner_->reply(std::move(r));
            self->inner_->reply(
                error_reply(status(errc::internal, "could not record the charge; not billed"), self->s_.headers));
        });
    }

    void stream_begin(route_reply head) override {
        head_status_ = head.status;
        head_type_ = head.content_type;
        for (auto& h : s_.headers) head.headers.push_back(h);
        inner_->stream_begin(std::move(head));
    }
    void stream_write(std::string chunk) override {
        keep_streamed(chunk);
        inner_->stream_write(std::move(chunk));
    }
    void stream_end(std::string last_chunk) override {
        if (done_.exchange(true)) return;
        if (inner_->cancel().stopped())
            return void_then(charge_outcome::cancelled, [self = shared_from_this()] { self->inner_->stream_end({}); });
        keep_streamed(last_chunk);
        // The head is out, so a failed commit cannot change the status: the stream ends unbilled, logged.
        commit_then({.http_status = static_cast<int>(head_status_),
                     .content_type = head_type_,
                     .body = std::move(streamed_)},  // nothing is written after the end
                    [self = shared_from_this(), last = std::move(last_chunk)](bool) mutable {
                        self->inner_->stream_end(std::move(last));
                    });
    }
    void stream_fail(status why) override {
        if (done_.exchange(true)) return;
        const bool cancelled = inner_->cancel().stopped() || why.code() == errc::cancelled;
        void_then(cancelled ? charge_outcome::cancelled : charge_outcome::failed,
                  [self = shared_from_this(), why = std::move(why)] { self->inner_->stream_fail(why); });
    }
    const cancel_token& cancel() const override { return inner_->cancel(); }

private:
    bool keeps_answer() const { return !s_.idem_key.empty() || s_.cache_key.has_value(); }

    // Keeps a streamed chunk for replay while the whole answer stays within the limit.
    void keep_streamed(const std::string& chunk) {
        if (!keeps_answer() || streamed_too_big_) return;
        if (streamed_.size() + chunk.size() <= k_max_stored_response) {
            streamed_ += chunk;
        } else {
            streamed_too_big_ = true;
            streamed_.clear();
            streamed_.shrink_to_fit();
        }
    }

    // Commits (with the idempotency record's answer in the same transaction), then calls then(billed).
    void commit_then(stored_response answer, std::function<void(bool)> then) {
        const bool keep = !streamed_too_big_ && answer.body.size() <= k_max_stored_response;
        std::optional<idem_store> idem;
        if (!s_.idem_key.empty())
            idem = idem_store{s_.key_id, s_.idem_key,
                              keep ? answer : stored_response{.http_status = 0, .content_type = {}, .body = {}}};
        s_.book->commit_async(
            s_.request_id, s_.outcome, std::move(idem),
            [self = shared_from_this(), keep, answer = std::move(answer), then = std::move(then)](status c) mutable {
                // On the ledger's thread: quick work only; what waits on the ledger goes to the workers.
                const bool billed = c.ok();
                if (!billed) log_error("charge_commit_failed", {{"req", self->s_.request_id}, {"error", c.to_string()}});
                if (billed && keep && self->s_.cache_key) self->s_.book->cache_put(*self->s_.cache_key, std::move(answer));
                if (!self->s_.idem_key.empty() && !billed) {
                    self->s_.post([self, then = std::move(then)] {
                        self->finish(false, /*abandon_idem=*/true);
                        then(false);
                    });
                    return;
                }
                self->finish(billed, /*abandon_idem=*/false);
                then(billed);
            });
    }

    // Voids, then calls then() once the void is on disk, so usage read after the answer already shows it.
    void void_then(charge_outcome outcome, std::function<void()> then) {
        s_.book->void_async(s_.request_id, outcome, [self = shared_from_this(), then = std::move(then)](status v) {
            if (!v.ok()) log_error("charge_void_failed", {{"req", self->s_.request_id}, {"error", v.to_string()}});
            self->s_.post([self, then] {
                self->finish(false, /*abandon_idem=*/true);
                then();
            });
        });
    }

    // Ends the rate-limit slot and, when the answer will not be replayed, the idempotency record.
    void finish(bool committed, bool abandon_idem) {
        if (abandon_idem && !s_.idem_key.empty()) (void)s_.book->idem_abandon(s_.key_id, s_.idem_key);
        if (s_.stats) s_.stats->meter_event(s_.endpoint, committed ? "committed" : "voided");
        release_();
    }

    state s_;
    std::shared_ptr<responder> inner_;
    std::function<void()> release_;
    std::atomic<bool> done_{false};
    unsigned head_status_ = 200;
    std::string head_type_;
    std::string streamed_;
    bool streamed_too_big_ = false;
};

}  // namespace

std::string request_id_generate() {
    // Milliseconds first, so ids sort by time and each new charge lands on the ledger index's last page (a
    // random id dirtied a page of its own per charge in every group commit); 64 random bits after them.
    char ms[16];
    std::snprintf(ms, sizeof ms, "%012llx", static_cast<unsigned long long>(system_clock{}.now_ms()));
    return std::string("req_") + ms + key_id_generate().substr(4);
}

meter::meter(meter_params p) : p_(std::move(p)), workers_(static_cast<size_t>(p_.n_workers)) {}

meter::~meter() { workers_.join(); }

void meter::run_blocking(std::function<void()> fn) { boost::asio::post(workers_, std::move(fn)); }

result<caller> meter::authenticate(const http_request& req) const {
    const std::string_view token = bearer_token(req);
    if (token.empty())
        return status(errc::unauthenticated,
                      "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'.");
    const std::string hash = key_hash(p_.server_secret, token);  // once: the admin key's and the users' agree
    if (!p_.admin_key_hash.empty() && key_hash_equal(hash, p_.admin_key_hash)) return caller{.admin = true, .key = {}};
    auto key = p_.book.key_find_by_hash(hash);
    if (!key) return status(errc::unauthenticated, "Incorrect API key provided.");
    return caller{.admin = false, .key = *key};
}

async_route_handler meter::metered(std::string endpoint, async_route_handler run, cache_key_fn cacheable,
                                   route_work work, cache_refresh_fn refresh) {
    auto rules = std::make_shared<const route_rules>(
        route_rules{.endpoint = std::move(endpoint), .cacheable = std::move(cacheable), .refresh = std::move(refresh)});
    return [this, rules, run = std::move(run), work](std::shared_ptr<const http_request> req,
                                                     std::shared_ptr<responder> out) {
        if (work == route_work::quick) return admit(rules, run, std::move(req), std::move(out), true);
        run_blocking([this, rules, run, req, out] { admit(rules, run, req, out, false); });
    };
}

void meter::where_it_may_wait(bool on_io, std::function<void()> fn) {
    if (on_io) return run_blocking(std::move(fn));
    fn();
}

struct meter::admission {
    std::shared_ptr<const route_rules> rules;
    async_route_handler run;
    std::shared_ptr<const http_request> req;
    std::shared_ptr<responder> out;
    std::string request_id;
    key_info key;
    header_list headers;
    std::function<void()> release;  // the rate-limit slot
    std::string idem_key;
    std::optional<std::string> cache_key;
    std::optional<stored_response> hit;
};

void meter::admit(const std::shared_ptr<const route_rules>& rules, async_route_handler run,
                  std::shared_ptr<const http_request> req, std::shared_ptr<responder> out, bool on_io) {
    // Idempotency records live in the ledger's tables: such a request is admitted where it may wait.
    if (on_io && req->find("Idempotency-Key") != req->end())
        return run_blocking([this, rules, run = std::move(run), req = std::move(req), out = std::move(out)]() mutable {
            admit(rules, std::move(run), std::move(req), std::move(out), false);
        });

    // 1. Authenticate.
    auto who = authenticate(*req);
    if (!who) return out->reply(who.error());
    if (who->admin)
        return out->reply(status(errc::permission_denied, "the admin key manages keys; use a user key for " + rules->endpoint));
    auto a = std::make_shared<admission>(admission{.rules = rules,
                                                   .run = std::move(run),
                                                   .req = std::move(req),
                                                   .out = std::move(out),
                                                   .request_id = request_id_generate(),
                                                   .key = std::move(who->key),
                                                   .headers = {},
                                                   .release = {},
                                                   .idem_key = {},
                                                   .cache_key = {},
                                                   .hit = {}});
    const key_info& key = a->key;
    a->headers.emplace_back("x-request-id", a->request_id);

    // 2. Rate limit: not billed, recorded as rejected.
    const rate_decision rd = limiter_.acquire(key.id, {.rpm = key.limits.rpm, .max_concurrent = key.limits.max_concurrent},
                                              p_.time.now_ms());
    for (auto& h : rate_headers(rd)) a->headers.push_back(h);
    if (!rd.allowed) {
        a->headers.emplace_back("Retry-After", std::to_string(rd.retry_after_s));
        return where_it_may_wait(on_io, [this, a, by_concurrency = rd.by_concurrency] {
            (void)p_.book.record_unbilled(a->request_id, a->key.id, a->rules->endpoint, charge_outcome::rejected_rate);
            if (p_.stats) p_.stats->meter_event(a->rules->endpoint, "rejected_rate");
            a->out->reply(error_reply(
                status(errc::rate_limited, by_concurrency
                                               ? "Too many requests in flight for this key (max_concurrent " +
                                                     std::to_string(a->key.limits.max_concurrent) + ")."
                                               : "Rate limit reached for this key: " + std::to_string(a->key.limits.rpm) +
                                                     " requests per minute."),
                a->headers));
        });
    }
    a->release = [this, id = key.id] { limiter_.release(id); };

    // 7. Idempotency-Key: replay, 409 while running, 422 for another body. (Never on a network thread.)
    if (auto it = a->req->find("Idempotency-Key"); it != a->req->end()) {
        const http_request& r = *a->req;
        std::string& idem_key = a->idem_key;
        header_list& headers = a->headers;
        idem_key = std::string(std_view(it->value()));
        if (idem_key.empty() || idem_key.size() > 255) {
            a->release();
            return a->out->reply(
                error_reply(status(errc::invalid_argument, "Idempotency-Key must be 1..255 characters"), headers));
        }
        const std::string body_hash = sha256_hex(std::string(std_view(r.method_string())) + " " +
                                                 std::string(std_view(r.target())) + "\n" + r.body());
        auto verdict = p_.book.idem_begin(key.id, idem_key, body_hash);
        if (!verdict) {
            a->release();
            return a->out->reply(error_reply(verdict.error(), headers));
        }
        if (verdict->verdict != idem_verdict::run) a->release();
        switch (verdict->verdict) {
            case idem_verdict::run: break;
            case idem_verdict::replay: {
                (void)p_.book.record_unbilled(a->request_id, key.id, a->rules->endpoint, charge_outcome::replayed);
                if (p_.stats) p_.stats->meter_event(a->rules->endpoint, "replayed");
                headers.emplace_back("Idempotent-Replayed", "true");
                return a->out->reply(route_reply{.status = static_cast<unsigned>(verdict->response.http_status),
                                                 .content_type = verdict->response.content_type,
                                                 .body = verdict->response.body,
                                                 .headers = headers});
            }
            case idem_verdict::in_flight:
                return a->out->reply(error_reply(
                    status(errc::idempotency_running, "A request with this Idempotency-Key is still running."), headers));
            case idem_verdict::not_kept:
                return a->out->reply(error_reply(
                    status(errc::idempotency_unreplayable,
                           "The request with this Idempotency-Key succeeded and was billed, but its answer was too "
                           "large to keep for replay (over " + std::to_string(k_max_stored_response >> 20) + " MiB)."),
                    headers));
            case idem_verdict::mismatch:
                return a->out->reply(error_reply(
                    status(errc::idempotency_mismatch,
                           "This Idempotency-Key was used with a different request body."),
                    headers));
        }
    }

    // 8. Response cache: a deterministic request answered before is answered again at cache_price.
    if (rules->cacheable)
        if (auto material = rules->cacheable(*a->req)) a->cache_key = sha256_hex(a->rules->endpoint + "\n" + *material);
    if (a->cache_key) a->hit = p_.book.cache_get(*a->cache_key);
    reserve_and_run(std::move(a), on_io);
}

void meter::reserve_and_run(std::shared_ptr<admission> a, bool on_io) {
    // 3. Reserve: atomic against the key's and the user's budgets.
    const micros price = a->hit ? p_.config.cache_price : p_.config.price(a->rules->endpoint);
    const std::optional<status> reserved = on_io ? p_.book.try_reserve(a->request_id, a->key.id, a->rules->endpoint, price)
                                                 : p_.book.reserve(a->request_id, a->key.id, a->rules->endpoint, price);
    if (!reserved) return run_blocking([this, a] { reserve_and_run(a, false); });  // it would wait: on the workers
    if (!*reserved) {
        return where_it_may_wait(on_io, [this, a, s = *reserved] {
            if (!a->idem_key.empty()) (void)p_.book.idem_abandon(a->key.id, a->idem_key);
            a->release();
            if (s.code() == errc::budget_exhausted) {
                (void)p_.book.record_unbilled(a->request_id, a->key.id, a->rules->endpoint, charge_outcome::rejected_budget);
                if (p_.stats) p_.stats->meter_event(a->rules->endpoint, "rejected_budget");
            }
            a->out->reply(error_reply(s, a->headers));
        });
    }
    if (a->hit) {
        a->headers.emplace_back("x-mmserve-cache", "hit");
        if (p_.stats) p_.stats->meter_event(a->rules->endpoint, "cache_hit");
    }

    // 4. Run; 5. commit or void happens in the responder.
    auto metered_out = std::make_shared<metered_responder>(
        metered_responder::state{.book = &p_.book,
                                 .stats = p_.stats,
                                 .post = [this](std::function<void()> fn) { run_blocking(std::move(fn)); },
                                 .request_id = a->request_id,
                                 .key_id = a->key.id,
                                 .endpoint = a->rules->endpoint,
                                 .idem_key = a->idem_key,
                                 .cache_key = a->hit ? std::nullopt : a->cache_key,
                                 .outcome = a->hit ? charge_outcome::cache_hit : charge_outcome::ok,
                                 .headers = a->headers},
        a->out, a->release);
    if (a->hit)
        return metered_out->reply(route_reply{
            .status = static_cast<unsigned>(a->hit->http_status),
            .content_type = a->hit->content_type,
            .body = a->rules->refresh ? a->rules->refresh(std::move(a->hit->body)) : std::move(a->hit->body)});
    a->run(a->req, std::move(metered_out));
}

}  // namespace mm::services
