// sqlite_ledger: charges (reserve, commit, void, unbilled), the per-period totals that budget checks
// read, and the alerts a commit can raise. The queued ops run on the writer thread; reserve and try_reserve
// on their callers'.
#include <algorithm>

#include "sqlite_ledger.h"

namespace mm::services {
namespace {

bool in_range(const period_range& r, int64_t t) { return t >= r.start_ms && t < r.end_ms; }

// spent + reserved + price <= budget, without overflow for any int64 inputs.
bool fits(micros spent, micros reserved, micros price, micros budget) {
    return static_cast<__int128>(spent) + reserved + price <= budget;
}

// spent has reached pct % of budget.
bool reached(micros spent, micros budget, int pct) {
    return static_cast<__int128>(spent) * 100 >= static_cast<__int128>(budget) * pct;
}

std::string money_text(micros spent, micros reserved, micros price, micros budget) {
    return "spent " + std::to_string(spent) + " + reserved " + std::to_string(reserved) + " + price " +
           std::to_string(price) + " > budget " + std::to_string(budget) + " (micros)";
}

status no_open_charge(std::string_view request_id) {
    return status(errc::not_found, "no open reservation for request '" + std::string(request_id) + "'");
}

status request_id_taken(std::string_view request_id, const status& s) {
    if (s.code() != errc::invalid_argument) return s;  // not a constraint failure: the storage's error
    return status(errc::invalid_argument, "request id '" + std::string(request_id) + "' already has a charge");
}

}  // namespace

sqlite_ledger::subject_totals* sqlite_ledger::totals_cached(alert::subject_kind kind, const std::string& subject,
                                                            period p, int64_t now_ms) {
    auto& map = kind == alert::subject_kind::key ? key_totals_ : user_totals_;
    auto it = map.find(subject);
    if (it == map.end() || it->second.p != p || it->second.range.start_ms != period_bounds(p, now_ms).start_ms)
        return nullptr;
    return &it->second;
}

result<bool> sqlite_ledger::charge_exists(std::string_view request_id) const {
    MM_SQL_QUERY(q, rdb_, "SELECT 1 FROM charges WHERE request_id = ?1");
    auto row = q.bind(1, request_id).step();
    if (!row) return row.error();
    return *row;
}

result<sqlite_ledger::subject_totals*> sqlite_ledger::totals_for(alert::subject_kind kind, const std::string& subject,
                                                                 period p, int64_t now_ms) {
    if (subject_totals* t = totals_cached(kind, subject, p, now_ms)) return t;
    auto& map = kind == alert::subject_kind::key ? key_totals_ : user_totals_;
    const period_range range = period_bounds(p, now_ms);

    // A new period (or a subject not seen since open): rebuild from the table. The writer connection sees
    // this batch's own uncommitted rows, so the result agrees with the mirror.
    subject_totals t{.p = p, .range = range};
    {
        auto spent = committed_sum(wdb_, kind, subject, range);
        if (!spent) return spent.error();
        t.spent = *spent;
    }
    {
        MM_SQL_QUERY(q, wdb_,
                     "SELECT COALESCE(MAX(threshold), 0) FROM alerts "
                     "WHERE subject_kind = ?1 AND subject = ?2 AND period_start = ?3");
        auto row = q.bind(1, alert_subject_name(kind)).bind(2, subject).bind(3, range.start_ms).step();
        if (!row) return row.error();
        t.alerted_pct = static_cast<int>(q.int_at(0));
    }
    t.reserved = open_reserved_in(kind, subject, range);
    auto [pos, inserted] = map.insert_or_assign(subject, t);
    return &pos->second;
}

micros sqlite_ledger::open_reserved_in(alert::subject_kind kind, std::string_view subject, period_range r) const {
    micros sum = 0;
    for (const auto& [id, c] : open_) {
        const std::string& who = kind == alert::subject_kind::key ? c.key_id : c.user;
        if (who == subject && in_range(r, c.created_ms)) sum += c.price;
    }
    return sum;
}

void sqlite_ledger::totals_release(const open_charge& c, bool committed) {
    auto settle = [&](string_map<subject_totals>& map, const std::string& subject) {
        auto it = map.find(subject);
        if (it == map.end() || !in_range(it->second.range, c.created_ms)) return;  // another period's charge
        it->second.reserved -= c.price;
        if (committed) it->second.spent += c.price;
    };
    settle(key_totals_, c.key_id);
    settle(user_totals_, c.user);
}

status sqlite_ledger::alerts_after_commit(const open_charge& c, micros price, int64_t now_ms) {
    struct subject {
        alert::subject_kind kind;
        const std::string& name;
        std::optional<micros> budget;
        period p;
        string_map<subject_totals>& totals;
    };
    const key_entry& k = keys_.find(c.key_id)->second;
    const user_info& u = users_.find(c.user)->second;
    const subject subjects[] = {
        {alert::subject_kind::key, c.key_id, k.info.limits.budget, k.info.limits.budget_period, key_totals_},
        {alert::subject_kind::user, c.user, u.budget, u.budget_period, user_totals_},
    };
    std::vector<alert> raised;
    for (const subject& s : subjects) {
        // A zero budget is "closed", not a spending level worth alerting on.
        if (!s.budget || *s.budget <= 0) continue;
        auto it = s.totals.find(s.name);
        if (it == s.totals.end()) continue;
        const subject_totals& t = it->second;
        if (t.p != s.p || !in_range(t.range, c.created_ms)) continue;
        const micros spent_after = t.spent + price;
        for (int pct : k_alert_thresholds_pct) {
            if (pct <= t.alerted_pct || !reached(spent_after, *s.budget, pct)) continue;
            MM_SQL_QUERY(q, wdb_,
                         "INSERT INTO alerts (subject_kind, subject, period_start, threshold, spent, budget, "
                         "created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING");
            MM_TRY(q.bind(1, alert_subject_name(s.kind))
                       .bind(2, s.name)
                       .bind(3, t.range.start_ms)
                       .bind(4, int64_t{pct})
                       .bind(5, spent_after)
                       .bind(6, *s.budget)
                       .bind(7, now_ms)
                       .run());
            if (q.changes() == 0) continue;  // recorded before (the mirror was behind the table)
            raised.push_back(alert{.kind = s.kind,
                                   .subject = s.name,
                                   .user = c.user,
                                   .threshold_pct = pct,
                                   .spent = spent_after,
                                   .budget = *s.budget,
                                   .budget_period = s.p,
                                   .range = t.range,
                                   .created_ms = now_ms});
        }
    }
    // Only now that every insert succeeded does the mirror move.
    for (const alert& a : raised) {
        auto& totals = a.kind == alert::subject_kind::key ? key_totals_ : user_totals_;
        auto& t = totals.find(a.subject)->second;
        t.alerted_pct = std::max(t.alerted_pct, a.threshold_pct);
        batch_alerts_.push_back(a);
    }
    return ok_status();
}

std::optional<status> sqlite_ledger::hold(const std::string& request_id, const std::string& key_id,
                                          const std::string& endpoint, micros price, bool on_writer) {
    auto kit = keys_.find(key_id);
    if (kit == keys_.end()) return status(errc::not_found, "no key '" + key_id + "'");
    const key_info& key = kit->second.info;
    if (key.revoked_ms) return status(errc::unauthenticated, "key '" + key.id + "' has been revoked");
    if (open_.find(request_id) != open_.end()) return request_id_taken(request_id, status(errc::invalid_argument));
    const user_info& user = users_.find(key.user)->second;
    const int64_t now = params_.clk->now_ms();

    subject_totals* kt = totals_cached(alert::subject_kind::key, key.id, key.limits.budget_period, now);
    subject_totals* ut = totals_cached(alert::subject_kind::user, user.name, user.budget_period, now);
    if (!kt || !ut) {
        if (!on_writer) return std::nullopt;  // the totals need the writer's connection
        auto k = totals_for(alert::subject_kind::key, key.id, key.limits.budget_period, now);
        if (!k) return k.error();
        auto u = totals_for(alert::subject_kind::user, user.name, user.budget_period, now);
        if (!u) return u.error();
        kt = *k;
        ut = *u;
    }
    if (key.limits.budget && !fits(kt->spent, kt->reserved, price, *key.limits.budget))
        return status(errc::budget_exhausted,
                      "key budget exhausted for this " + std::string(period_name(key.limits.budget_period)) + ": " +
                          money_text(kt->spent, kt->reserved, price, *key.limits.budget));
    if (user.budget && !fits(ut->spent, ut->reserved, price, *user.budget))
        return status(errc::budget_exhausted,
                      "user budget exhausted for this " + std::string(period_name(user.budget_period)) + ": " +
                          money_text(ut->spent, ut->reserved, price, *user.budget));
    kt->reserved += price;
    ut->reserved += price;
    const open_charge c{key.id, user.name, price, now, endpoint};
    open_.emplace(request_id, c);
    unpersisted_.emplace(request_id, c);

    // The row follows through the queue, ahead of this charge's commit or void.
    submit_async<status>(
        [this, request_id]() -> status {
            open_charge c;
            {
                std::lock_guard lock(state_mu_);
                auto it = open_.find(request_id);
                if (it == open_.end() || unpersisted_.find(request_id) == unpersisted_.end()) return ok_status();
                // Its commit or void is already queued: that op writes the whole row, so one write replaces two.
                if (it->second.settle_queued) {
                    it->second.row_skipped = true;
                    return ok_status();
                }
                c = it->second;
            }
            // Without state_mu_ (reserve and authenticate need it meanwhile). A settle queued from here on
            // comes after this op in the queue, and finds the row.
            MM_SQL_QUERY(q, wdb_,
                         "INSERT INTO charges (request_id, key_id, user_name, endpoint, price, state, created_ms) "
                         "VALUES (?1, ?2, ?3, ?4, ?5, 'reserved', ?6)");
            const status s = q.bind(1, request_id).bind(2, c.key_id).bind(3, c.user).bind(4, c.endpoint)
                                 .bind(5, c.price).bind(6, c.created_ms).run();
            std::lock_guard lock(state_mu_);
            if (!s) {
                // Reused id that raced reserve's check: the hold never becomes a charge. (Only the writer
                // removes open charges, so it is still there.)
                totals_release(c, /*committed=*/false);
                open_.erase(request_id);
                unpersisted_.erase(request_id);
                return request_id_taken(request_id, s);
            }
            batch_persisted_.push_back(request_id);
            return ok_status();
        },
        [](status) {});
    return ok_status();
}

status sqlite_ledger::reserve(std::string_view request_id, std::string_view key_id, std::string_view endpoint,
                              micros price) {
    return *reserve_step(request_id, key_id, endpoint, price, /*may_wait=*/true);
}

std::optional<status> sqlite_ledger::try_reserve(std::string_view request_id, std::string_view key_id,
                                                 std::string_view endpoint, micros price) {
    return reserve_step(request_id, key_id, endpoint, price, /*may_wait=*/false);
}

std::optional<status> sqlite_ledger::reserve_step(std::string_view request_id, std::string_view key_id,
                                                  std::string_view endpoint, micros price, bool may_wait) {
    if (request_id.empty()) return status(errc::invalid_argument, "request id must not be empty");
    if (price < 0 || price > k_price_max)
        return status(errc::invalid_argument, "price must be in [0, " + std::to_string(k_price_max) + "] micros");
    {
        // Single use, ever: a finished charge is on disk (commit and void return after their fsync). A
        // report can hold the read connection for a while, so a caller that must not wait goes elsewhere.
        std::unique_lock lock(read_mu_, std::defer_lock);
        if (may_wait)
            lock.lock();
        else if (!lock.try_lock())
            return std::nullopt;
        auto used = charge_exists(request_id);
        if (!used) return used.error();
        if (*used) return request_id_taken(request_id, status(errc::invalid_argument));
    }

    std::string id(request_id), key(key_id), ep(endpoint);
    {
        std::lock_guard lock(state_mu_);  // held briefly by everyone, so taken even by a caller that must not wait
        if (auto decided = hold(id, key, ep, price, /*on_writer=*/false)) return *decided;
    }
    if (!may_wait) return std::nullopt;
    // First use of this key or user in the period: its totals are built on the writer, then held there.
    return submit<status>([&]() -> status {
        std::lock_guard lock(state_mu_);
        return *hold(id, key, ep, price, /*on_writer=*/true);
    });
}

std::pair<std::optional<sqlite_ledger::open_charge>, bool> sqlite_ledger::open_charge_copy(const std::string& request_id) const {
    std::lock_guard lock(state_mu_);
    auto it = open_.find(request_id);
    if (it == open_.end()) return {std::nullopt, false};
    return {it->second, unpersisted_.find(request_id) != unpersisted_.end()};
}

void sqlite_ledger::mark_settle_queued(std::string_view request_id) {
    std::lock_guard lock(state_mu_);
    if (auto it = open_.find(request_id); it != open_.end()) it->second.settle_queued = true;
}

status sqlite_ledger::settle_row(const std::string& request_id, const open_charge& c, bool unpersisted,
                                 charge_state state, charge_outcome outcome, int64_t now) {
    if (!c.row_skipped) {
        MM_SQL_QUERY(q, wdb_,
                     "UPDATE charges SET state = ?2, outcome = ?3, finished_ms = ?4 "
                     "WHERE request_id = ?1 AND state = 'reserved'");
        MM_TRY(q.bind(1, request_id).bind(2, charge_state_name(state)).bind(3, charge_outcome_name(outcome))
                   .bind(4, now).run());
        if (q.changes() == 1) return ok_status();
    }
    // No reserved row (skipped for this settle, or lost with a failed batch): the settled row is written whole.
    if (!unpersisted) return status(errc::internal, "open reservation missing from the charges table");
    MM_SQL_QUERY(q, wdb_,
                 "INSERT INTO charges (request_id, key_id, user_name, endpoint, price, state, outcome, created_ms, "
                 "finished_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)");
    auto s = q.bind(1, request_id).bind(2, c.key_id).bind(3, c.user).bind(4, c.endpoint).bind(5, c.price)
                 .bind(6, charge_state_name(state)).bind(7, charge_outcome_name(outcome)).bind(8, c.created_ms)
                 .bind(9, now).run();
    return s ? s : request_id_taken(request_id, s);
}

void sqlite_ledger::commit_async(std::string_view request_id, charge_outcome outcome, std::optional<idem_store> idem,
                                 done_fn done) {
    if (outcome != charge_outcome::ok && outcome != charge_outcome::cache_hit)
        return done(status(errc::invalid_argument,
                           std::string("a commit's outcome is ok or cache_hit, not ") + charge_outcome_name(outcome)));
    mark_settle_queued(request_id);
    submit_async<status>(
        [this, id = std::string(request_id), outcome, idem = std::move(idem)]() -> status {
            auto [c, unpersisted] = open_charge_copy(id);
            if (!c) return no_open_charge(id);
            const int64_t now = params_.clk->now_ms();
            MM_TRY(settle_row(id, *c, unpersisted, charge_state::committed, outcome, now));
            if (idem) {
                // A record that is no longer running (expired and purged) only loses its replay.
                MM_SQL_QUERY(q, wdb_,
                             "UPDATE idempotency SET state = 'done', http_status = ?3, content_type = ?4, body = ?5 "
                             "WHERE key_id = ?1 AND idem_key = ?2 AND state = 'running'");
                MM_TRY(q.bind(1, idem->key_id).bind(2, idem->idem_key)
                           .bind(3, int64_t{idem->response.http_status}).bind(4, idem->response.content_type)
                           .bind_blob(5, idem->response.body).run());
            }
            std::lock_guard lock(state_mu_);
            auto it = open_.find(id);
            MM_ASSERT(it != open_.end());  // only the writer removes open charges
            MM_TRY(alerts_after_commit(it->second, it->second.price, now));
            totals_release(it->second, /*committed=*/true);
            open_.erase(it);
            batch_persisted_.push_back(id);
            return ok_status();
        },
        std::move(done));
}

void sqlite_ledger::void_async(std::string_view request_id, charge_outcome outcome, done_fn done) {
    if (outcome == charge_outcome::ok)
        return done(status(errc::invalid_argument, "a voided charge's outcome is not ok"));
    mark_settle_queued(request_id);
    submit_async<status>(
        [this, id = std::string(request_id), outcome]() -> status {
            auto [c, unpersisted] = open_charge_copy(id);
            if (!c) return no_open_charge(id);
            const status s = settle_row(id, *c, unpersisted, charge_state::voided, outcome, params_.clk->now_ms());
            if (!s && s.code() != errc::invalid_argument) return s;
            std::lock_guard lock(state_mu_);
            auto it = open_.find(id);
            MM_ASSERT(it != open_.end());  // only the writer removes open charges
            // Voided, or never a charge (its id was taken): either way the hold goes.
            totals_release(it->second, /*committed=*/false);
            open_.erase(it);
            if (s) {
                batch_persisted_.push_back(id);
            } else {
                unpersisted_.erase(id);
            }
            return s;
        },
        std::move(done));
}

status sqlite_ledger::record_unbilled(std::string_view request_id, std::string_view key_id, std::string_view endpoint,
                                      charge_outcome outcome) {
    if (request_id.empty()) return status(errc::invalid_argument, "request id must not be empty");
    return submit<status>([&]() -> status {
        std::lock_guard lock(state_mu_);
        auto kit = keys_.find(key_id);
        if (kit == keys_.end()) return status(errc::not_found, "no key '" + std::string(key_id) + "'");
        if (open_.find(request_id) != open_.end()) return request_id_taken(request_id, status(errc::invalid_argument));
        const int64_t now = params_.clk->now_ms();
        MM_SQL_QUERY(q, wdb_,
                     "INSERT INTO charges (request_id, key_id, user_name, endpoint, price, state, outcome, "
                     "created_ms, finished_ms) VALUES (?1, ?2, ?3, ?4, 0, 'unbilled', ?5, ?6, ?6)");
        auto s = q.bind(1, request_id)
                     .bind(2, key_id)
                     .bind(3, kit->second.info.user)
                     .bind(4, endpoint)
                     .bind(5, charge_outcome_name(outcome))
                     .bind(6, now)
                     .run();
        return s ? s : request_id_taken(request_id, s);
    });
}

}  // namespace mm::services
