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
// 0x2F8 (COM2).
//
// Port 0x80, where firmware writes POST codes and Linux's outb_p() writes to
// wait an ISA bus cycle, is left unclaimed on purpose: the bus already does
// what the PC's port does (writes ignored, reads 0xFF).

// CMOS RAM and real-time clock: index and data ports. Its interrupt is ISA
// IRQ 8, the slave PIC's first input.
inline constexpr PortRange kCmosPorts{0x70, 2};
inline constexpr unsigned kRtcIrq = 8;

// 8259A PIC pair: command (ICW1, OCW2, OCW3) and data (ICW2-4, OCW1) ports of
// the master and of the slave, which is cascaded on the master's IRQ2.
inline constexpr PortRange kPicMasterPorts{0x20, 2};
inline constexpr PortRange kPicSlavePorts{0xA0, 2};
// PIIX edge/level control registers: one bit per PIC input, IRQ0-7 at 0x4D0
// and IRQ8-15 at 0x4D1.
inline constexpr PortRange kElcrPorts{0x4D0, 2};
// 8254 PIT: counters 0-2 and the control word register. Counter 0 drives
// IRQ0; counter 2 is the speaker / calibration counter behind port 0x61.
inline constexpr PortRange kPitPorts{0x40, 4};
// The PIT's counter 0 drives ISA IRQ 0.
inline constexpr unsigned kTimerIrq = 0;
// System control port B: PIT counter 2's gate (bit 0) and output (bit 5).
inline constexpr PortRange kSystemControlBPorts{0x61, 1};

// 8042 keyboard controller: data port and status/command port, which sit
// around port 0x61 (system control port B), hence two ranges. The keyboard
// interrupts on ISA IRQ 1, the auxiliary (mouse) port on IRQ 12.
inline constexpr PortRange kKeyboardDataPorts{0x60, 1};
inline constexpr PortRange kKeyboardCommandPorts{0x64, 1};
inline constexpr unsigned kKeyboardIrq = 1;
inline constexpr unsigned kAuxIrq = 12;
// System control port A: fast A20 gate and fast reset.
inline constexpr PortRange kSystemControlAPorts{0x92, 1};

// PCI configuration mechanism #1: the address register is a dword at 0xCF8,
// the data window 0xCFC-0xCFF. Byte accesses to 0xCF9 reach the PIIX's reset
// control register instead; the other bytes of 0xCF8-0xCFB are unclaimed.
inline constexpr PortRange kPciConfigAddressPorts{0xCF8, 1};
inline constexpr PortRange kResetControlPorts{0xCF9, 1};
inline constexpr PortRange kPciConfigDataPorts{0xCFC, 4};

// 16550A UART at the standard PC address of the first serial port.
inline constexpr PortRange kCom1Ports{0x3F8, 8};
// COM1's interrupt output drives ISA IRQ 4, as on every PC.
inline constexpr unsigned kCom1Irq = 4;
// Bochs/QEMU debug console: every byte written goes straight to the host.
inline constexpr PortRange kDebugConsolePorts{0xE9, 1};
// QEMU isa-debug-exit, with the iobase=0xf4,iosize=0x04 that test guests use
// under QEMU, so the same guest binary exits the same way under both.
inline constexpr PortRange kDebugExitPorts{0xF4, 4};

}  // namespace bt::devices
