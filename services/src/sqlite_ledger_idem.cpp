// sqlite_ledger: Idempotency-Key records (DESIGN meter rule 7) and the response cache (rule 8).
// Records go through the writer, so of several concurrent first attempts exactly one is told to run.
#include "sqlite_ledger.h"

namespace mm::services {
namespace {

constexpr int64_t k_idem_purge_every_ms = 3600 * 1000;

status no_running_record(std::string_view key_id, std::string_view idem_key) {
    return status(errc::not_found,
                  "no running idempotency record for key '" + std::string(key_id) + "', '" + std::string(idem_key) + "'");
}

idem_begin_result verdict_only(idem_verdict v) {
    idem_begin_result r;
    r.verdict = v;
    return r;
}

}  // namespace

result<idem_begin_result> sqlite_ledger::idem_begin(std::string_view key_id, std::string_view idem_key,
                                                    std::string_view body_hash) {
    if (idem_key.empty() || idem_key.size() > 255)
        return status(errc::invalid_argument, "Idempotency-Key must be 1 to 255 bytes");
    return submit<result<idem_begin_result>>([&]() -> result<idem_begin_result> {
        const int64_t now = params_.clk->now_ms();
        const int64_t expired_at = now - k_idempotency_ttl_ms;  // created at or before this: forgotten
        if (now - last_idem_purge_ms_ >= k_idem_purge_every_ms) {
            MM_SQL_QUERY(q, wdb_, "DELETE FROM idempotency WHERE created_ms <= ?1");
            MM_TRY(q.bind(1, expired_at).run());
            last_idem_purge_ms_ = now;
        }
        {
            MM_SQL_QUERY(q, wdb_,
                         "SELECT body_hash, state, http_status, content_type, body, created_ms FROM idempotency "
                         "WHERE key_id = ?1 AND idem_key = ?2");
            auto row = q.bind(1, key_id).bind(2, idem_key).step();
            if (!row) return row.error();
            if (*row && q.int_at(5) > expired_at) {
                if (q.text_at(0) != body_hash) return verdict_only(idem_verdict::mismatch);
                if (q.text_at(1) == "running") return verdict_only(idem_verdict::in_flight);
                if (q.int_at(2) == 0) return verdict_only(idem_verdict::not_kept);
                return idem_begin_result{.verdict = idem_verdict::replay,
                                         .response = {.http_status = static_cast<int>(q.int_at(2)),
                                                      .content_type = q.text_at(3),
                                                      .body = q.text_at(4)}};
            }
        }
        // Absent or expired: this attempt runs. REPLACE drops an expired record the purge has not reached.
        MM_SQL_QUERY(q, wdb_,
                     "INSERT OR REPLACE INTO idempotency (key_id, idem_key, body_hash, state, created_ms) "
                     "VALUES (?1, ?2, ?3, 'running', ?4)");
        MM_TRY(q.bind(1, key_id).bind(2, idem_key).bind(3, body_hash).bind(4, now).run());
        return verdict_only(idem_verdict::run);
    });
}

status sqlite_ledger::idem_finish(std::string_view key_id, std::string_view idem_key, const stored_response& response) {
    return submit<status>([&]() -> status {
        MM_SQL_QUERY(q, wdb_,
                     "UPDATE idempotency SET state = 'done', http_status = ?3, content_type = ?4, body = ?5 "
                     "WHERE key_id = ?1 AND idem_key = ?2 AND state = 'running'");
        MM_TRY(q.bind(1, key_id)
                   .bind(2, idem_key)
                   .bind(3, int64_t{response.http_status})
                   .bind(4, response.content_type)
                   .bind_blob(5, response.body)
                   .run());
        return q.changes() == 1 ? ok_status() : no_running_record(key_id, idem_key);
    });
}

status sqlite_ledger::idem_abandon(std::string_view key_id, std::string_view idem_key) {
    return submit<status>([&]() -> status {
        MM_SQL_QUERY(q, wdb_, "DELETE FROM idempotency WHERE key_id = ?1 AND idem_key = ?2 AND state = 'running'");
        MM_TRY(q.bind(1, key_id).bind(2, idem_key).run());
        return q.changes() == 1 ? ok_status() : no_running_record(key_id, idem_key);
    });
}

result<int64_t> sqlite_ledger::idem_purge_expired() {
    return submit<result<int64_t>>([&]() -> result<int64_t> {
        const int64_t now = params_.clk->now_ms();
        MM_SQL_QUERY(q, wdb_, "DELETE FROM idempotency WHERE created_ms <= ?1");
        MM_TRY(q.bind(1, now - k_idempotency_ttl_ms).run());
        last_idem_purge_ms_ = now;
        return int64_t{q.changes()};
    });
}

std::optional<stored_response> sqlite_ledger::cache_get(std::string_view cache_key) const {
    return cache_.get(cache_key);
}

void sqlite_ledger::cache_put(std::string_view cache_key, stored_response response) {
    cache_.put(cache_key, std::move(response));
}

}  // namespace mm::services
