// `mmserve keys ...`, `mmserve users ...` and `mmserve usage`: the admin API from the command line, over HTTP to a running
// server (the ledger belongs to that server's process; a second process must not open it).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mm::services {

// Returns the process exit code: 0 done, 1 the server refused or could not be reached, 2 usage error.
// admin_key_env: MMSERVE_ADMIN_KEY as main() read it.
int admin_cli(std::string_view command, const std::vector<std::string_view>& args,
              const std::optional<std::string>& admin_key_env);

}  // namespace mm::services
