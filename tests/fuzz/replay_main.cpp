// Runs a fuzz target's LLVMFuzzerTestOneInput over every file in the given directories (or files), for builds
// without libFuzzer: the seed corpus then doubles as a regression test. Fails when it finds no input at all.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

namespace fs = std::filesystem;

bool run_one(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    if (!in) {
        std::fprintf(stderr, "cannot read %s\n", p.c_str());
        return false;
    }
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    // A fresh heap copy of exactly the input's size, as libFuzzer passes it.
    std::vector<uint8_t> copy(bytes.begin(), bytes.end());
    return LLVMFuzzerTestOneInput(copy.data(), copy.size()) == 0;
}

}  // namespace

int main(int argc, char** argv) {
    size_t n_run = 0, n_failed = 0;
    for (int i = 1; i < argc; ++i) {
        std::vector<fs::path> files;
        std::error_code ec;
        if (fs::is_directory(argv[i], ec)) {
            for (const auto& e : fs::directory_iterator(argv[i], ec))
                if (e.is_regular_file()) files.push_back(e.path());
            std::sort(files.begin(), files.end());
        } else {
            files.emplace_back(argv[i]);
        }
        for (const auto& f : files) {
            ++n_run;
            if (!run_one(f)) {
                ++n_failed;
                std::fprintf(stderr, "failed: %s\n", f.c_str());
            }
        }
    }
    std::printf("replayed %zu inputs, %zu failed\n", n_run, n_failed);
    return n_run > 0 && n_failed == 0 ? 0 : 1;
}
