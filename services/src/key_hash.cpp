#include "key_hash.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>

#include "common/log.h"

namespace mm::services {
namespace {

constexpr char k_hex[] = "0123456789abcdef";
constexpr char k_url_safe[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
constexpr size_t k_server_secret_bytes = 32;

std::string hex_of(const unsigned char* p, size_t n) {
    std::string out(n * 2, '\0');
    for (size_t i = 0; i < n; ++i) {
        out[2 * i] = k_hex[p[i] >> 4];
        out[2 * i + 1] = k_hex[p[i] & 0xf];
    }
    return out;
}

template <size_t N>
std::array<unsigned char, N> random_bytes() {
    std::array<unsigned char, N> b{};
    MM_ASSERT(RAND_bytes(b.data(), static_cast<int>(N)) == 1);
    return b;
}

bool is_lower_hex(std::string_view s) {
    for (char c : s)
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    return true;
}

status errno_status(const std::string& what) { return status(errc::io_error, what + ": " + std::strerror(errno)); }

struct fd_close {
    int fd = -1;
    ~fd_close() {
        if (fd >= 0) ::close(fd);
    }
};

// Reads a secret file; not_found when it does not exist.
result<std::string> server_secret_read(const std::filesystem::path& p) {
    fd_close f{::open(p.c_str(), O_RDONLY | O_CLOEXEC)};
    if (f.fd < 0) {
        if (errno == ENOENT) return status(errc::not_found, p.string());
        return errno_status("opening " + p.string());
    }
    std::string text(2 * k_server_secret_bytes + 2, '\0');  // room for a trailing newline and one byte too many
    size_t got = 0;
    while (got < text.size()) {
        const ssize_t n = ::read(f.fd, text.data() + got, text.size() - got);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return errno_status("reading " + p.string());
        if (n == 0) break;
        got += static_cast<size_t>(n);
    }
    text.resize(got);
    if (!text.empty() && text.back() == '\n') text.pop_back();  // tolerate a hand-edited file
    if (text.size() != 2 * k_server_secret_bytes || !is_lower_hex(text))
        return status(errc::invalid_argument,
                      p.string() + ": not a server secret (want 64 lowercase hex chars); refusing to replace it");
    struct stat st {};
    if (::fstat(f.fd, &st) == 0 && (st.st_mode & 077) != 0)
        log_warn("server_secret_mode", {{"path", p.string()}, {"detail", "readable by group or others; chmod 600"}});
    return text;
}

status write_all_synced(int fd, std::string_view bytes, const std::string& what) {
    size_t done = 0;
    while (done < bytes.size()) {
        const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return errno_status("writing " + what);
        done += static_cast<size_t>(n);
    }
    if (::fsync(fd) != 0) return errno_status("syncing " + what);
    return ok_status();
}

}  // namespace

std::string key_secret_generate() {
    const auto b = random_bytes<36>();  // 36 bytes = 288 bits = exactly 48 six-bit chars
    std::string out(k_key_secret_prefix);
    out.reserve(k_key_secret_len);
    for (size_t i = 0; i < b.size(); i += 3) {
        const uint32_t v = (uint32_t{b[i]} << 16) | (uint32_t{b[i + 1]} << 8) | b[i + 2];
        for (int shift = 18; shift >= 0; shift -= 6) out.push_back(k_url_safe[(v >> shift) & 63]);
    }
    return out;
}

std::string key_id_generate() {
    const auto b = random_bytes<8>();
    return "key_" + hex_of(b.data(), b.size());
}

namespace {

// An HMAC-SHA-256 context keyed with one server secret, per thread: every request hashes its bearer key,
// and the one-shot HMAC() looks the digest up and derives the key's pads each time.
class keyed_hmac {
public:
    ~keyed_hmac() {
        EVP_MAC_CTX_free(ctx_);
        EVP_MAC_free(mac_);
    }
    // The MAC of data under secret, written to out (32 bytes).
    void sign(std::string_view secret, std::string_view data, unsigned char* out) {
        if (mac_ == nullptr) MM_ASSERT((mac_ = EVP_MAC_fetch(nullptr, "HMAC", nullptr)) != nullptr);
        const bool same_key = ctx_ != nullptr && secret == secret_;
        if (!same_key) {
            EVP_MAC_CTX_free(ctx_);
            MM_ASSERT((ctx_ = EVP_MAC_CTX_new(mac_)) != nullptr);
            char digest[] = "SHA256";
            const OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", digest, 0), OSSL_PARAM_construct_end()};
            MM_ASSERT(EVP_MAC_init(ctx_, reinterpret_cast<const unsigned char*>(secret.data()), secret.size(), params) == 1);
            secret_ = std::string(secret);
        } else {
            MM_ASSERT(EVP_MAC_init(ctx_, nullptr, 0, nullptr) == 1);  // the same key again, its pads kept
        }
        size_t n = 0;
        MM_ASSERT(EVP_MAC_update(ctx_, reinterpret_cast<const unsigned char*>(data.data()), data.size()) == 1);
        MM_ASSERT(EVP_MAC_final(ctx_, out, &n, 32) == 1 && n == 32);
    }

private:
    EVP_MAC* mac_ = nullptr;
    EVP_MAC_CTX* ctx_ = nullptr;
    std::string secret_;
};

}  // namespace

std::string key_hash(std::string_view server_secret, std::string_view key) {
    thread_local keyed_hmac hmac;
    unsigned char mac[32];
    hmac.sign(server_secret, key, mac);
    return hex_of(mac, sizeof mac);
}

std::string sha256_hex(std::string_view bytes) {
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), d);
    return hex_of(d, sizeof d);
}

