// The admin key: from the config's admin_key, else MMSERVE_ADMIN_KEY, else the one generated at first start.
// Only its hash is ever kept (data_dir/admin_key.hash, mode 0600); a generated key is shown once.
#pragma once

#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>

#include "common/status.h"

namespace mm::services {

// Returns key_hash(server_secret, admin key). A generated key is written to `announce` once, with how to
// keep it; a configured key replaces any stored hash.
result<std::string> admin_key_hash_resolve(const std::filesystem::path& data_dir, const std::string& server_secret,
                                           const std::string& configured, const std::optional<std::string>& from_env,
                                           std::FILE* announce);

}  // namespace mm::services
