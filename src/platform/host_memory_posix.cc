#include "platform/host_memory.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

namespace bt::platform {
namespace {

int ToPosix(Protection protection) {
  switch (protection) {
    case Protection::kNone: return PROT_NONE;
    case Protection::kRead: return PROT_READ;
    case Protection::kReadWrite: return PROT_READ | PROT_WRITE;
    case Protection::kReadWriteExecute: return PROT_READ | PROT_WRITE | PROT_EXEC;
  }
  return PROT_NONE;
}

Error SystemError(const std::string& what) { return Error{what + ": " + std::strerror(errno)}; }

}  // namespace

Result<SharedMemory> SharedMemory::Create(std::size_t bytes, const char* name) {
  int fd = memfd_create(name, MFD_CLOEXEC);
  if (fd < 0) return SystemError("memfd_create");
  if (ftruncate(fd, static_cast<off_t>(bytes)) != 0) {
    Error error = SystemError("cannot size guest RAM to " + std::to_string(bytes) + " bytes");
    close(fd);
    return error;
  }
  void* data = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
  if (data == MAP_FAILED) {
    Error error = SystemError("cannot map guest RAM");
    close(fd);
    return error;
  }
  return SharedMemory(fd, bytes, static_cast<std::uint8_t*>(data));
}

SharedMemory::SharedMemory(SharedMemory&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      size_(std::exchange(other.size_, 0)),
      data_(std::exchange(other.data_, nullptr)) {}

SharedMemory& SharedMemory::operator=(SharedMemory&& other) noexcept {
  std::swap(fd_, other.fd_);
  std::swap(size_, other.size_);
  std::swap(data_, other.data_);
  return *this;
}

SharedMemory::~SharedMemory() {
  if (data_) munmap(data_, size_);
  if (fd_ >= 0) close(fd_);
}

Result<AddressWindow> AddressWindow::Reserve() {
  // Reserve 4 GiB of alignment slack plus guard, window, guard.
  const std::size_t span = 4 * kSize;
  void* raw = mmap(nullptr, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (raw == MAP_FAILED) return SystemError("cannot reserve the guest address window");
  auto start = reinterpret_cast<std::uintptr_t>(raw);
  std::uintptr_t base = ((start + kSize - 1) & ~(kSize - 1)) + kSize;
  std::uintptr_t keep_begin = base - kSize, keep_end = base + 2 * kSize;
  if (keep_begin > start) munmap(raw, keep_begin - start);
  if (start + span > keep_end) munmap(reinterpret_cast<void*>(keep_end), start + span - keep_end);
  return AddressWindow(reinterpret_cast<std::uint8_t*>(base));
}

AddressWindow::AddressWindow(AddressWindow&& other) noexcept
    : base_(std::exchange(other.base_, nullptr)) {}

AddressWindow& AddressWindow::operator=(AddressWindow&& other) noexcept {
  std::swap(base_, other.base_);
  return *this;
}

AddressWindow::~AddressWindow() {
  if (base_) munmap(base_ - kSize, 3 * kSize);
}

bool AddressWindow::Map(std::uint32_t address, const SharedMemory& memory, std::uint64_t offset,
                        std::size_t bytes, Protection protection, bool populate) {
  void* at = base_ + address;
  return mmap(at, bytes, ToPosix(protection),
              MAP_SHARED | MAP_FIXED | (populate ? MAP_POPULATE : 0), memory.handle(),
              static_cast<off_t>(offset)) == at;
}

bool AddressWindow::Protect(std::uint32_t address, std::size_t bytes, Protection protection) {
  return mprotect(base_ + address, bytes, ToPosix(protection)) == 0;
}

bool AddressWindow::Unmap(std::uint32_t address, std::size_t bytes) {
  void* at = base_ + address;
  return mmap(at, bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1,
              0) == at;
}

Result<PageMemory> PageMemory::Allocate(std::size_t bytes, Protection protection) {
  void* data = mmap(nullptr, bytes, ToPosix(protection), MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (data == MAP_FAILED) return SystemError("cannot allocate " + std::to_string(bytes) + " bytes");
  return PageMemory(static_cast<std::uint8_t*>(data), bytes);
}

PageMemory::PageMemory(PageMemory&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}

PageMemory& PageMemory::operator=(PageMemory&& other) noexcept {
  std::swap(data_, other.data_);
  std::swap(size_, other.size_);
  return *this;
}

PageMemory::~PageMemory() {
  if (data_) munmap(data_, size_);
}

bool PageMemory::Protect(std::size_t offset, std::size_t bytes, Protection protection) {
  return mprotect(data_ + offset, bytes, ToPosix(protection)) == 0;
}

}  // namespace bt::platform
