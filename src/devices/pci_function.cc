#include "devices/pci_function.h"

#include <cassert>

namespace bt::devices {

PciFunction::PciFunction(std::initializer_list<Register> registers) {
  for (const Register& reg : registers) {
    assert(reg.offset + reg.size <= 256);
    for (unsigned i = 0; i < reg.size; ++i) {
      config_[reg.offset + i] = static_cast<std::uint8_t>(reg.reset_value >> (8 * i));
      writable_[reg.offset + i] = static_cast<std::uint8_t>(reg.writable >> (8 * i));
    }
  }
}

std::uint32_t PciFunction::Read(std::uint8_t offset, unsigned size) const {
  assert(offset + size <= 256);
  std::uint32_t value = 0;
  for (unsigned i = 0; i < size; ++i) value |= std::uint32_t{config_[offset + i]} << (8 * i);
  return value;
}

void PciFunction::Write(std::uint8_t offset, unsigned size, std::uint32_t value) {
  assert(offset + size <= 256);
  for (unsigned i = 0; i < size; ++i) {
    const auto byte = static_cast<std::uint8_t>(value >> (8 * i));
    std::uint8_t& config = config_[offset + i];
    config = static_cast<std::uint8_t>((config & ~writable_[offset + i]) |
                                       (byte & writable_[offset + i]));
  }
}

}  // namespace bt::devices
