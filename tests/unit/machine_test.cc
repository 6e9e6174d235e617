// bt::Machine end to end with small assembled guests: precise guest faults,
// register state after a fault, the ways a run stops, and CPUID.
#include "tests/support/assembled_guest.h"
#include "tests/support/intercepting_machine.h"

#include <bt/machine.h>

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <thread>

namespace bt {
namespace {

namespace x86 = asmjit::x86;
using testing::AssembleGuest;
using testing::Here;

std::unique_ptr<Machine> Boot(const std::vector<std::uint8_t>& image) {
  return testing::BootIntercepting(image);
}

TEST_CASE("#UD stops at the instruction with the registers it found") {
  std::uint32_t at = 0;
  auto machine = Boot(AssembleGuest([&](x86::Assembler& a) {
    a.mov(x86::eax, 0x11);
    a.mov(x86::ebx, 0x22);
    at = Here(a);
    a.ud2();
  }));
  const StopInfo stop = machine->Run();
  CHECK(stop.reason == StopReason::kGuestException);
  CHECK(stop.vector == 6);
  CHECK(stop.eip == at);
  CHECK(machine->GetRegisters().eax == 0x11);
  CHECK(machine->GetRegisters().ebx == 0x22);
}

TEST_CASE("#DE from a host trap in the middle of a unit is precise") {
  std::uint32_t at = 0;
  auto machine = Boot(AssembleGuest([&](x86::Assembler& a) {
    a.mov(x86::eax, 7);
    a.xor_(x86::ecx, x86::ecx);
    a.mov(x86::edx, 0);
    a.mov(x86::ebx, 0);
    a.add(x86::ebx, 5);
    at = Here(a);
    a.div(x86::ecx);
    a.mov(x86::eax, 99);
  }));
  const StopInfo stop = machine->Run();
  CHECK(stop.reason == StopReason::kGuestException);
  CHECK(stop.vector == 0);
  CHECK(stop.eip == at);
  CHECK(machine->GetRegisters().eax == 7);
  CHECK(machine->GetRegisters().ebx == 5);
  CHECK(machine->GetRegisters().eip == at);
}

TEST_CASE("#GP from a misaligned movaps is precise") {
  std::uint32_t at = 0;
  auto machine = Boot(AssembleGuest([&](x86::Assembler& a) {
    testing::EmitEnableSse(a);
    a.mov(x86::esi, 0x200001);
    at = Here(a);
    a.movaps(x86::xmm0, x86::ptr(x86::esi));
  }));
  const StopInfo stop = machine->Run();
  CHECK(stop.reason == StopReason::kGuestException);
  CHECK(stop.vector == 13);
  CHECK(stop.eip == at);
  CHECK(machine->GetRegisters().esi == 0x200001);
}

TEST_CASE("int3 is a trap: the reported EIP follows it") {
  std::uint32_t after = 0;
  auto machine = Boot(AssembleGuest([&](x86::Assembler& a) {
    a.int3();
    after = Here(a);
  }));
  const StopInfo stop = machine->Run();
  CHECK(stop.reason == StopReason::kGuestException);
  CHECK(stop.vector == 3);
  CHECK(stop.eip == after);
}

// Regression: a fault while a guest register is parked for a high-byte
// operand next to an ESP base must report that register's guest value.
TEST_CASE("a fault in a spilled-register sequence restores the spilled register") {
  std::uint32_t at = 0;
  auto machine = Boot(AssembleGuest([&](x86::Assembler& a) {
    // Paging with one 4 MiB page, [0, 4 MiB), present (the directory at
    // 8 MiB): the access below takes #PF.
    testing::EmitEnablePaging(a, 0x800000);
    a.mov(x86::esp, 0xF0000000);
    a.mov(x86::ebx, 0x1234);
    at = Here(a);
    a.mov(x86::ah, x86::byte_ptr(x86::esp, 4));
  }));
  const std::uint32_t identity = 0x83;
  REQUIRE(machine->WritePhysical(0x800000, &identity, 4));
  const StopInfo stop = machine->Run();
  CHECK(stop.reason == StopReason::kGuestException);
  CHECK(stop.vector == 14);
  CHECK(stop.fault_address == 0xF0000004);
  CHECK(stop.eip == at);
  CHECK(machine->GetRegisters().ebx == 0x1234);
  CHECK(machine->GetRegisters().esp == 0xF0000000);
}

TEST_CASE("a pop to memory that faults leaves ESP where it was") {
  std::uint32_t at = 0;
  auto machine = Boot(AssembleGuest([&](x86::Assembler& a) {
    a.mov(x86::esp, 0x90000);
    a.push(0x55);
    at = Here(a);
    a.pop(x86::dword_ptr(0xF0000000));
  }));
  const StopInfo stop = machine->Run();
  CHECK(stop.eip == at);
  CHECK(machine->GetRegisters().esp == 0x90000 - 4);
}

TEST_CASE("hlt with interrupts off halts after the instruction") {
  std::uint32_t after = 0;
  auto machine = Boot(AssembleGuest([&](x86::Assembler& a) {
    a.cli();
    a.hlt();
    after = Here(a);
  }));
  const StopInfo stop = machine->Run();
  CHECK(stop.reason == StopReason::kHalted);
  CHECK(machine->GetRegisters().eip == after);
}

TEST_CASE("a reset through any of the PC's reset ports stops the run after the out") {
  std::uint16_t port = 0;
  std::uint8_t value = 0;
  SUBCASE("keyboard controller pulse") { port = 0x64, value = 0xFE; }
  SUBCASE("system control port A") { port = 0x92, value = 0x01; }
  SUBCASE("PIIX reset control") { port = 0xCF9, value = 0x06; }
  std::uint32_t after = 0;
  auto machine = Boot(AssembleGuest([&](x86::Assembler& a) {
    a.xor_(x86::ebx, x86::ebx);
    a.mov(x86::edx, port);
    a.mov(x86::eax, value);
    a.out(x86::dx, x86::al);
    after = Here(a);
    a.mov(x86::ebx, 1);
  }));
  const StopInfo stop = machine->Run();
  CHECK(stop.reason == StopReason::kReset);
  CHECK(stop.eip == after);
  CHECK(machine->GetRegisters().ebx == 0);
  // There is no firmware to start over from.
  CHECK(machine->Run().reason == StopReason::kHostError);
}

TEST_CASE("an unsupported instruction is reported with its bytes and EIP") {
  std::uint32_t at = 0;
  auto machine = Boot(AssembleGuest([&](x86::Assembler& a) {
    a.nop();
    at = Here(a);
    a.embed("\x67\xF3\x6D", 3);  // rep insd with 16-bit addressing
  }));
  const StopInfo stop = machine->Run();
  CHECK(stop.reason == StopReason::kUnsupportedInstruction);
  CHECK(stop.eip == at);
  CHECK(stop.instruction_length == 3);
  CHECK(stop.instruction_bytes[0] == 0x67);
  CHECK(stop.message.find("insd") != std::string::npos);
}

std::vector<std::uint8_t> Spin() {
  return AssembleGuest([](x86::Assembler& a) {
    asmjit::Label loop = a.newLabel();
    a.bind(loop);
    a.add(x86::eax, 1);
    a.jmp(loop);
  });
}

// Runs `image` until a stop request from another thread, which translated
// code must notice at an event poll: if it does not within seconds, the
// test process aborts rather than hang.
StopInfo RunUntilStopRequested(Machine& machine) {
  std::atomic<bool> stopped = false;
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    machine.RequestStop();
    for (int i = 0; i < 200 && !stopped; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (!stopped) {
      std::fputs("the stop request was not noticed\n", stderr);
      std::abort();
    }
  });
  const StopInfo stop = machine.Run();
  stopped = true;
  stopper.join();
  return stop;
}

TEST_CASE("RequestStop from another thread stops a guest in a chained loop") {
  auto machine = Boot(Spin());
  const StopInfo stop = RunUntilStopRequested(*machine);
  CHECK(stop.reason == StopReason::kStopRequested);
  CHECK(machine->GetRegisters().eax > 1000);
  // The machine can go on afterwards, here until its time budget runs out.
  const StopInfo again = machine->Run(RunLimits{std::chrono::milliseconds(50)});
  CHECK(again.reason == StopReason::kBudgetExhausted);
}

TEST_CASE("a stop request is noticed in loops closed by a conditional or an indirect jump") {
  // Each round goes forward through a call into another unit, then back to
  // the top: by jnz, or by ret alone.
  for (const bool indirect : {false, true}) {
    CAPTURE(indirect);
    auto machine = Boot(AssembleGuest([&](x86::Assembler& a) {
      asmjit::Label top = a.newLabel(), callee = a.newLabel();
      a.mov(x86::esp, 0x90000);
      a.bind(top);
      const std::uint32_t top_address = Here(a);
      a.add(x86::eax, 1);
      a.call(callee);
      a.bind(callee);
      if (indirect) {
        // The return address, `callee`, becomes `top`.
        a.sub(x86::dword_ptr(x86::esp), static_cast<std::int32_t>(Here(a) - top_address));
        a.ret();
      } else {
        a.add(x86::esp, 4);  // not zero: jnz goes back
        a.jnz(top);
      }
      a.ud2();
    }));
    const StopInfo stop = RunUntilStopRequested(*machine);
    CHECK(stop.reason == StopReason::kStopRequested);
    CHECK(machine->GetRegisters().eax > 1000);
  }
}

TEST_CASE("SendSerialInput from another thread reaches a guest polling COM1") {
  // Asserts RTS, waits for LSR.DR and exits with the byte from RBR.
  auto machine = Boot(AssembleGuest([](x86::Assembler& a) {
    asmjit::Label wait = a.newLabel();
    a.mov(x86::dx, 0x3FC);
    a.mov(x86::al, 0x02);
    a.out(x86::dx, x86::al);
    a.mov(x86::dx, 0x3FD);
    a.bind(wait);
    a.in(x86::al, x86::dx);
    a.test(x86::al, 1);
    a.jz(wait);
    a.mov(x86::dx, 0x3F8);
    a.in(x86::al, x86::dx);
    a.movzx(x86::eax, x86::al);
    a.out(0xF4, x86::eax);
  }));
  std::thread typist([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    machine->SendSerialInput("q");
  });
  const StopInfo stop = machine->Run(RunLimits{std::chrono::seconds(10)});
  typist.join();
  CHECK(stop.reason == StopReason::kDebugExit);
  CHECK(stop.exit_value == 'q');
}

TEST_CASE("CPUID hides what libbt does not run") {
  auto machine = Boot(AssembleGuest([](x86::Assembler& a) {
    a.mov(x86::eax, 1);
    a.cpuid();
    a.hlt();
  }));
  REQUIRE(machine->Run().reason == StopReason::kHalted);
  const Registers r = machine->GetRegisters();
  CHECK((r.edx & (1u << 26)) != 0);  // SSE2
  CHECK((r.edx & (1u << 9)) == 0);   // no APIC
  CHECK((r.edx & (1u << 3)) != 0);   // PSE: the shadow MMU has 4 MiB pages
  CHECK((r.ecx & (1u << 28)) == 0);  // no AVX
  CHECK((r.ecx & (1u << 5)) == 0);   // no VMX
}

TEST_CASE("WritePhysical drops translations of the code it overwrites") {
  std::uint32_t immediate = 0;
  auto machine = Boot(AssembleGuest([&](x86::Assembler& a) {
    a.mov(x86::eax, 1);
    immediate = Here(a) - 4;
    a.hlt();
  }));
  const std::uint32_t entry = machine->GetRegisters().eip;
  REQUIRE(machine->Run().reason == StopReason::kHalted);
  CHECK(machine->GetRegisters().eax == 1);
  const std::uint32_t two = 2;
  REQUIRE(machine->WritePhysical(immediate, &two, sizeof(two)));
  Registers r = machine->GetRegisters();
  r.eip = entry;
  machine->SetRegisters(r);
  REQUIRE(machine->Run().reason == StopReason::kHalted);
  CHECK(machine->GetRegisters().eax == 2);
  CHECK(machine->GetStats().smc_invalidations >= 1);
}

TEST_CASE("bad configurations are refused with a message") {
  MachineConfig config;
  config.boot.kernel_image = AssembleGuest([](x86::Assembler& a) { a.hlt(); });
  config.ram_bytes = 12345;
  auto machine = Machine::Create(config);
  REQUIRE_FALSE(machine);
  CHECK(machine.error().find("RAM") != std::string::npos);
  config.ram_bytes = 16u << 20;
  config.boot.kernel_image = {1, 2, 3};
  CHECK_FALSE(Machine::Create(config));
  config.boot.kernel_image.clear();
  CHECK_FALSE(Machine::Create(config));  // nothing to boot
}

}  // namespace
}  // namespace bt

