#include "devices/pci_host_bridge.h"

#include "devices/layout.h"
#include "devices/port_bus.h"

#include <doctest/doctest.h>

#include <cstdint>

namespace bt::devices {
namespace {

constexpr std::uint16_t kAddress = 0xCF8, kData = 0xCFC;

struct PciFixture {
  PciHostBridge bridge;
  PortBus bus;

  PciFixture() {
    REQUIRE(bus.Register(kPciConfigAddressPorts.base, kPciConfigAddressPorts.count,
                         bridge.address_port())
                .ok());
    REQUIRE(
        bus.Register(kPciConfigDataPorts.base, kPciConfigDataPorts.count, bridge.data_port()).ok());
  }

  void Select(unsigned bus_number, unsigned device, unsigned function, unsigned reg) {
    bus.Write(kAddress, 4,
              0x80000000u | bus_number << 16 | device << 11 | function << 8 | (reg & 0xFC));
  }
  std::uint32_t Read(unsigned device, unsigned reg, unsigned size, unsigned function = 0) {
    Select(0, device, function, reg);
    return bus.Read(static_cast<std::uint16_t>(kData + (reg & 3)), size);
  }
  void Write(unsigned device, unsigned reg, unsigned size, std::uint32_t value) {
    Select(0, device, 0, reg);
    bus.Write(static_cast<std::uint16_t>(kData + (reg & 3)), size, value);
  }
};

TEST_CASE_FIXTURE(PciFixture, "PCI bus 0 holds the 440FX and the PIIX3 ISA bridge") {
  CHECK(Read(0, 0x00, 4) == 0x12378086);
  CHECK(Read(0, 0x08, 4) == 0x06000002);  // host bridge, revision 2
  CHECK(Read(0, 0x0E, 1) == 0x00);        // single function, header type 0
  CHECK(Read(0, 0x04, 2) == 0x0006);
  CHECK(Read(0, 0x06, 2) == 0x0280);
  CHECK(Read(1, 0x00, 4) == 0x70008086);
  CHECK(Read(1, 0x08, 4) == 0x06010000);  // ISA bridge
  CHECK(Read(1, 0x0E, 1) == 0x00);
  CHECK(Read(1, 0x04, 2) == 0x0007);
  CHECK(Read(1, 0x60, 4) == 0x80808080);  // PIRQ routing off
}

TEST_CASE_FIXTURE(PciFixture, "PCI config space reads at any size and byte offset") {
  CHECK(Read(0, 0x00, 1) == 0x86);
  CHECK(Read(0, 0x01, 1) == 0x80);
  CHECK(Read(0, 0x02, 2) == 0x1237);
  CHECK(Read(0, 0x03, 1) == 0x12);
  CHECK(Read(0, 0x01, 2) == 0x3780);
  CHECK(Read(1, 0x0B, 1) == 0x06);
  CHECK(Read(1, 0x0A, 2) == 0x0601);
  // A dword from 0xCFD runs past the window: the missing byte floats high.
  CHECK(Read(0, 0x01, 4) == 0xFF123780);
}

TEST_CASE_FIXTURE(PciFixture, "PCI: absent devices, functions and buses read all ones") {
  CHECK(Read(2, 0x00, 4) == 0xFFFFFFFF);
  CHECK(Read(31, 0x00, 2) == 0xFFFF);
  CHECK(Read(0, 0x00, 4, 1) == 0xFFFFFFFF);
  CHECK(Read(1, 0x00, 4, 7) == 0xFFFFFFFF);
  Select(1, 0, 0, 0);
  CHECK(bus.Read(kData, 4) == 0xFFFFFFFF);
  // Writes to them go nowhere.
  Write(5, 0x04, 2, 0x0007);
  CHECK(Read(5, 0x04, 2) == 0xFFFF);
  CHECK(Read(0, 0x04, 2) == 0x0006);
}

TEST_CASE_FIXTURE(PciFixture, "PCI: with the enable bit clear the data window reads all ones") {
  bus.Write(kAddress, 4, 0x00000000);
  CHECK(bus.Read(kData, 4) == 0xFFFFFFFF);
  bus.Write(kData, 4, 0);
  CHECK(Read(0, 0x00, 4) == 0x12378086);
}

TEST_CASE_FIXTURE(PciFixture, "PCI address register: dword accesses only, reserved bits read 0") {
  bus.Write(kAddress, 4, 0x80000000);
  CHECK(bus.Read(kAddress, 4) == 0x80000000);
  bus.Write(kAddress, 4, 0xFFFFFFFF);
  CHECK(bus.Read(kAddress, 4) == 0x80FFFFFC);
  // Byte and word accesses do not reach it (Linux probes with outb to 0xCFB).
  bus.Write(kAddress, 1, 0x00);
  bus.Write(kAddress, 2, 0x0000);
  CHECK(bus.Read(kAddress, 4) == 0x80FFFFFC);
  CHECK(bus.Read(kAddress, 1) == 0xFF);
  CHECK(bus.Read(kAddress, 2) == 0xFFFF);
}

TEST_CASE_FIXTURE(PciFixture, "PCI IDs, class and reserved registers are read-only") {
  Write(0, 0x00, 4, 0);
  Write(0, 0x08, 4, 0);
  Write(1, 0x00, 2, 0x1234);
  Write(1, 0x0E, 1, 0x80);
  Write(0, 0x10, 4, 0xFFFFFFFF);  // no BARs: sizing finds none
  Write(1, 0x3C, 1, 0x0B);
  CHECK(Read(0, 0x00, 4) == 0x12378086);
  CHECK(Read(0, 0x08, 4) == 0x06000002);
  CHECK(Read(1, 0x00, 4) == 0x70008086);
  CHECK(Read(1, 0x0E, 1) == 0x00);
  CHECK(Read(0, 0x10, 4) == 0x00000000);
  CHECK(Read(1, 0x3C, 1) == 0x00);
}

TEST_CASE_FIXTURE(PciFixture, "PCI registers change only in their writable bits") {
  // 440FX command: SERR#, parity and MWI enables; memory and master stay on.
  Write(0, 0x04, 2, 0xFFFF);
  CHECK(Read(0, 0x04, 2) == 0x0156);
  Write(0, 0x04, 2, 0x0000);
  CHECK(Read(0, 0x04, 2) == 0x0006);
  // PIIX3 command: special cycles and SERR#; I/O, memory, master stay on.
  Write(1, 0x04, 2, 0xFFFF);
  CHECK(Read(1, 0x04, 2) == 0x010F);
  Write(0, 0x0D, 1, 0xFF);  // latency timer: bits 7-3
  CHECK(Read(0, 0x0D, 1) == 0xF8);
  Write(0, 0x06, 2, 0xFFFF);  // status
  CHECK(Read(0, 0x06, 2) == 0x0280);
  // Byte writes inside a dword leave the other bytes alone.
  Write(1, 0x61, 1, 0x0B);
  CHECK(Read(1, 0x60, 4) == 0x80800B80);
  Write(1, 0x62, 2, 0xFFFF);
  CHECK(Read(1, 0x60, 4) == 0x8F8F0B80);
  // The PIIX3 passive release bit Linux sets.
  Write(1, 0x82, 1, 0xFF);
  CHECK(Read(1, 0x82, 1) == 0x0F);
}

}  // namespace
}  // namespace bt::devices
