#include "devices/debug_console.h"
#include "devices/debug_exit.h"
#include "devices/layout.h"
#include "devices/port_bus.h"
#include "devices/uart_16550.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace bt::devices {
namespace {

TEST_CASE("Debug console prints the low byte of every write") {
  std::string output;
  DebugConsole console([&](std::string_view bytes) { output += bytes; });
  console.PortWrite(0, 1, 'o');
  console.PortWrite(0, 2, 0x236B);
  console.PortWrite(0, 4, 0xFFFFFF0A);
  CHECK(output == "ok\n");
}

TEST_CASE("Debug console reads as 0xE9 so guests can detect it") {
  DebugConsole console(DebugConsole::OutputSink{});
  CHECK(console.PortRead(0, 1) == 0xE9);
  console.PortWrite(0, 1, 'x');  // no sink: dropped, not a crash
}

struct DebugExitFixture {
  std::vector<std::uint32_t> triggers;
  DebugExit exit{[this](std::uint32_t value) { triggers.push_back(value); }};
  PortBus bus;

  DebugExitFixture() {
    REQUIRE(bus.Register(kDebugExitPorts.base, kDebugExitPorts.count, exit).ok());
  }
};

TEST_CASE_FIXTURE(DebugExitFixture, "Debug exit triggers with the value written, any size") {
  bus.Write(0xF4, 1, 0x31);
  bus.Write(0xF4, 2, 0xBEEF);
  bus.Write(0xF4, 4, 0x12345678);
  bus.Write(0xF7, 1, 0);  // anywhere in its range
  CHECK(triggers == std::vector<std::uint32_t>{0x31, 0xBEEF, 0x12345678, 0});
}

TEST_CASE_FIXTURE(DebugExitFixture, "Debug exit reads as all ones and does not trigger") {
  CHECK(bus.Read(0xF4, 1) == 0xFF);
  CHECK(bus.Read(0xF5, 2) == 0xFFFF);
  CHECK(bus.Read(0xF4, 4) == 0xFFFFFFFF);
  CHECK(triggers.empty());
}

TEST_CASE("The PC port layout puts the devices where guests expect them") {
  CHECK(kCom1Ports.base == 0x3F8);
  CHECK(kCom1Ports.count == 8);
  CHECK(kDebugConsolePorts.base == 0xE9);
  CHECK(kDebugConsolePorts.count == 1);
  CHECK(kDebugExitPorts.base == 0xF4);
  CHECK(kDebugExitPorts.count == 4);

  // All of them fit on one bus, and a guest reaches each through its port.
  std::string output;
  std::uint32_t exit_value = 0;
  auto sink = [&](std::string_view bytes) { output += bytes; };
  Uart16550 com1(sink);
  DebugConsole console(sink);
  DebugExit exit([&](std::uint32_t value) { exit_value = value; });
  PortBus bus;
  REQUIRE(bus.Register(kCom1Ports.base, kCom1Ports.count, com1).ok());
  REQUIRE(bus.Register(kDebugConsolePorts.base, kDebugConsolePorts.count, console).ok());
  REQUIRE(bus.Register(kDebugExitPorts.base, kDebugExitPorts.count, exit).ok());
  bus.Write(0x3F8, 1, 'a');
  bus.Write(0xE9, 1, 'b');
  bus.Write(0xF4, 1, 3);
  CHECK(output == "ab");
  CHECK(exit_value == 3);
  CHECK(bus.Read(0x3FD, 1) == 0x60);
  CHECK(bus.Read(0xE9, 1) == 0xE9);
}

}  // namespace
}  // namespace bt::devices
