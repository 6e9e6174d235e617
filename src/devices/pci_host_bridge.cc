#include "devices/pci_host_bridge.h"

#include <algorithm>

namespace bt::devices {
namespace {

constexpr std::uint16_t kIntel = 0x8086;
constexpr std::uint32_t kNoDevice = 0xFFFFFFFF;

// The address register's fields (PCI Local Bus Specification 3.0, 3.2.2.3.2).
unsigned Bus(std::uint32_t address) { return (address >> 16) & 0xFF; }
unsigned Device(std::uint32_t address) { return (address >> 11) & 0x1F; }
unsigned Function(std::uint32_t address) { return (address >> 8) & 0x7; }
std::uint8_t Register(std::uint32_t address) { return address & 0xFC; }

using R = PciFunction::Register;

// 82441FX PMC (440FX) configuration space, as its datasheet gives the reset
// values and the writable bits: the command register's SERR#, parity error
// and memory-write-and-invalidate enables (memory access and bus mastering
// are always on), the latency timer, the PAM shadow-RAM attributes, the DRAM
// row boundaries and the SMRAM control bits.
PciFunction I440fx() {
  return PciFunction{
      R{PciFunction::kVendorId, 2, kIntel, 0},
      R{PciFunction::kDeviceId, 2, 0x1237, 0},
      R{PciFunction::kCommand, 2, 0x0006, 0x0150},
      R{PciFunction::kStatus, 2, 0x0280, 0},                // fast back-to-back, medium DEVSEL
      R{PciFunction::kRevisionAndClass, 4, 0x06000002, 0},  // host bridge, revision 2
      R{PciFunction::kLatencyTimer, 1, 0x00, 0xF8},
      R{0x59, 1, 0x00, 0x30},              // PAM0: the BIOS area
      R{0x5A, 4, 0x00000000, 0x33333333},  // PAM1-4
      R{0x5E, 2, 0x0000, 0x3333},          // PAM5-6
      R{0x60, 4, 0x01010101, 0xFFFFFFFF},  // DRB0-3
      R{0x64, 4, 0x01010101, 0xFFFFFFFF},  // DRB4-7
      R{0x72, 1, 0x02, 0x78},              // SMRAM
  };
}

// 82371SB PIIX3 function 0 (PCI-to-ISA bridge) configuration space: the
// command register's special-cycle and SERR# enables (I/O, memory and bus
// mastering are always on), the ISA I/O recovery timer, the X-bus chip
// selects, the PIRQ routing registers (routing off), top of memory and the
// deterministic latency control, whose passive release bit Linux sets.
PciFunction Piix3IsaBridge() {
  return PciFunction{
      R{PciFunction::kVendorId, 2, kIntel, 0},
      R{PciFunction::kDeviceId, 2, 0x7000, 0},
      R{PciFunction::kCommand, 2, 0x0007, 0x0108},
      R{PciFunction::kStatus, 2, 0x0200, 0},                // medium DEVSEL
      R{PciFunction::kRevisionAndClass, 4, 0x06010000, 0},  // ISA bridge, revision 0
      R{0x4C, 1, 0x4D, 0xFF},                               // IORT
      R{0x4E, 2, 0x0003, 0x07FF},                           // XBCS
      R{0x60, 4, 0x80808080, 0x8F8F8F8F},                   // PIRQRC[A:D]
      R{0x69, 1, 0x02, 0xFF},                               // TOM
      R{0x82, 1, 0x00, 0x0F},                               // DLC
  };
}

}  // namespace

PciHostBridge::PciHostBridge() : host_bridge_(I440fx()), isa_bridge_(Piix3IsaBridge()) {}

PciFunction* PciHostBridge::Selected() {
  if (!(address_ & kEnable) || Bus(address_) != 0 || Function(address_) != 0) return nullptr;
  switch (Device(address_)) {
    case 0: return &host_bridge_;
    case 1: return &isa_bridge_;
    default: return nullptr;
  }
}

// Only a dword access is the address register; byte and word accesses at
// 0xCF8 go to the ISA bus, where nothing answers.
std::uint32_t PciHostBridge::ReadAddress(std::uint16_t, unsigned size) {
  return size == 4 ? address_ : kNoDevice;
}

void PciHostBridge::WriteAddress(std::uint16_t, unsigned size, std::uint32_t value) {
  if (size == 4) address_ = value & kAddressWritable;
}

// Offset k of the window reaches the selected register's byte k; bytes of an
// access that runs past 0xCFF read as all ones and are not written.
std::uint32_t PciHostBridge::ReadData(std::uint16_t offset, unsigned size) {
  const PciFunction* function = Selected();
  if (!function) return kNoDevice;
  const unsigned in_window = std::min(size, 4u - offset);
  const std::uint32_t value =
      function->Read(static_cast<std::uint8_t>(Register(address_) + offset), in_window);
  return in_window == 4 ? value : value | kNoDevice << (8 * in_window);
}

void PciHostBridge::WriteData(std::uint16_t offset, unsigned size, std::uint32_t value) {
  PciFunction* function = Selected();
  if (!function) return;
  function->Write(static_cast<std::uint8_t>(Register(address_) + offset),
                  std::min(size, 4u - offset), value);
}

}  // namespace bt::devices
