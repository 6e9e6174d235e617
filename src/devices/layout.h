// Where the emulated PC's devices sit in the guest I/O-port space. Devices only
// know offsets into their own range; the machine registers each one at the
// base given here, so this is the one place to look for (or change) a port.
#pragma once

#include <cstdint>

namespace bt::devices {

struct PortRange {
  std::uint16_t base;
  std::uint16_t count;
};

// Ports that later devices will take, kept here so nothing claims them first:
// 0x20 and 0xA0 (8259 PICs), 0x40 (8254 PIT), 0x60/0x64 (i8042), 0x70 (CMOS),
// 0x2F8 (COM2), 0xCF8/0xCFC (PCI configuration mechanism #1).

// 16550A UART at the standard PC address of the first serial port.
inline constexpr PortRange kCom1Ports{0x3F8, 8};
// Bochs/QEMU debug console: every byte written goes straight to the host.
inline constexpr PortRange kDebugConsolePorts{0xE9, 1};
// QEMU isa-debug-exit, with the iobase=0xf4,iosize=0x04 that test guests use
// under QEMU, so the same guest binary exits the same way under both.
inline constexpr PortRange kDebugExitPorts{0xF4, 4};

}  // namespace bt::devices
