#include "common/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <utility>

namespace mm {

namespace {

struct fd_closer {
    int fd;
    ~fd_closer() { if (fd >= 0) ::close(fd); }
};

status os_error(const char* what, const std::filesystem::path& path, int err) {
    return status(errc::io_error, std::string(what) + " " + path.string() + ": " + std::strerror(err));
}

}  // namespace

result<mapped_file> mapped_file::open(const std::filesystem::path& path) {
    fd_closer f{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
    if (f.fd < 0) {
        const int err = errno;
        return status(err == ENOENT ? errc::not_found : errc::io_error,
                      "open " + path.string() + ": " + std::strerror(err));
    }
    struct stat st {};
    if (::fstat(f.fd, &st) != 0) return os_error("stat", path, errno);
    if (!S_ISREG(st.st_mode)) return status(errc::io_error, "open " + path.string() + ": not a regular file");

    mapped_file m;
    if (st.st_size == 0) return m;  // mmap of 0 bytes is an error; an empty span says the same thing
    void* p = ::mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_PRIVATE, f.fd, 0);
    if (p == MAP_FAILED) return os_error("mmap", path, errno);
    m.addr_ = p;
    m.size_ = static_cast<size_t>(st.st_size);
    return m;
}

void mapped_file::drop_pages(std::span<const std::byte> range) const {
    const auto base = reinterpret_cast<uintptr_t>(addr_);
    const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
    const uintptr_t from = std::max(reinterpret_cast<uintptr_t>(range.data()), base);
    const uintptr_t to = std::min(reinterpret_cast<uintptr_t>(range.data()) + range.size(), base + size_);
    const uintptr_t first = (from + page - 1) / page * page, last = to / page * page;  // whole pages only
    if (addr_ && first < last) (void)::madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
}

mapped_file::mapped_file(mapped_file&& o) noexcept
    : addr_(std::exchange(o.addr_, nullptr)), size_(std::exchange(o.size_, 0)) {}

mapped_file& mapped_file::operator=(mapped_file&& o) noexcept {
    if (this != &o) {
        reset();
        addr_ = std::exchange(o.addr_, nullptr);
        size_ = std::exchange(o.size_, 0);
    }
    return *this;
}

mapped_file::~mapped_file() { reset(); }

void mapped_file::reset() noexcept {
    if (addr_) ::munmap(addr_, size_);
    addr_ = nullptr;
    size_ = 0;
}

}  // namespace mm
