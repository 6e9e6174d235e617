// The 256-byte configuration space of one PCI function (PCI Local Bus
// Specification 3.0, chapter 6): the registers a chip defines, each with its
// value at reset and the bits software may change. Everything else -
// reserved registers, read-only bits, the IDs - keeps its value, so a write
// there changes nothing, as on the chip. Status bits that a write of 1 clears
// are never set (no errors happen here), so they are simply read-only.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>

namespace bt::devices {

class PciFunction {
 public:
  // `size` bytes (1, 2 or 4) at `offset`, little-endian like the bus.
  struct Register {
    std::uint8_t offset;
    std::uint8_t size;
    std::uint32_t reset_value;
    std::uint32_t writable;  // bits software may change
  };

  // The header's standard registers, which every function has.
  static constexpr std::uint8_t kVendorId = 0x00;
  static constexpr std::uint8_t kDeviceId = 0x02;
  static constexpr std::uint8_t kCommand = 0x04;
  static constexpr std::uint8_t kStatus = 0x06;
  static constexpr std::uint8_t kRevisionAndClass = 0x08;  // revision, then 3 class bytes
  static constexpr std::uint8_t kLatencyTimer = 0x0D;
  static constexpr std::uint8_t kHeaderType = 0x0E;

  // Registers not listed read 0 and are read-only.
  explicit PciFunction(std::initializer_list<Register> registers);

  // `size` bytes from `offset`; offset + size must not pass 256.
  std::uint32_t Read(std::uint8_t offset, unsigned size) const;
  void Write(std::uint8_t offset, unsigned size, std::uint32_t value);

 private:
  std::array<std::uint8_t, 256> config_{};
  std::array<std::uint8_t, 256> writable_{};
};

}  // namespace bt::devices
