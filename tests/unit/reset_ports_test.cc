#include "devices/layout.h"
#include "devices/pci_host_bridge.h"
#include "devices/port_bus.h"
#include "devices/reset_register.h"

#include <doctest/doctest.h>

namespace bt::devices {
namespace {

TEST_CASE("port 0x92: A20 reads back, starts enabled; bit 0 resets") {
  unsigned resets = 0;
  ResetRegister port(ResetRegister::kSystemControlPortA, [&] { ++resets; });
  CHECK(port.PortRead(0, 1) == 0x02);
  port.PortWrite(0, 1, 0x00);
  CHECK(port.PortRead(0, 1) == 0x00);
  port.PortWrite(0, 1, 0xFA);
  CHECK(port.PortRead(0, 1) == 0xFA);
  CHECK(resets == 0);
  port.PortWrite(0, 1, 0x03);
  CHECK(resets == 1);
  CHECK(port.PortRead(0, 1) == 0x02);  // bit 0 reads 0
}

struct ResetControlFixture {
  unsigned resets = 0;
  ResetRegister reset_control{ResetRegister::kPiixResetControl, [this] { ++resets; }};
  PciHostBridge pci;
  PortBus bus;

  ResetControlFixture() {
    REQUIRE(
        bus.Register(kPciConfigAddressPorts.base, kPciConfigAddressPorts.count, pci.address_port())
            .ok());
    REQUIRE(bus.Register(kResetControlPorts.base, kResetControlPorts.count, reset_control).ok());
    REQUIRE(
        bus.Register(kPciConfigDataPorts.base, kPciConfigDataPorts.count, pci.data_port()).ok());
  }
};

TEST_CASE_FIXTURE(ResetControlFixture, "0xCF9: bit 2 resets, hard or soft; bit 1 reads back") {
  CHECK(bus.Read(0xCF9, 1) == 0x00);
  bus.Write(0xCF9, 1, 0x02);  // Linux: choose a hard reset first
  CHECK(bus.Read(0xCF9, 1) == 0x02);
  CHECK(resets == 0);
  SUBCASE("hard reset") { bus.Write(0xCF9, 1, 0x0E); }
  SUBCASE("soft reset") { bus.Write(0xCF9, 1, 0x04); }
  CHECK(resets == 1);
}

TEST_CASE_FIXTURE(ResetControlFixture, "0xCF9 is a byte port apart from the PCI address dword") {
  bus.Write(0xCF8, 4, 0x80000800);
  CHECK(bus.Read(0xCF8, 4) == 0x80000800);
  CHECK(bus.Read(0xCF9, 1) == 0x00);
  bus.Write(0xCF9, 1, 0x02);
  CHECK(bus.Read(0xCF8, 4) == 0x80000800);
  CHECK(resets == 0);
}

}  // namespace
}  // namespace bt::devices
