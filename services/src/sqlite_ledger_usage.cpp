// sqlite_ledger: reports. me() reads the in-memory totals when they are for the current period and the
// read connection otherwise; usage() and charge_get() read the read connection (committed data only,
// which is everything a caller has been told about, since writes return after their commit).
#include <algorithm>
#include <map>

#include "sqlite_ledger.h"

namespace mm::services {
namespace {

void finish_view(budget_view& v) {
    if (v.budget) v.remaining = std::max<micros>(0, *v.budget - v.spent - v.reserved);
}

}  // namespace

budget_view sqlite_ledger::budget_view_of(alert::subject_kind kind, const std::string& subject,
                                          std::optional<micros> budget, period p, int64_t now_ms,
                                          bool* need_spent) const {
    budget_view v;
    v.budget = budget;
    v.budget_period = p;
    v.range = period_bounds(p, now_ms);
    const auto& map = kind == alert::subject_kind::key ? key_totals_ : user_totals_;
    auto it = map.find(subject);
    if (it != map.end() && it->second.p == p && it->second.range.start_ms == v.range.start_ms) {
        v.spent = it->second.spent;
        v.reserved = it->second.reserved;
        *need_spent = false;
    } else {
        v.reserved = open_reserved_in(kind, subject, v.range);
        *need_spent = true;
    }
    return v;
}

result<micros> sqlite_ledger::committed_sum(sql_db& db, alert::subject_kind kind, std::string_view subject,
                                            period_range r) {
    // Two literals, not one built string: the statement cache is keyed by the SQL's address.
    const char* sql = kind == alert::subject_kind::key
                          ? "SELECT COALESCE(SUM(price), 0) FROM charges WHERE key_id = ?1 "
                            "AND state = 'committed' AND created_ms >= ?2 AND created_ms < ?3"
                          : "SELECT COALESCE(SUM(price), 0) FROM charges WHERE user_name = ?1 "
                            "AND state = 'committed' AND created_ms >= ?2 AND created_ms < ?3";
    MM_SQL_QUERY(q, db, sql);
    auto row = q.bind(1, subject).bind(2, r.start_ms).bind(3, r.end_ms).step();
    if (!row) return row.error();
    return q.int_at(0);
}

result<micros> sqlite_ledger::spent_in(alert::subject_kind kind, std::string_view subject, period_range r) const {
    std::lock_guard lock(read_mu_);
    return committed_sum(rdb_, kind, subject, r);
}

result<me_info> sqlite_ledger::me(std::string_view key_id) const {
    me_info out;
    bool key_needs_spent = false, user_needs_spent = false;
    {
        std::lock_guard lock(state_mu_);
        auto it = keys_.find(key_id);
        if (it == keys_.end()) return status(errc::not_found, "no key '" + std::string(key_id) + "'");
        out.key = it->second.info;
        const int64_t now = params_.clk->now_ms();
        out.key_budget = budget_view_of(alert::subject_kind::key, out.key.id, out.key.limits.budget,
                                        out.key.limits.budget_period, now, &key_needs_spent);
        const user_info& u = users_.find(out.key.user)->second;
        if (u.budget)
            out.user_budget = budget_view_of(alert::subject_kind::user, u.name, u.budget, u.budget_period, now,
                                             &user_needs_spent);
    }
    // Outside state_mu_: a report must not hold up the writer.
    if (key_needs_spent) {
        auto s = spent_in(alert::subject_kind::key, out.key.id, out.key_budget.range);
        if (!s) return s.error();
        out.key_budget.spent = *s;
    }
    if (user_needs_spent) {
        auto s = spent_in(alert::subject_kind::user, out.key.user, out.user_budget->range);
        if (!s) return s.error();
        out.user_budget->spent = *s;
    }
    finish_view(out.key_budget);
    if (out.user_budget) finish_view(*out.user_budget);
    return out;
}

result<user_report> sqlite_ledger::user_report_get(std::string_view user) const {
    user_report out;
    bool needs_spent = false;
    {
        std::lock_guard lock(state_mu_);
        auto it = users_.find(user);
        if (it == users_.end()) return status(errc::not_found, "no user '" + std::string(user) + "'");
        out.user = it->second;
        out.budget = budget_view_of(alert::subject_kind::user, out.user.name, out.user.budget, out.user.budget_period,
                                    params_.clk->now_ms(), &needs_spent);
    }
    out.keys = key_list(user);
    if (needs_spent) {
        auto s = spent_in(alert::subject_kind::user, out.user.name, out.budget.range);
        if (!s) return s.error();
        out.budget.spent = *s;
    }
    finish_view(out.budget);
    return out;
}

result<charge_info> sqlite_ledger::charge_get(std::string_view request_id) const {
    std::lock_guard lock(read_mu_);
    MM_SQL_QUERY(q, rdb_,
                 "SELECT request_id, key_id, user_name, endpoint, price, state, outcome, created_ms, finished_ms "
                 "FROM charges WHERE request_id = ?1");
    auto row = q.bind(1, request_id).step();
    if (!row) return row.error();
    if (!*row) return status(errc::not_found, "no charge for request '" + std::string(request_id) + "'");
    charge_info c{.request_id = q.text_at(0),
                  .key_id = q.text_at(1),
                  .user = q.text_at(2),
                  .endpoint = q.text_at(3),
                  .price = q.int_at(4),
                  .state = charge_state::reserved,  // set below
                  .outcome = std::nullopt,
                  .created_ms = q.int_at(7),
                  .finished_ms = q.opt_int_at(8)};
    const std::string state = q.text_at(5);
    bool known = false;
    for (auto s : {charge_state::reserved, charge_state::committed, charge_state::voided, charge_state::unbilled})
        if (state == charge_state_name(s)) {
            c.state = s;
            known = true;
        }
    if (!known) return status(errc::internal, "charge with unknown state '" + state + "'");
    if (!q.is_null(6)) {
        auto o = charge_outcome_parse(q.text_at(6));
        if (!o) return o.error();
        c.outcome = *o;
    }
    return c;
}

result<std::vector<usage_row>> sqlite_ledger::usage(const usage_query& uq) const {
    if (uq.end_ms <= uq.start_ms) return status(errc::invalid_argument, "usage range is empty (end <= start)");
    std::string sql = "SELECT ";
    switch (uq.group_by) {
        case usage_group::key: sql += "key_id"; break;
        case usage_group::endpoint: sql += "endpoint"; break;
        case usage_group::day: sql += "strftime('%Y-%m-%d', created_ms / 1000, 'unixepoch')"; break;
        case usage_group::outcome: sql += "COALESCE(outcome, 'pending')"; break;
    }
    // Filters become plain equalities so SQLite can use the (key_id | user_name, created_ms) indexes.
    sql += ", state, COALESCE(outcome, 'pending'), COUNT(*), SUM(price) FROM charges "
           "WHERE created_ms >= ?1 AND created_ms < ?2";
    if (uq.key_id) sql += " AND key_id = ?3";
    if (uq.user) sql += " AND user_name = ?4";
    sql += " GROUP BY 1, 2, 3";

    std::map<std::string, usage_row> rows;
    {
        std::lock_guard lock(read_mu_);
        sqlite3_stmt* raw = nullptr;
        const int rc = sqlite3_prepare_v2(rdb_.get(), sql.c_str(), -1, &raw, nullptr);
        sqlite_stmt_ptr owned(raw);
        if (rc != SQLITE_OK) return sqlite_status(rdb_.get(), rc, "preparing the usage query");
        sql_query q(raw);
        q.bind(1, uq.start_ms).bind(2, uq.end_ms);
        if (uq.key_id) q.bind(3, *uq.key_id);
        if (uq.user) q.bind(4, *uq.user);
        for (;;) {
            auto row = q.step();
            if (!row) return row.error();
            if (!*row) break;
            usage_row& r = rows[q.text_at(0)];
            const int64_t n = q.int_at(3);
            r.requests += n;
            if (q.text_at(1) == charge_state_name(charge_state::committed)) {
                r.billed_requests += n;
                r.charged += q.int_at(4);
            }
            r.outcomes[q.text_at(2)] += n;
        }
    }
    std::vector<usage_row> out;
    out.reserve(rows.size());
    for (auto& [group, r] : rows) {
        r.group = group;
        out.push_back(std::move(r));
    }
    return out;
}

}  // namespace mm::services
