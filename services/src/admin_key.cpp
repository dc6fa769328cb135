#include "admin_key.h"

#include <fstream>

#include "key_hash.h"

namespace mm::services {

result<std::string> admin_key_hash_resolve(const std::filesystem::path& data_dir, const std::string& server_secret,
                                           const std::string& configured, const std::optional<std::string>& from_env,
                                           std::FILE* announce) {
    const std::filesystem::path file = data_dir / "admin_key.hash";
    std::string key = configured;
    if (key.empty() && from_env) {
        if (from_env->size() < 16) return status(errc::invalid_argument, "MMSERVE_ADMIN_KEY: must be at least 16 characters");
        key = *from_env;
    }
    if (!key.empty()) {
        const std::string hash = key_hash(server_secret, key);
        MM_TRY(private_file_replace(file, hash + "\n"));  // the configured key is the admin key from now on
        return hash;
    }
    if (std::ifstream in{file}) {
        std::string hash;
        in >> hash;
        if (hash.size() != 64) return status(errc::corrupt_file, file.string() + ": not a key hash; delete it to make a new admin key");
        return hash;
    }
    key = "mm-admin-" + key_secret_generate().substr(k_key_secret_prefix.size());
    const std::string hash = key_hash(server_secret, key);
    MM_TRY(private_file_replace(file, hash + "\n"));
    std::fprintf(announce,
                 "mmserve: generated the admin key (shown this once; only its hash is kept in %s):\n  %s\n"
                 "  set it as admin_key in the config or MMSERVE_ADMIN_KEY to choose your own.\n",
                 file.c_str(), key.c_str());
    std::fflush(announce);
    return hash;
}

}  // namespace mm::services
