#include "admin_key.h"

#include <fcntl.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "key_hash.h"

namespace mm::services {
namespace {

status write_private(const std::filesystem::path& file, const std::string& text) {
    const std::filesystem::path tmp = file.string() + ".tmp";
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return status(errc::io_error, "cannot write " + tmp.string());
    const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
    ::close(fd);
    if (!ok || ::rename(tmp.c_str(), file.c_str()) != 0) return status(errc::io_error, "cannot write " + file.string());
    return ok_status();
}

}  // namespace

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
        MM_TRY(write_private(file, hash + "\n"));  // the configured key is the admin key from now on
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
    MM_TRY(write_private(file, hash + "\n"));
    std::fprintf(announce,
                 "mmserve: generated the admin key (shown this once; only its hash is kept in %s):\n  %s\n"
                 "  set it as admin_key in the config or MMSERVE_ADMIN_KEY to choose your own.\n",
                 file.c_str(), key.c_str());
    std::fflush(announce);
    return hash;
}

}  // namespace mm::services
