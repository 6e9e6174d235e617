// Memory-mapped devices: the MMIO bus, and guest instructions reaching a
// device through operands the runtime resolves (runtime/adaptive.cc).
#include "devices/mmio_bus.h"
#include "tests/support/assembled_guest.h"
#include "tests/support/intercepting_machine.h"

#include <bt/machine.h>

#include <doctest/doctest.h>

#include <vector>

namespace bt {
namespace {

namespace x86 = asmjit::x86;
using testing::AssembleGuest;

// Registers of 4 bytes; reads count up from the register's value, so that a
// second read of the same register shows whether the first one happened.
class RegisterFile final : public MmioDevice {
 public:
  struct Access {
    bool write;
    std::uint64_t offset;
    unsigned size;
    std::uint64_t value;
  };
  std::uint64_t MmioRead(std::uint64_t offset, unsigned size) override {
    const std::uint64_t value = 0x1000 * (offset / 4 + 1) + reads_++;
    log.push_back({false, offset, size, value});
    return value;
  }
  void MmioWrite(std::uint64_t offset, unsigned size, std::uint64_t value) override {
    log.push_back({true, offset, size, value});
  }
  std::vector<Access> log;

 private:
  std::uint64_t reads_ = 0;
};

constexpr std::uint32_t kDeviceBase = 0xFEC00000;

TEST_CASE("MMIO bus: claims must not overlap RAM, each other or 4 GiB") {
  devices::MmioBus bus;
  RegisterFile a, b;
  CHECK(bus.Register(kDeviceBase, 0x1000, a, 16u << 20));
  CHECK_FALSE(bus.Register(kDeviceBase + 0x800, 0x1000, b, 16u << 20));
  CHECK_FALSE(bus.Register(kDeviceBase - 0x800, 0x1000, b, 16u << 20));
  CHECK_FALSE(bus.Register(0x100000, 0x1000, b, 16u << 20));
  CHECK_FALSE(bus.Register(0xFFFFF000, 0x2000, b, 16u << 20));
  CHECK(bus.Register(kDeviceBase + 0x1000, 0x1000, b, 16u << 20));
  CHECK(bus.Read(kDeviceBase + 0x1004, 4) == 0x2000);
  CHECK(b.log.size() == 1);
  CHECK(bus.Read(kDeviceBase + 0x2000, 2) == 0xFFFF);  // unclaimed
  CHECK(bus.unclaimed_accesses() == 1);
}

TEST_CASE("guest loads, stores and read-modify-writes reach a device, each exactly once") {
  RegisterFile device;
  auto machine = testing::BootIntercepting(AssembleGuest([](x86::Assembler& a) {
    a.mov(x86::ebx, kDeviceBase);
    a.mov(x86::eax, x86::dword_ptr(x86::ebx));       // read register 0
    a.mov(x86::dword_ptr(x86::ebx, 4), 0x12345678);  // write register 1
    a.add(x86::dword_ptr(x86::ebx, 8), 5);           // read and write register 2
    a.movzx(x86::ecx, x86::word_ptr(x86::ebx, 12));  // read 2 bytes of register 3
    a.mov(x86::ebp, x86::eax);
    a.mov(x86::eax, x86::dword_ptr_abs(kDeviceBase + 16));  // the moffs form (A1)
    a.xchg(x86::eax, x86::ebp);
    for (int i = 0; i < 3; ++i) {
      a.mov(x86::edx, x86::dword_ptr(x86::ebx));  // the same instruction again
    }
    a.hlt();
  }));
  REQUIRE(machine->AddMmioDevice(kDeviceBase, 0x1000, device));
  REQUIRE(machine->Run().reason == StopReason::kHalted);
  const Registers r = machine->GetRegisters();
  CHECK(r.eax == 0x1000);
  CHECK(r.ecx == 0x4002);
  CHECK(r.ebp == 0x5003);
  CHECK(r.edx == 0x1006);  // the last of reads 4, 5 and 6
  REQUIRE(device.log.size() == 9);
  CHECK((device.log[0].write == false && device.log[0].offset == 0 && device.log[0].size == 4));
  CHECK((device.log[1].write && device.log[1].offset == 4 && device.log[1].value == 0x12345678));
  CHECK((!device.log[2].write && device.log[2].offset == 8));
  CHECK((device.log[3].write && device.log[3].offset == 8 && device.log[3].value == 0x3001 + 5));
  CHECK((!device.log[4].write && device.log[4].offset == 12 && device.log[4].size == 2));
  CHECK(machine->GetStats().adaptive_resolved >= 4);
}

// Computes with long double (x87) on every access.
class X87Registers final : public MmioDevice {
 public:
  std::uint64_t MmioRead(std::uint64_t, unsigned) override {
    volatile long double third = 1.0L / 3.0L;
    return static_cast<std::uint64_t>(third * 3000.0L + 0.5L);
  }
  void MmioWrite(std::uint64_t, unsigned, std::uint64_t value) override {
    volatile long double half = static_cast<long double>(value) / 2.0L;
    written = static_cast<std::uint64_t>(half);
  }
  std::uint64_t written = 0;
};

TEST_CASE("an MMIO device may use the x87 while the guest's x87 stack is full") {
  X87Registers device;
  auto machine = testing::BootIntercepting(AssembleGuest([](x86::Assembler& a) {
    a.mov(x86::esp, 0x90000);
    a.fninit();
    for (int i = 0; i < 8; ++i) a.fld1();
    a.mov(x86::ebx, x86::dword_ptr_abs(kDeviceBase));
    a.mov(x86::dword_ptr_abs(kDeviceBase), 4000);
    for (int i = 0; i < 7; ++i) a.faddp(x86::st1);
    a.push(0);
    a.fistp(x86::dword_ptr(x86::esp));
    a.pop(x86::esi);
    a.hlt();
  }));
  REQUIRE(machine->AddMmioDevice(kDeviceBase, 0x1000, device));
  REQUIRE(machine->Run().reason == StopReason::kHalted);
  CHECK(machine->GetRegisters().ebx == 1000);
  CHECK(machine->GetRegisters().esi == 8);
  CHECK(device.written == 2000);
}

TEST_CASE("with paging, a linear page mapped onto a device's frame reaches the device") {
  RegisterFile device;
  auto machine = testing::BootIntercepting(AssembleGuest([](x86::Assembler& a) {
    testing::EmitEnablePaging(a, 0x800000);
    a.mov(x86::dword_ptr(0x40000010), 0xCAFE);  // linear 1 GiB = the device
    a.mov(x86::esi, x86::dword_ptr(0x40000020));
    a.hlt();
  }));
  REQUIRE(machine->AddMmioDevice(kDeviceBase, 0x400000, device));
  // 4 MiB pages: identity below 4 MiB and at 8 MiB, the device at 1 GiB.
  std::uint32_t directory[1024] = {};
  directory[0] = 0x00000083;
  directory[2] = 0x00800083;
  directory[0x40000000 >> 22] = kDeviceBase | 0x83;
  REQUIRE(machine->WritePhysical(0x800000, directory, sizeof(directory)));
  REQUIRE(machine->Run().reason == StopReason::kHalted);
  CHECK(machine->GetRegisters().esi == 0x9000);
  REQUIRE(device.log.size() == 2);
  CHECK((device.log[0].write && device.log[0].offset == 0x10 && device.log[0].value == 0xCAFE));
  CHECK((!device.log[1].write && device.log[1].offset == 0x20));
}

// Linux reads its stack canary through FS with paging still off, an
// address far above RAM, with the moffs form; a PC answers all ones.
TEST_CASE("loads from addresses with neither RAM nor a device read all ones, writes vanish") {
  auto machine = testing::BootIntercepting(AssembleGuest([](x86::Assembler& a) {
    a.embed("\x64\xA1\xE0\xE6\xE5\xC1", 6);  // mov eax, fs:[0xc1e5e6e0] (moffs)
    a.mov(x86::ebx, 0xC0000000);
    a.mov(x86::dword_ptr(x86::ebx), 0x1234);
    a.mov(x86::cx, x86::word_ptr(x86::ebx, 2));  // ModRM
    a.hlt();
  }));
  const StopInfo stop = machine->Run();
  REQUIRE_MESSAGE(stop.reason == StopReason::kHalted, stop.message);
  CHECK(machine->GetRegisters().eax == 0xFFFFFFFF);
  CHECK((machine->GetRegisters().ecx & 0xFFFF) == 0xFFFF);
}

}  // namespace
}  // namespace bt
