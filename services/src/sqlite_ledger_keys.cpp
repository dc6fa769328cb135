// sqlite_ledger: API keys and users. Written through the writer; read from the in-memory mirror.
#include <algorithm>

#include "key_hash.h"
#include "sqlite_ledger.h"

namespace mm::services {
namespace {

status validate_user_name(std::string_view user) {
    if (user.empty()) return status(errc::invalid_argument, "user must not be empty");
    if (user.size() > 256) return status(errc::invalid_argument, "user name longer than 256 bytes");
    return ok_status();
}

}  // namespace

result<key_created> sqlite_ledger::key_create(const key_create_params& p) {
    MM_TRY(validate_user_name(p.user));
    MM_TRY(validate(p.limits));
    // Drawn and hashed here, off the writer thread; only the hash goes to the ledger.
    key_created out{.id = key_id_generate(), .secret = key_secret_generate(), .prefix = {}};
    out.prefix = out.secret.substr(0, k_key_display_prefix);
    const std::string hash = key_hash(params_.server_secret, out.secret);

    return submit<result<key_created>>([&]() -> result<key_created> {
        std::lock_guard lock(state_mu_);
        const int64_t now = params_.clk->now_ms();
        {
            MM_SQL_QUERY(q, wdb_,
                         "INSERT INTO users (name, budget, period, created_ms) VALUES (?1, NULL, 'month', ?2) "
                         "ON CONFLICT (name) DO NOTHING");
            MM_TRY(q.bind(1, p.user).bind(2, now).run());
        }
        {
            MM_SQL_QUERY(q, wdb_,
                         "INSERT INTO keys (id, user_name, prefix, hash, budget, period, rpm, max_concurrent, "
                         "created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)");
            MM_TRY(q.bind(1, out.id)
                       .bind(2, p.user)
                       .bind(3, out.prefix)
                       .bind(4, hash)
                       .bind(5, p.limits.budget)
                       .bind(6, period_name(p.limits.budget_period))
                       .bind(7, p.limits.rpm)
                       .bind(8, p.limits.max_concurrent)
                       .bind(9, now)
                       .run());
        }
        users_.try_emplace(p.user, user_info{.name = p.user, .budget = std::nullopt, .budget_period = period::month});
        key_entry e{.info = {.id = out.id,
                             .user = p.user,
                             .prefix = out.prefix,
                             .limits = p.limits,
                             .created_ms = now,
                             .revoked_ms = std::nullopt},
                    .hash = hash};
        key_by_hash_.emplace(hash, out.id);
        keys_.emplace(out.id, std::move(e));
        return out;
    });
}

result<key_info> sqlite_ledger::key_find_by_hash(std::string_view hash) const {
    std::lock_guard lock(state_mu_);
    auto it = key_by_hash_.find(hash);
    if (it == key_by_hash_.end()) return status(errc::unauthenticated, "unknown or revoked API key");
    const key_entry& e = keys_.find(it->second)->second;
    // The map lookup already matched; this keeps the final equality check free of early exits.
    if (!key_hash_equal(e.hash, hash)) return status(errc::unauthenticated, "unknown or revoked API key");
    return e.info;
}

result<key_info> sqlite_ledger::key_authenticate(std::string_view secret) const {
    return key_find_by_hash(key_hash(params_.server_secret, secret));
}

result<key_info> sqlite_ledger::key_get(std::string_view key_id) const {
    std::lock_guard lock(state_mu_);
    auto it = keys_.find(key_id);
    if (it == keys_.end()) return status(errc::not_found, "no key '" + std::string(key_id) + "'");
    return it->second.info;
}

std::vector<key_info> sqlite_ledger::key_list(std::optional<std::string_view> user) const {
    std::vector<key_info> out;
    {
        std::lock_guard lock(state_mu_);
        for (const auto& [id, e] : keys_)
            if (!user || e.info.user == *user) out.push_back(e.info);
    }
    std::sort(out.begin(), out.end(), [](const key_info& a, const key_info& b) {
        return a.created_ms != b.created_ms ? a.created_ms < b.created_ms : a.id < b.id;
    });
    return out;
}

status sqlite_ledger::key_revoke(std::string_view key_id) {
    return submit<status>([&]() -> status {
        std::lock_guard lock(state_mu_);
        auto it = keys_.find(key_id);
        if (it == keys_.end()) return status(errc::not_found, "no key '" + std::string(key_id) + "'");
        if (it->second.info.revoked_ms) return ok_status();  // revoking twice changes nothing
        const int64_t now = params_.clk->now_ms();
        MM_SQL_QUERY(q, wdb_, "UPDATE keys SET revoked_ms = ?2 WHERE id = ?1");
        MM_TRY(q.bind(1, key_id).bind(2, now).run());
        it->second.info.revoked_ms = now;
        key_by_hash_.erase(it->second.hash);
        return ok_status();
    });
}

status sqlite_ledger::key_set_limits(std::string_view key_id, const key_limits& limits) {
    MM_TRY(validate(limits));
    return submit<status>([&]() -> status {
        std::lock_guard lock(state_mu_);
        auto it = keys_.find(key_id);
        if (it == keys_.end()) return status(errc::not_found, "no key '" + std::string(key_id) + "'");
        MM_SQL_QUERY(q, wdb_,
                     "UPDATE keys SET budget = ?2, period = ?3, rpm = ?4, max_concurrent = ?5 WHERE id = ?1");
        MM_TRY(q.bind(1, key_id)
                   .bind(2, limits.budget)
                   .bind(3, period_name(limits.budget_period))
                   .bind(4, limits.rpm)
                   .bind(5, limits.max_concurrent)
                   .run());
        it->second.info.limits = limits;  // a new period makes totals_for recompute on next use
        return ok_status();
    });
}

status sqlite_ledger::user_set_budget(std::string_view user, std::optional<micros> budget, period p) {
    MM_TRY(validate_user_name(user));
    if (budget && *budget < 0) return status(errc::invalid_argument, "budget must be >= 0");
    return submit<status>([&]() -> status {
        std::lock_guard lock(state_mu_);
        MM_SQL_QUERY(q, wdb_,
                     "INSERT INTO users (name, budget, period, created_ms) VALUES (?1, ?2, ?3, ?4) "
                     "ON CONFLICT (name) DO UPDATE SET budget = excluded.budget, period = excluded.period");
        MM_TRY(q.bind(1, user).bind(2, budget).bind(3, period_name(p)).bind(4, params_.clk->now_ms()).run());
        users_.insert_or_assign(std::string(user), user_info{std::string(user), budget, p});
        return ok_status();
    });
}

result<user_info> sqlite_ledger::user_get(std::string_view user) const {
    std::lock_guard lock(state_mu_);
    auto it = users_.find(user);
    if (it == users_.end()) return status(errc::not_found, "no user '" + std::string(user) + "'");
    return it->second;
}

}  // namespace mm::services
