#include "devices/port_bus.h"

#include <doctest/doctest.h>

#include <cstdint>
#include <string>

namespace bt::devices {
namespace {

// Records the last access it saw and answers reads with `read_value`.
class RecordingDevice final : public PortDevice {
 public:
  std::uint32_t PortRead(std::uint16_t offset, unsigned size) override {
    last_offset = offset;
    last_size = size;
    ++reads;
    return read_value;
  }
  void PortWrite(std::uint16_t offset, unsigned size, std::uint32_t value) override {
    last_offset = offset;
    last_size = size;
    last_value = value;
    ++writes;
  }

  std::uint32_t read_value = 0;
  std::uint16_t last_offset = 0xFFFF;
  unsigned last_size = 0;
  std::uint32_t last_value = 0;
  int reads = 0;
  int writes = 0;
};

TEST_CASE("PortBus passes devices the offset into their own range") {
  PortBus bus;
  RecordingDevice uart;
  RecordingDevice other;
  REQUIRE(bus.Register(0x3F8, 8, uart).ok());
  REQUIRE(bus.Register(0x2F8, 8, other).ok());

  uart.read_value = 0x5A;
  CHECK(bus.Read(0x3FD, 1) == 0x5A);
  CHECK(uart.last_offset == 5);
  CHECK(uart.last_size == 1);

  bus.Write(0x3F8, 2, 0x1234);
  CHECK(uart.last_offset == 0);
  CHECK(uart.last_size == 2);
  CHECK(uart.last_value == 0x1234);

  bus.Write(0x2FF, 1, 0x42);
  CHECK(other.last_offset == 7);
  CHECK(other.last_value == 0x42);
  CHECK(uart.writes == 1);
  CHECK(bus.unclaimed_accesses() == 0);
}

TEST_CASE("PortBus truncates values to the access size in both directions") {
  PortBus bus;
  RecordingDevice device;
  REQUIRE(bus.Register(0x80, 4, device).ok());
  device.read_value = 0xAABBCCDD;
  CHECK(bus.Read(0x80, 1) == 0xDD);
  CHECK(bus.Read(0x80, 2) == 0xCCDD);
  CHECK(bus.Read(0x80, 4) == 0xAABBCCDD);
  bus.Write(0x81, 1, 0x12345678);
  CHECK(device.last_value == 0x78);
  bus.Write(0x81, 2, 0x12345678);
  CHECK(device.last_value == 0x5678);
  bus.Write(0x81, 4, 0x12345678);
  CHECK(device.last_value == 0x12345678);
}

TEST_CASE("PortBus gives a wide access to the owner of its first port") {
  PortBus bus;
  RecordingDevice low;
  RecordingDevice high;
  REQUIRE(bus.Register(0x100, 2, low).ok());
  REQUIRE(bus.Register(0x102, 2, high).ok());
  bus.Read(0x101, 4);
  CHECK(low.reads == 1);
  CHECK(low.last_offset == 1);
  CHECK(low.last_size == 4);
  CHECK(high.reads == 0);
}

TEST_CASE("PortBus reads unclaimed ports as all ones and counts the accesses") {
  PortBus bus;
  RecordingDevice device;
  REQUIRE(bus.Register(0x60, 1, device).ok());
  CHECK(bus.Read(0x61, 1) == 0xFF);
  CHECK(bus.Read(0x61, 2) == 0xFFFF);
  CHECK(bus.Read(0x61, 4) == 0xFFFFFFFF);
  bus.Write(0x5F, 1, 0);
  bus.Write(0xFFFF, 4, 0);
  CHECK(bus.unclaimed_accesses() == 5);
  CHECK(device.reads == 0);
  CHECK(device.writes == 0);
}

TEST_CASE("PortBus refuses overlapping ranges and keeps the first owner") {
  PortBus bus;
  RecordingDevice first;
  RecordingDevice second;
  REQUIRE(bus.Register(0x3F8, 8, first).ok());

  Result<void> overlap = bus.Register(0x3FF, 2, second);
  REQUIRE_FALSE(overlap.ok());
  CHECK(overlap.error().find("0x3ff-0x400") != std::string::npos);
  CHECK(overlap.error().find("0x3f8-0x3ff") != std::string::npos);
  CHECK_FALSE(bus.Register(0x3F0, 9, second).ok());
  CHECK_FALSE(bus.Register(0x3FA, 1, second).ok());

  // The failed registrations claimed nothing, not even their free ports.
  bus.Read(0x3FF, 1);
  CHECK(first.reads == 1);
  CHECK(bus.Read(0x400, 1) == 0xFF);
  CHECK(second.reads == 0);

  // Ranges that only touch are fine.
  CHECK(bus.Register(0x3F0, 8, second).ok());
  CHECK(bus.Register(0x400, 1, second).ok());
}

TEST_CASE("PortBus refuses empty ranges and ranges past port 0xFFFF") {
  PortBus bus;
  RecordingDevice device;
  Result<void> past_end = bus.Register(0xFFF8, 9, device);
  REQUIRE_FALSE(past_end.ok());
  CHECK(past_end.error().find("0xffff") != std::string::npos);
  CHECK_FALSE(bus.Register(0x10, 0, device).ok());

  REQUIRE(bus.Register(0xFFF8, 8, device).ok());
  bus.Write(0xFFFF, 1, 7);
  CHECK(device.last_offset == 7);
}

TEST_CASE("PortBus has room for 255 devices and says so when full") {
  PortBus bus;
  RecordingDevice device;
  for (unsigned index = 0; index < 255; ++index) {
    REQUIRE(bus.Register(static_cast<std::uint16_t>(index * 2), 2, device).ok());
  }
  Result<void> full = bus.Register(0x1000, 1, device);
  REQUIRE_FALSE(full.ok());
  CHECK(full.error().find("255") != std::string::npos);
  bus.Read(254 * 2 + 1, 1);
  CHECK(device.last_offset == 1);
}

}  // namespace
}  // namespace bt::devices
