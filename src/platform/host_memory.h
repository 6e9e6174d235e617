// Host virtual-memory primitives: the RAM memfd and the guest address window.
// The only place (with host_memory_posix.cc) that knows about mmap and memfd.
#pragma once

#include <bt/result.h>

#include <cstddef>
#include <cstdint>

namespace bt::platform {

enum class Protection { kNone, kRead, kReadWrite, kReadWriteExecute };

// Anonymous shared memory (a memfd on Linux) that can be mapped several times.
class SharedMemory {
 public:
  static Result<SharedMemory> Create(std::size_t bytes, const char* name);
  SharedMemory(SharedMemory&& other) noexcept;
  SharedMemory& operator=(SharedMemory&& other) noexcept;
  ~SharedMemory();

  int handle() const { return fd_; }
  std::size_t size() const { return size_; }
  // A mapping of the whole object for the VMM's own accesses.
  std::uint8_t* data() const { return data_; }

 private:
  SharedMemory(int fd, std::size_t size, std::uint8_t* data) : fd_(fd), size_(size), data_(data) {}
  int fd_ = -1;
  std::size_t size_ = 0;
  std::uint8_t* data_ = nullptr;
};

// A reserved 4 GiB range of host addresses, aligned to 4 GiB and surrounded by
// 4 GiB of inaccessible guard space on either side, so that the low 32 bits of
// a host address inside it are the guest address and a string instruction
// that runs off either end faults instead of touching host memory.
class AddressWindow {
 public:
  static constexpr std::uint64_t kSize = std::uint64_t{1} << 32;

  static Result<AddressWindow> Reserve();
  AddressWindow(AddressWindow&& other) noexcept;
  AddressWindow& operator=(AddressWindow&& other) noexcept;
  ~AddressWindow();

  std::uint8_t* base() const { return base_; }
  bool Contains(std::uintptr_t host_address) const {
    return host_address - reinterpret_cast<std::uintptr_t>(base_) < kSize;
  }
  // True for addresses in the guard space on either side of the window.
  bool InGuard(std::uintptr_t host_address) const {
    return host_address - (reinterpret_cast<std::uintptr_t>(base_) - kSize) < 3 * kSize &&
           !Contains(host_address);
  }

  // Maps [offset, offset + bytes) of `memory` at window address `address`;
  // with `populate`, fills the host page tables now rather than at the first
  // access to each page, which then costs no host fault.
  bool Map(std::uint32_t address, const SharedMemory& memory, std::uint64_t offset,
           std::size_t bytes, Protection protection, bool populate);
  bool Protect(std::uint32_t address, std::size_t bytes, Protection protection);
  // Makes the range inaccessible again (a later access faults).
  bool Unmap(std::uint32_t address, std::size_t bytes);

 private:
  explicit AddressWindow(std::uint8_t* base) : base_(base) {}
  std::uint8_t* base_ = nullptr;
};

// Private page-granular memory: the code cache (read-write-execute) and the
// CPU state block with its poll page.
class PageMemory {
 public:
  static Result<PageMemory> Allocate(std::size_t bytes, Protection protection);
  PageMemory(PageMemory&& other) noexcept;
  PageMemory& operator=(PageMemory&& other) noexcept;
  ~PageMemory();
  std::uint8_t* data() const { return data_; }
  std::size_t size() const { return size_; }
  // Thread-safe; other threads see the change before this returns.
  bool Protect(std::size_t offset, std::size_t bytes, Protection protection);

 private:
  PageMemory(std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  std::uint8_t* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace bt::platform