bool key_hash_equal(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

result<std::string> server_secret_load_or_create(const std::filesystem::path& data_dir) {
    std::error_code ec;
    std::filesystem::create_directories(data_dir, ec);
    if (ec) return status(errc::io_error, "creating " + data_dir.string() + ": " + ec.message());
    const auto path = data_dir / "server_secret";

    auto existing = server_secret_read(path);
    if (existing || existing.error().code() != errc::not_found) return existing;

    // Written whole to a private temp file, then linked into place: a crash never leaves a short secret
    // behind, and of two processes starting at once, the second to link adopts the first one's secret.
    const auto b = random_bytes<k_server_secret_bytes>();
    const std::string secret = hex_of(b.data(), b.size());
    const auto tmp = data_dir / ("server_secret.tmp." + std::to_string(::getpid()));
    {
        fd_close f{::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)};
        if (f.fd < 0) return errno_status("creating " + tmp.string());
        if (::fchmod(f.fd, 0600) != 0) return errno_status("chmod " + tmp.string());
        if (auto s = write_all_synced(f.fd, secret + "\n", tmp.string()); !s) {
            ::unlink(tmp.c_str());
            return s;
        }
    }
    const bool linked = ::link(tmp.c_str(), path.c_str()) == 0;
    const int link_errno = errno;
    ::unlink(tmp.c_str());
    if (!linked) {
        if (link_errno == EEXIST) return server_secret_read(path);
        errno = link_errno;
        return errno_status("linking " + path.string());
    }
    fd_close dir{::open(data_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
    if (dir.fd < 0 || ::fsync(dir.fd) != 0) return errno_status("syncing " + data_dir.string());
    return secret;
}

status private_file_replace(const std::filesystem::path& file, std::string_view text) {
    const auto tmp = file.string() + ".tmp." + std::to_string(::getpid());
    {
        fd_close f{::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)};
        if (f.fd < 0) return errno_status("creating " + tmp);
        if (::fchmod(f.fd, 0600) != 0) return errno_status("chmod " + tmp);
        if (auto s = write_all_synced(f.fd, text, tmp); !s) {
            ::unlink(tmp.c_str());
            return s;
        }
    }
    if (::rename(tmp.c_str(), file.c_str()) != 0) {
        const status s = errno_status("renaming " + tmp);
        ::unlink(tmp.c_str());
        return s;
    }
    const auto dir_path = file.has_parent_path() ? file.parent_path() : std::filesystem::path(".");
    fd_close dir{::open(dir_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
    if (dir.fd < 0 || ::fsync(dir.fd) != 0) return errno_status("syncing " + dir_path.string());
    return ok_status();
}

}  // namespace mm::services