namespace bt {
namespace {

// Regression: a callout that wrote the code of its own unit (mov to memory
// from a segment register, done in C++) let the unit run on with the stale
// translation of the bytes it had just overwritten.
TEST_CASE("a callout that rewrites its own unit's next instruction runs the new bytes") {
  auto machine = Boot(AssembleGuest([](x86::Assembler& a) {
    asmjit::Label patched = a.newLabel();
    a.mov(x86::word_ptr(patched, 1), x86::es);  // ES holds 0x0010
    a.bind(patched);
    a.mov(x86::eax, 0x11111111);
    a.hlt();
  }));
  REQUIRE(machine->Run().reason == StopReason::kHalted);
  CHECK(machine->GetRegisters().eax == 0x11110010);
}

// A guest whose FS has base kBasedData and GS base 0xFFFFF000 (so that GS
// offsets wrap around 4 GiB), with kBasedData filled with dwords 0xA0000000 + offset.
constexpr std::uint32_t kBasedData = 0x200000;

std::unique_ptr<Machine> BootWithBasedSegments(const std::function<void(x86::Assembler&)>& body) {
  constexpr std::uint32_t kGdt = 0x300000, kGdtr = 0x300100;
  auto descriptor = [](std::uint32_t base, std::uint8_t access) {
    return 0xFFFFull | static_cast<std::uint64_t>(base & 0xFFFFFF) << 16 |
           static_cast<std::uint64_t>(access) << 40 | 0xCFull << 48 |
           static_cast<std::uint64_t>(base >> 24) << 56;
  };
  auto machine = Boot(AssembleGuest([&](x86::Assembler& a) {
    a.lgdt(x86::ptr_abs(kGdtr));
    a.mov(x86::eax, 0x18);
    a.mov(x86::fs, x86::ax);
    a.mov(x86::eax, 0x20);
    a.mov(x86::gs, x86::ax);
    body(a);
    a.hlt();
  }));
  std::uint32_t pattern[256];
  for (std::uint32_t i = 0; i < 256; ++i) pattern[i] = 0xA0000000u + 4 * i;
  REQUIRE(machine->WritePhysical(kBasedData, pattern, sizeof(pattern)));
  const std::uint64_t gdt[5] = {0, descriptor(0, 0x9B), descriptor(0, 0x93),
                                descriptor(kBasedData, 0x93), descriptor(0xFFFFF000, 0x93)};
  REQUIRE(machine->WritePhysical(kGdt, gdt, sizeof(gdt)));
  const std::uint16_t limit = sizeof(gdt) - 1;
  REQUIRE(machine->WritePhysical(kGdtr, &limit, 2));
  REQUIRE(machine->WritePhysical(kGdtr + 2, &kGdt, 4));
  Registers r = machine->GetRegisters();
  r.esp = 0x180000;
  machine->SetRegisters(r);
  const StopInfo stop = machine->Run();
  REQUIRE_MESSAGE(stop.reason == StopReason::kHalted, stop.message);
  return machine;
}

// Bug this guards against: segment override prefixes were dropped, so fs:/gs:
// accesses with a non-zero base read the wrong linear address.
TEST_CASE("FS and GS bases are added to ModRM, moffs and push operands, wrapping at 4 GiB") {
  auto machine = BootWithBasedSegments([](x86::Assembler& a) {
    a.embed("\x64\xA1\x20\x00\x00\x00", 6);  // mov eax, fs:[0x20] (moffs form)
    a.mov(x86::esi, x86::eax);
    a.mov(x86::ecx, 0x201000);
    a.mov(x86::dh, 0x5A);
    a.embed("\x65\x88\x71\x04", 4);  // mov gs:[ecx+4], dh: 0xFFFFF000 + 0x201004 wraps
    a.mov(x86::edi, x86::dword_ptr_abs(kBasedData + 4));
    a.embed("\x64\xFF\x35\x30\x00\x00\x00", 7);  // push dword fs:[0x30]
    a.pop(x86::ebp);
    a.mov(x86::ecx, 8);
    a.embed("\x64\x8B\x41\x08", 4);  // mov eax, fs:[ecx+8]
  });
  const Registers end = machine->GetRegisters();
  CHECK(end.esi == 0xA0000020);
  CHECK(end.eax == 0xA0000010);
  CHECK(end.edi == 0xA000005A);
  CHECK(end.ebp == 0xA0000030);
}

TEST_CASE("string sources in FS and GS leave ESI an offset into the segment") {
  auto machine = BootWithBasedSegments([](x86::Assembler& a) {
    a.mov(x86::esi, 0x40);
    a.mov(x86::edi, kBasedData + 0x300);
    a.mov(x86::ecx, 2);
    a.embed("\x64\xF3\xA5", 3);  // rep movsd from fs:[esi]
    a.mov(x86::edx, x86::dword_ptr_abs(kBasedData + 0x304));
    a.mov(x86::ebx, x86::esi);
    a.mov(x86::esi, 0x201050);
    a.embed("\x65\xAD", 2);  // lodsd from gs:[esi], wrapping to kBasedData + 0x50
  });
  const Registers end = machine->GetRegisters();
  CHECK(end.edx == 0xA0000044);
  CHECK(end.ebx == 0x48);
  CHECK(end.edi == kBasedData + 0x308);
  CHECK(end.eax == 0xA0000050);
  CHECK(end.esi == 0x201054);
}

TEST_CASE("a machine with no kernel runs code the application wrote, with its FPU state") {
  MachineConfig config;
  config.ram_bytes = 2u << 20;
  config.boot.no_kernel = true;
  auto created = Machine::Create(config);
  REQUIRE(created);
  Machine& machine = **created;
  // mov eax, cr4; or eax, 0x600 (OSFXSR, OSXMMEXCPT); mov cr4, eax;
  // movd eax, xmm0; pcmpeqd xmm1, xmm1; hlt
  const std::uint8_t code[] = {0x0F, 0x20, 0xE0, 0x0D, 0x00, 0x06, 0x00, 0x00, 0x0F, 0x22,
                               0xE0, 0x66, 0x0F, 0x7E, 0xC0, 0x66, 0x0F, 0x76, 0xC9, 0xF4};
  REQUIRE(machine.WritePhysical(0x1000, code, sizeof(code)));
  FpuState fpu = machine.GetFpuState();
  constexpr std::size_t kXmm0 = 160, kXmm1 = 176, kMxcsr = 24;
  const std::uint32_t value = 0x12345678;
  std::memcpy(fpu.fxsave.data() + kXmm0, &value, 4);
  FpuState bad = fpu;
  bad.fxsave[kMxcsr + 3] = 0xFF;
  CHECK_FALSE(machine.SetFpuState(bad));
  REQUIRE(machine.SetFpuState(fpu));
  Registers r = machine.GetRegisters();
  r.eip = 0x1000;
  machine.SetRegisters(r);
  REQUIRE(machine.Run().reason == StopReason::kHalted);
  CHECK(machine.GetRegisters().eax == value);
  const FpuState end = machine.GetFpuState();
  CHECK(std::all_of(end.fxsave.begin() + kXmm1, end.fxsave.begin() + kXmm1 + 16,
                    [](std::uint8_t b) { return b == 0xFF; }));
}

// What the host's FPU control looks like on the vCPU thread, sampled by a
// port read in the middle of guest code.
class FpuControlProbe final : public PortDevice {
 public:
  std::uint32_t PortRead(std::uint16_t, unsigned) override {
    std::uint16_t fcw = 0;
    __asm__ volatile("fnstcw %0" : "=m"(fcw));
    seen_fcw = fcw;
    seen_mxcsr = __builtin_ia32_stmxcsr();
    return 0;
  }
  void PortWrite(std::uint16_t, unsigned, std::uint32_t) override {}
  std::uint16_t seen_fcw = 0;
  std::uint32_t seen_mxcsr = 0;
};

TEST_CASE("the guest's x87 control word and MXCSR never reach the host's code") {
  static constexpr std::uint16_t kProbePort = 0x510;
  auto machine = Boot(AssembleGuest([](x86::Assembler& a) {
    // Round toward zero, exceptions unmasked, in both units.
    testing::EmitEnableSse(a);
    a.mov(x86::esp, 0x90000);
    a.push(0x0C60);
    a.fldcw(x86::word_ptr(x86::esp));
    a.mov(x86::dword_ptr(x86::esp), 0x6000);
    a.ldmxcsr(x86::dword_ptr(x86::esp));
    a.mov(x86::dx, kProbePort);
    a.in(x86::al, x86::dx);
    a.stmxcsr(x86::dword_ptr(x86::esp));
    a.pop(x86::esi);
    a.hlt();
  }));
  FpuControlProbe probe;
  REQUIRE(machine->AddPortDevice(kProbePort, 1, probe));
  std::uint16_t host_fcw = 0;
  __asm__ volatile("fnstcw %0" : "=m"(host_fcw));
  const std::uint32_t host_mxcsr = __builtin_ia32_stmxcsr();
  const StopInfo stop = machine->Run();
  REQUIRE_MESSAGE(stop.reason == StopReason::kHalted, stop.message);
  CHECK(probe.seen_fcw == host_fcw);
  CHECK(probe.seen_mxcsr == host_mxcsr);
  CHECK(machine->GetRegisters().esi == 0x6000);  // the guest kept its own
  std::uint16_t after_fcw = 0;
  __asm__ volatile("fnstcw %0" : "=m"(after_fcw));
  CHECK(after_fcw == host_fcw);
  CHECK(__builtin_ia32_stmxcsr() == host_mxcsr);
}

// A device that computes with long double (x87) when the guest reads it.
class X87Device final : public PortDevice {
 public:
  std::uint32_t PortRead(std::uint16_t, unsigned) override {
    volatile long double third = 1.0L / 3.0L;
    return static_cast<std::uint32_t>(third * 3000.0L + 0.5L);
  }
  void PortWrite(std::uint16_t, unsigned, std::uint32_t) override {}
};

TEST_CASE("a device may use the x87 while the guest's x87 stack is full, and both stay right") {
  static constexpr std::uint16_t kPort = 0x510;
  auto machine = Boot(AssembleGuest([](x86::Assembler& a) {
    a.mov(x86::esp, 0x90000);
    a.fninit();
    for (int i = 0; i < 8; ++i) a.fld1();  // all eight registers in use
    a.mov(x86::dx, kPort);
    a.in(x86::eax, x86::dx);
    a.mov(x86::ebx, x86::eax);
    // The guest's stack: eight ones, which add up to 8.
    for (int i = 0; i < 7; ++i) a.faddp(x86::st1);
    a.push(0);
    a.fistp(x86::dword_ptr(x86::esp));
    a.pop(x86::esi);
    a.fnstsw(x86::ax);
    a.hlt();
  }));
  X87Device device;
  REQUIRE(machine->AddPortDevice(kPort, 1, device));
  const StopInfo stop = machine->Run();
  REQUIRE_MESSAGE(stop.reason == StopReason::kHalted, stop.message);
  const Registers r = machine->GetRegisters();
  CHECK(r.ebx == 1000);
  CHECK(r.esi == 8);
  CHECK((r.eax & 0x41) == 0);  // no stack fault (SF), no invalid operation (IE)
}

TEST_CASE("the serial output callback may use the x87 while the guest's x87 stack is full") {
  MachineConfig config;
  config.ram_bytes = 16u << 20;
  long double seen = 0;
  config.serial_output = [&](std::string_view text) {
    volatile long double third = 1.0L / 3.0L;
    seen = third * 3.0L * static_cast<long double>(text.size());
  };
  config.boot.kernel_image = AssembleGuest([](x86::Assembler& a) {
    a.mov(x86::esp, 0x90000);
    a.fninit();
    for (int i = 0; i < 8; ++i) a.fld1();
    a.mov(x86::dx, 0xE9);  // the debug console
    a.mov(x86::al, 'x');
    a.out(x86::dx, x86::al);
    for (int i = 0; i < 7; ++i) a.faddp(x86::st1);
    a.push(0);
    a.fistp(x86::dword_ptr(x86::esp));
    a.pop(x86::esi);
    a.hlt();
  });
  auto machine = Machine::Create(config);
  REQUIRE(machine);
  REQUIRE((*machine)->Run().reason == StopReason::kHalted);
  CHECK((*machine)->GetRegisters().esi == 8);
  CHECK(seen > 0.999L);
  CHECK(seen < 1.001L);
}

TEST_CASE("invd and wbinvd run as no-ops at CPL 0") {
  auto machine = Boot(AssembleGuest([](x86::Assembler& a) {
    a.wbinvd();
    a.invd();
    a.mov(x86::eax, 1);
    a.hlt();
  }));
  REQUIRE(machine->Run().reason == StopReason::kHalted);
  CHECK(machine->GetRegisters().eax == 1);
  CHECK(machine->GetStats().callouts[static_cast<std::size_t>(CalloutKind::kPaging)] == 2);
}

}  // namespace
}  // namespace bt
