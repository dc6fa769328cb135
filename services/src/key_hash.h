// key_hash: the meter's key material. API keys are random secrets shown once; the ledger keeps only their
// HMAC-SHA-256 under a per-installation server secret, so a copied database does not reveal usable keys
// and cannot be brute-forced without the secret file beside it.
// Thread safety: thread-safe (no state; OpenSSL's RNG and HMAC are thread-safe since 1.1).
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "common/status.h"

namespace mm::services {

inline constexpr std::string_view k_key_secret_prefix = "mm-";
inline constexpr size_t k_key_secret_len = 51;     // "mm-" + 48 url-safe chars (36 random bytes)
inline constexpr size_t k_key_display_prefix = 12;  // what listings show of a secret

// "mm-" + 48 chars of [A-Za-z0-9_-] from the CSPRNG (OpenSSL RAND_bytes). Aborts if the RNG fails:
// a server that cannot draw random bytes must not mint keys.
std::string key_secret_generate();

// "key_" + 16 lowercase hex chars from the CSPRNG: a key's public id.
std::string key_id_generate();

// HMAC-SHA-256(key = server_secret's bytes as given, message = key), as 64 lowercase hex chars.
std::string key_hash(std::string_view server_secret, std::string_view key);

// SHA-256 of bytes as 64 lowercase hex chars (idempotency body hashes).
std::string sha256_hex(std::string_view bytes);

// Equality in time that depends only on the lengths, not on where the first difference is.
bool key_hash_equal(std::string_view a, std::string_view b);

// The server secret: 64 hex chars (32 random bytes) in data_dir/server_secret, created mode 0600 on
// first start (data_dir too, if missing) and read back on every later one. A file that is not 64 hex
// chars is refused rather than replaced: replacing it would silently invalidate every key.
result<std::string> server_secret_load_or_create(const std::filesystem::path& data_dir);

// Replaces file with text, owner-only (0600), atomically and durably: a private temp file, fsynced, renamed
// over the old one, the folder fsynced. For the other key material kept in the data dir (the admin key hash).
status private_file_replace(const std::filesystem::path& file, std::string_view text);

}  // namespace mm::services
