// Guest-physical RAM: one shared-memory object, accessed by the VMM's C++ code
// through its own mapping and mapped into guest address windows on demand.
#pragma once

#include "platform/host_memory.h"

#include <bt/result.h>

#include <cstdint>
#include <cstring>

namespace bt::mmu {

class PhysicalMemory {
 public:
  static constexpr std::uint32_t kPageSize = 4096;

  static Result<PhysicalMemory> Create(std::uint64_t bytes);

  std::uint64_t size() const { return memory_.size(); }
  const platform::SharedMemory& shared() const { return memory_; }

  bool Contains(std::uint64_t address, std::uint64_t bytes) const {
    return address <= size() && bytes <= size() - address;
  }
  // The caller has checked Contains().
  std::uint8_t* HostPointer(std::uint64_t address) const { return memory_.data() + address; }

  bool Read(std::uint64_t address, void* data, std::size_t bytes) const {
    if (!Contains(address, bytes)) return false;
    std::memcpy(data, HostPointer(address), bytes);
    return true;
  }
  bool Write(std::uint64_t address, const void* data, std::size_t bytes) {
    if (!Contains(address, bytes)) return false;
    std::memcpy(HostPointer(address), data, bytes);
    return true;
  }

 private:
  explicit PhysicalMemory(platform::SharedMemory memory) : memory_(std::move(memory)) {}
  platform::SharedMemory memory_;
};

}  // namespace bt::mmu
