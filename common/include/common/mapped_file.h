// mapped_file: a whole file mapped read-only into memory (RAII). Model weights are used in place from it.
// Thread safety: immutable after open; share freely (e.g. through a shared_ptr).
#pragma once

#include <cstddef>
#include <filesystem>
#include <span>

#include "common/status.h"

namespace mm {

class mapped_file {
public:
    // Maps the whole file. An empty file gives an empty span (nothing is mapped).
    static result<mapped_file> open(const std::filesystem::path& path);

    mapped_file() = default;
    mapped_file(const mapped_file&) = delete;
    mapped_file& operator=(const mapped_file&) = delete;
    mapped_file(mapped_file&& o) noexcept;
    mapped_file& operator=(mapped_file&& o) noexcept;
    ~mapped_file();

    std::span<const std::byte> bytes() const { return {static_cast<const std::byte*>(addr_), size_}; }
    size_t size() const { return size_; }

    // Tells the kernel that the whole pages inside `range` will not be read again, so it drops them from
    // this process now (they are clean: a later read pages them back in from the file). Bytes outside the
    // mapping are ignored.
    void drop_pages(std::span<const std::byte> range) const;

private:
    void reset() noexcept;

    void* addr_ = nullptr;
    size_t size_ = 0;
};

}  // namespace mm
