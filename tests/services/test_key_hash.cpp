// Key material: HMAC-SHA-256 against RFC 4231's published vectors, SHA-256 against FIPS 180's, the
// shape of generated secrets and ids, constant-time equality, and the server secret file.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <cctype>
#include <fstream>
#include <set>
#include <string>

#include "key_hash.h"

namespace mm::services {
namespace {

namespace fs = std::filesystem;

struct temp_dir {
    fs::path path;
    temp_dir() {
        std::string t = (fs::temp_directory_path() / "mm_key_hash_XXXXXX").string();
        path = ::mkdtemp(t.data());
    }
    ~temp_dir() { fs::remove_all(path); }
};

TEST(key_hash, hmac_sha256_matches_rfc4231) {
    struct rfc_case { const char* name; std::string key; std::string data; const char* want; };
    const rfc_case cases[] = {
        {"test case 1", std::string(20, '\x0b'), "Hi There",
         "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
        {"test case 2 (key shorter than the output)", "Jefe", "what do ya want for nothing?",
         "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
        {"test case 3", std::string(20, '\xaa'), std::string(50, '\xdd'),
         "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"},
        {"test case 6 (key longer than the block)", std::string(131, '\xaa'),
         "Test Using Larger Than Block-Size Key - Hash Key First",
         "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"},
    };
    for (const auto& c : cases) EXPECT_EQ(key_hash(c.key, c.data), c.want) << c.name;
}

TEST(key_hash, sha256_matches_fips180_examples) {
    struct sha_case { const char* name; std::string data; const char* want; };
    const sha_case cases[] = {
        {"empty", "", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", "abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"two blocks", "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
    };
    for (const auto& c : cases) EXPECT_EQ(sha256_hex(c.data), c.want) << c.name;
}

TEST(key_hash, secrets_are_url_safe_prefixed_and_distinct) {
    std::set<std::string> seen;
    for (int i = 0; i < 1000; ++i) {
        const std::string s = key_secret_generate();
        ASSERT_EQ(s.size(), k_key_secret_len) << s;
        ASSERT_EQ(s.substr(0, 3), "mm-") << s;
        for (char c : s.substr(3))
            ASSERT_TRUE(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_') << s;
        seen.insert(s);
    }
    EXPECT_EQ(seen.size(), 1000u) << "48 random chars never repeat in 1000 draws";
}

TEST(key_hash, ids_are_key_and_16_hex) {
    for (int i = 0; i < 100; ++i) {
        const std::string id = key_id_generate();
        ASSERT_EQ(id.size(), 20u) << id;
        ASSERT_EQ(id.substr(0, 4), "key_") << id;
        ASSERT_EQ(id.find_first_not_of("0123456789abcdef", 4), std::string::npos) << id;
    }
}

TEST(key_hash, equality_table) {
    struct eq_case { const char* name; std::string a, b; bool want; };
    const eq_case cases[] = {
        {"same", "abcdef", "abcdef", true},
        {"first byte differs", "xbcdef", "abcdef", false},
        {"last byte differs", "abcdex", "abcdef", false},
        {"prefix only", "abc", "abcdef", false},
        {"both empty", "", "", true},
    };
    for (const auto& c : cases) EXPECT_EQ(key_hash_equal(c.a, c.b), c.want) << c.name;
}

TEST(key_hash, server_secret_is_created_private_and_reused) {
    temp_dir d;
    const fs::path data_dir = d.path / "data";  // does not exist yet
    auto first = server_secret_load_or_create(data_dir);
    ASSERT_TRUE(first) << first.error().to_string();
    EXPECT_EQ(first->size(), 64u);
    EXPECT_EQ(first->find_first_not_of("0123456789abcdef"), std::string::npos);

    struct stat st {};
    ASSERT_EQ(::stat((data_dir / "server_secret").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);

    auto second = server_secret_load_or_create(data_dir);
    ASSERT_TRUE(second) << second.error().to_string();
    EXPECT_EQ(*second, *first) << "a restart must keep the secret, or every key stops working";

    temp_dir other;
    auto elsewhere = server_secret_load_or_create(other.path);
    ASSERT_TRUE(elsewhere);
    EXPECT_NE(*elsewhere, *first) << "each installation draws its own";
}

TEST(key_hash, a_damaged_server_secret_is_refused_not_replaced) {
    struct bad_case { const char* name; std::string content; };
    const bad_case cases[] = {
        {"empty", ""},
        {"short", "abcd\n"},
        {"not hex", std::string(64, 'z')},
        {"upper case", std::string(64, 'A')},
    };
    for (const auto& c : cases) {
        temp_dir d;
        { std::ofstream(d.path / "server_secret") << c.content; }
        auto s = server_secret_load_or_create(d.path);
        ASSERT_FALSE(s) << c.name;
        EXPECT_EQ(s.error().code(), errc::invalid_argument) << c.name;
        std::ifstream in(d.path / "server_secret");
        std::string after((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        EXPECT_EQ(after, c.content) << c.name << ": the file must be left as it was";
    }
}

}  // namespace
}  // namespace mm::services
