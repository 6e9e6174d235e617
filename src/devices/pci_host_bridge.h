// The PCI host bridge of an Intel 440FX PC (82441FX PMC with the 82371SB
// PIIX3), as QEMU's "pc" machine has it: configuration mechanism #1 with the
// address register at 0xCF8 and the data window at 0xCFC-0xCFF, and bus 0
// with two functions on it:
// - 00:00.0, the 440FX host bridge (8086:1237, revision 2, class 06 00 00);
// - 00:01.0, the PIIX3 PCI-to-ISA bridge (8086:7000, class 06 01 00), which
//   bridges to where the PC's ISA devices sit.
// Linux then finds a PCI bus it can access ("PCI: Using configuration type 1
// for base access") and the two bridges on it. Every other bus, device and
// function reads all ones, as when no device answers the configuration cycle.
//
// Emulated: the address register (enable bit, bus, device, function,
// register; only dword accesses reach it, as on the PIIX, which leaves byte
// accesses to 0xCF8-0xCFB to other ISA devices such as the reset control
// register at 0xCF9); data accesses of any size at any byte offset of the
// window, with the enable bit clear reading all ones; the two functions'
// headers and the chipset registers an OS may touch, writable only in the
// bits the datasheets make writable.
//
// Left out: everything the bridges would do with their registers. They have
// no BARs; the 440FX's DRAM and shadow-RAM (PAM) registers, the PIIX3's PIRQ
// routing and the other chipset settings are stored and read back but
// change nothing (RAM, interrupts and ISA decoding are fixed by the machine).
// The PIIX3's other functions (IDE, USB, power management) are not there, so
// 00:01.0 is a single-function device. No configuration mechanism #2.
#pragma once

#include "devices/pci_function.h"
#include "devices/port_facet.h"

#include <bt/port_device.h>

#include <cstdint>

namespace bt::devices {

class PciHostBridge {
 public:
  PciHostBridge();
  PciHostBridge(const PciHostBridge&) = delete;
  PciHostBridge& operator=(const PciHostBridge&) = delete;

  // Register each at its own base (layout.h): the address register (0xCF8,
  // one port: a dword there spans 0xCF8-0xCFB) and the data window (0xCFC,
  // four ports).
  PortDevice& address_port() { return address_port_; }
  PortDevice& data_port() { return data_port_; }

  // Configuration address register bits.
  static constexpr std::uint32_t kEnable = 0x80000000;
  static constexpr std::uint32_t kAddressWritable = 0x80FFFFFC;  // bus, device, function, register

 private:
  // The address register (a dword at 0xCF8) and the data window.
  std::uint32_t ReadAddress(std::uint16_t offset, unsigned size);
  void WriteAddress(std::uint16_t offset, unsigned size, std::uint32_t value);
  std::uint32_t ReadData(std::uint16_t offset, unsigned size);
  void WriteData(std::uint16_t offset, unsigned size, std::uint32_t value);
  // The function the address register selects, or null when none answers
  // (or the enable bit is clear).
  PciFunction* Selected();

  PortFacet<PciHostBridge, &PciHostBridge::ReadAddress, &PciHostBridge::WriteAddress> address_port_{
      *this};
  PortFacet<PciHostBridge, &PciHostBridge::ReadData, &PciHostBridge::WriteData> data_port_{*this};
  std::uint32_t address_ = 0;
  PciFunction host_bridge_;  // 00:00.0
  PciFunction isa_bridge_;   // 00:01.0
};

}  // namespace bt::devices
