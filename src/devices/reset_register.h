// The two one-byte registers a PC resets itself through besides the keyboard
// controller; both keep a few bits for the guest to read back.
//
// - System control port A (port 0x92, the PS/2 "fast A20 and reset" port
//   chipsets keep): bit 0 written as 1 resets the machine (fast reset); bit 1
//   is the A20 gate, which starts enabled; bits 2-7 (the PS/2's security lock
//   and disk lights) are stored, as on QEMU's PC. libbt has no A20 gate -
//   addresses never wrap at 1 MiB, whatever the bit says - so the bit is
//   stored and read back only, and enabled is the state that tells the truth.
// - The PIIX's reset control register (port 0xCF9, among the PCI
//   configuration ports but reached by byte accesses only): bit 2 (reset
//   CPU) written as 1 resets the machine; bit 1 chooses a hard reset (the
//   whole system) or a soft one (the CPU alone) and is stored; the other
//   bits are reserved. Linux tries it when the keyboard controller does not
//   reboot the machine. Hard and soft resets are the same here: the run
//   stops either way.
//
// The reset bit reads 0 in both: no reset is in progress when the guest can
// look.
#pragma once

#include "devices/system_reset.h"

#include <bt/port_device.h>

#include <cstdint>

namespace bt::devices {

class ResetRegister final : public PortDevice {
 public:
  struct Bits {
    std::uint8_t reset;     // written as 1: resets the machine
    std::uint8_t stored;    // read back as written
    std::uint8_t power_on;  // the stored bits' first value
  };
  static constexpr std::uint8_t kFastReset = 0x01, kA20Enabled = 0x02;
  static constexpr Bits kSystemControlPortA{kFastReset, 0xFF & ~kFastReset, kA20Enabled};
  static constexpr std::uint8_t kHardReset = 0x02, kResetCpu = 0x04;
  static constexpr Bits kPiixResetControl{kResetCpu, kHardReset, 0x00};

  ResetRegister(Bits bits, SystemReset reset);

  std::uint32_t PortRead(std::uint16_t offset, unsigned size) override;
  void PortWrite(std::uint16_t offset, unsigned size, std::uint32_t value) override;

 private:
  Bits bits_;
  SystemReset reset_;
  std::uint8_t value_;
};

}  // namespace bt::devices
