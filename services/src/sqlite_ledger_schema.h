// sqlite_ledger_schema: the ledger's tables as an ordered list of migration steps. PRAGMA user_version
// holds how many steps a file has had; opening applies the missing ones in one transaction, and a file
// from a newer build (a higher version than this one knows) is refused rather than guessed at.
// Thread safety: functions over a connection the caller owns.
#pragma once

#include <filesystem>
#include <string_view>

#include "common/status.h"
#include "sqlite_ledger_db.h"

namespace mm::services {

// The newest schema version this build knows (the number of migration steps).
int ledger_schema_latest();

// Brings db from its user_version up to target (<= latest). unsupported if the file is newer than latest.
status ledger_schema_migrate(sql_db& db, int target);

// For tests of old files: creates path at `version`, then runs seed_sql (rows an old build would have
// written, or a PRAGMA) in the same connection.
status ledger_schema_create_at(const std::filesystem::path& path, int version, std::string_view seed_sql = {});

}  // namespace mm::services
