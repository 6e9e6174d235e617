// Guest memory-mapped devices that an embedding application provides.
#pragma once

#include <cstdint>

namespace bt {

class MmioDevice {
 public:
  virtual ~MmioDevice() = default;
  // `offset` is relative to the base the device was registered at; `size` is
  // 1, 2, 4 or 8 bytes. Called on the thread that runs the guest.
  virtual std::uint64_t MmioRead(std::uint64_t offset, unsigned size) = 0;
  virtual void MmioWrite(std::uint64_t offset, unsigned size, std::uint64_t value) = 0;
};

}  // namespace bt
