// The shared folder's models and goldens (../shared, as MM_SHARED_DIR), for tests and benchmarks that
// read them in place.
#pragma once

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

namespace mm::test {

inline std::filesystem::path shared_path(const std::string& relative) {
    return std::filesystem::path(MM_SHARED_DIR) / relative;
}

inline std::string read_text(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// A golden JSON of ../shared/golden/text; a missing or broken file parses as discarded and fails the test.
inline nlohmann::json text_golden(const std::string& name) {
    return nlohmann::json::parse(read_text(shared_path("golden/text/" + name)), nullptr, false);
}

}  // namespace mm::test
