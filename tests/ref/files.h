// Test helpers for file bytes: reading a whole file and FNV-1a 64 (the checksum the reader tests compare
// with values computed independently in Python).
#pragma once

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <span>
#include <vector>

namespace mm::test {

inline uint64_t fnv1a64(std::span<const std::byte> b) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (std::byte x : b) h = (h ^ static_cast<uint8_t>(x)) * 0x100000001b3ull;
    return h;
}

inline std::vector<std::byte> read_file(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::vector<char> c((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::vector<std::byte> out(c.size());
    if (!c.empty()) std::memcpy(out.data(), c.data(), c.size());
    return out;
}

}  // namespace mm::test
