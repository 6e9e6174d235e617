// Guest I/O-port devices that an embedding application provides.
#pragma once

#include <cstdint>

namespace bt {

class PortDevice {
 public:
  virtual ~PortDevice() = default;
  // `offset` is relative to the base the device was registered at; `size` is
  // 1, 2 or 4 bytes. Called on the thread that runs the guest.
  virtual std::uint32_t PortRead(std::uint16_t offset, unsigned size) = 0;
  virtual void PortWrite(std::uint16_t offset, unsigned size, std::uint32_t value) = 0;
};

}  // namespace bt
