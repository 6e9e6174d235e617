// Exceptions, software interrupts and timer interrupts delivered through the
// guest's IDT, iret, and the double- and triple-fault rules (SDM Vol. 3,
// chapter 6).
#include "tests/support/assembled_guest.h"

#include <bt/machine.h>
#include <bt/stats.h>

#include <doctest/doctest.h>

#include <cstring>
#include <functional>

namespace bt {
namespace {

namespace x86 = asmjit::x86;
using testing::AssembleGuest;
using testing::Here;

constexpr std::uint32_t kGdt = 0x300000, kGdtr = 0x300100, kIdt = 0x301000, kIdtr = 0x300110;
constexpr std::uint32_t kStackTop = 0x380000;
constexpr std::uint16_t kCodeSelector = 0x08;
constexpr std::uint8_t kInterruptGate = 0x8E, kTrapGate = 0x8F, kNotPresentGate = 0x0E;

struct Gate {
  std::uint8_t vector;
  std::uint32_t handler;
  std::uint8_t access;
};

// A guest that loads a flat GDT and an IDT of `idt_limit` with `gates` (the
// handlers' addresses come from the body, so gates are filled after it is
// assembled) and runs with EFLAGS.IF set.
class Guest {
 public:
  explicit Guest(const std::function<void(x86::Assembler&, Guest&)>& body,
                 std::uint16_t idt_limit = 0x7FF) {
    image_ = AssembleGuest([&](x86::Assembler& a) {
      a.lgdt(x86::ptr_abs(kGdtr));
      a.lidt(x86::ptr_abs(kIdtr));
      a.mov(x86::esp, kStackTop);
      body(a, *this);
    });
    MachineConfig config;
    config.ram_bytes = 16u << 20;
    config.boot.kernel_image = image_;
    auto created = Machine::Create(config);
    REQUIRE(created);
    machine_ = std::move(created.value());
    const std::uint64_t gdt[3] = {0, 0x00CF9B000000FFFFull, 0x00CF93000000FFFFull};
    REQUIRE(machine_->WritePhysical(kGdt, gdt, sizeof(gdt)));
    WriteTableRegister(kGdtr, sizeof(gdt) - 1, kGdt);
    WriteTableRegister(kIdtr, idt_limit, kIdt);
    for (const Gate& gate : gates_) {
      const std::uint64_t entry = (gate.handler & 0xFFFFu) | std::uint64_t{kCodeSelector} << 16 |
                                  std::uint64_t{gate.access} << 40 |
                                  std::uint64_t{gate.handler >> 16} << 48;
      REQUIRE(machine_->WritePhysical(kIdt + gate.vector * 8u, &entry, sizeof(entry)));
    }
    Registers r = machine_->GetRegisters();
    r.eflags = 0x202;
    machine_->SetRegisters(r);
  }

  void SetGate(std::uint8_t vector, std::uint32_t handler, std::uint8_t access) {
    gates_.push_back({vector, handler, access});
  }
  Machine& machine() { return *machine_; }

 private:
  void WriteTableRegister(std::uint32_t at, std::uint16_t limit, std::uint32_t base) {
    REQUIRE(machine_->WritePhysical(at, &limit, 2));
    REQUIRE(machine_->WritePhysical(at + 2, &base, 4));
  }

  std::vector<std::uint8_t> image_;
  std::vector<Gate> gates_;
  std::unique_ptr<Machine> machine_;
};

TEST_CASE("#DE goes through an interrupt gate; iret resumes where the handler says") {
  std::uint32_t div_at = 0;
  Guest guest([&](x86::Assembler& a, Guest& g) {
    asmjit::Label handler = a.newLabel(), resume = a.newLabel();
    a.xor_(x86::eax, x86::eax);
    a.xor_(x86::edx, x86::edx);
    a.xor_(x86::ecx, x86::ecx);
    div_at = Here(a);
    a.div(x86::ecx);  // 2 bytes
    a.bind(resume);
    a.mov(x86::ebx, 0x1234);
    a.mov(x86::ecx, x86::esp);
    a.pushfd();
    a.pop(x86::eax);
    a.cli();
    a.hlt();
    a.bind(handler);
    g.SetGate(0, Here(a), kInterruptGate);
    a.mov(x86::edx, x86::dword_ptr(x86::esp));     // saved EIP
    a.mov(x86::esi, x86::dword_ptr(x86::esp, 4));  // saved CS
    a.mov(x86::edi, x86::dword_ptr(x86::esp, 8));  // saved EFLAGS
    a.pushfd();
    a.pop(x86::ebp);  // EFLAGS in the handler
    a.add(x86::dword_ptr(x86::esp), 2);
    a.iretd();
  });
  const StopInfo stop = guest.machine().Run();
  REQUIRE_MESSAGE(stop.reason == StopReason::kHalted, stop.message);
  const Registers r = guest.machine().GetRegisters();
  CHECK(r.edx == div_at);
  CHECK(r.esi == kCodeSelector);
  CHECK((r.edi & 0x200) != 0);    // IF was set when the fault came
  CHECK((r.edi & 0x10000) != 0);  // a fault's frame has RF set
  CHECK((r.ebp & 0x200) == 0);    // an interrupt gate clears it
  CHECK(r.ebx == 0x1234);
  CHECK(r.ecx == kStackTop);
  CHECK((r.eax & 0x200) != 0);  // iret restored it
}

TEST_CASE("int n through a trap gate keeps IF and returns after the instruction") {
  Guest guest([&](x86::Assembler& a, Guest& g) {
    asmjit::Label handler = a.newLabel();
    a.mov(x86::eax, 7);
    a.int_(0x80);
    a.mov(x86::ebx, x86::eax);
    a.cli();
    a.hlt();
    a.bind(handler);
    g.SetGate(0x80, Here(a), kTrapGate);
    a.pushfd();
    a.pop(x86::esi);
    a.add(x86::eax, 100);
    a.iretd();
  });
  const StopInfo stop = guest.machine().Run();
  REQUIRE_MESSAGE(stop.reason == StopReason::kHalted, stop.message);
  const Registers r = guest.machine().GetRegisters();
  CHECK(r.ebx == 107);
  CHECK((r.esi & 0x200) != 0);
}

TEST_CASE("a not-present gate gives #NP with the gate's error code") {
  std::uint32_t int_at = 0;
  Guest guest([&](x86::Assembler& a, Guest& g) {
    asmjit::Label handler = a.newLabel();
    int_at = Here(a);
    a.int_(0x81);
    a.mov(x86::ebx, 0x55);
    a.cli();
    a.hlt();
    a.bind(handler);
    g.SetGate(11, Here(a), kInterruptGate);
    g.SetGate(0x81, Here(a), kNotPresentGate);
    a.pop(x86::esi);                            // error code
    a.mov(x86::edi, x86::dword_ptr(x86::esp));  // the faulting int
    a.add(x86::dword_ptr(x86::esp), 2);
    a.iretd();
  });
  const StopInfo stop = guest.machine().Run();
  REQUIRE_MESSAGE(stop.reason == StopReason::kHalted, stop.message);
  const Registers r = guest.machine().GetRegisters();
  CHECK(r.esi == 0x81 * 8 + 2);  // IDT, not external
  CHECK(r.edi == int_at);
  CHECK(r.ebx == 0x55);
}

TEST_CASE("an exception with no usable gate ends in a double fault, then a triple fault") {
  Guest guest(
      [&](x86::Assembler& a, Guest&) {
        a.ud2();
        a.cli();
        a.hlt();
      },
      /*idt_limit=*/0);
  const StopInfo stop = guest.machine().Run();
  CHECK(stop.reason == StopReason::kTripleFault);
  CHECK(stop.message.find("vector 6") != std::string::npos);
  CHECK(stop.message.find("vector 8") != std::string::npos);
}

TEST_CASE("a double fault is delivered to its own gate with error code 0") {
  Guest guest([&](x86::Assembler& a, Guest& g) {
    asmjit::Label handler = a.newLabel();
    a.xor_(x86::ecx, x86::ecx);
    a.div(x86::ecx);  // #DE, whose gate is not present: #NP, contributory twice
    a.cli();
    a.hlt();
    a.bind(handler);
    g.SetGate(0, Here(a), kNotPresentGate);
    g.SetGate(8, Here(a), kInterruptGate);
    a.pop(x86::esi);
    a.mov(x86::ebx, 0x88);
    a.cli();
    a.hlt();
  });
  const StopInfo stop = guest.machine().Run();
  REQUIRE_MESSAGE(stop.reason == StopReason::kHalted, stop.message);
  const Registers r = guest.machine().GetRegisters();
  CHECK(r.ebx == 0x88);
  CHECK(r.esi == 0);
}

// Each tick of the timer thread makes running code leave at its next event
// poll; the IRQ the dispatcher then raises in the PIC is delivered there,
// without sending the code it enters back at its first poll.
TEST_CASE("a timer interrupt costs translated code one event poll") {
  constexpr std::uint32_t kTicks = 0x300200;
  constexpr std::uint32_t kWanted = 50;
  Guest guest([&](x86::Assembler& a, Guest& g) {
    asmjit::Label wait = a.newLabel(), handler = a.newLabel();
    const auto out = [&a](std::uint16_t port, std::uint8_t value) {
      a.mov(x86::al, value);
      a.out(asmjit::Imm(port), x86::al);
    };
    // The PICs' vectors from 0x20 and 0x28, IRQ0 alone unmasked; PIT
    // channel 0 in mode 2 at about 1 kHz.
    for (const auto& [port, value] : {std::pair<std::uint16_t, std::uint8_t>{0x20, 0x11},
                                      {0x21, 0x20},
                                      {0x21, 0x04},
                                      {0x21, 0x01},
                                      {0xA0, 0x11},
                                      {0xA1, 0x28},
                                      {0xA1, 0x02},
                                      {0xA1, 0x01},
                                      {0x21, 0xFE},
                                      {0xA1, 0xFF},
                                      {0x43, 0x34},
                                      {0x40, 0xA9},
                                      {0x40, 0x04}}) {
      out(port, value);
    }
    a.sti();
    a.bind(wait);
    a.cmp(x86::dword_ptr_abs(kTicks), kWanted);
    a.jb(wait);
    a.cli();
    a.hlt();
    a.bind(handler);
    g.SetGate(0x20, Here(a), kInterruptGate);
    a.inc(x86::dword_ptr_abs(kTicks));
    a.push(x86::eax);
    out(0x20, 0x20);  // EOI
    a.pop(x86::eax);
    a.iretd();
  });
  const StopInfo stop = guest.machine().Run();
  REQUIRE_MESSAGE(stop.reason == StopReason::kHalted, stop.message);
  std::uint32_t ticks = 0;
  REQUIRE(guest.machine().ReadPhysical(kTicks, &ticks, sizeof(ticks)));
  REQUIRE(ticks == kWanted);
  const Stats stats = guest.machine().GetStats();
  const std::uint64_t polls =
      stats.host_faults[static_cast<std::size_t>(HostFaultCause::kEventPoll)];
  // The busy loop notices each tick at an event poll, as it has no other exit.
  CHECK(polls >= kWanted);
  CHECK(polls <= kWanted + kWanted / 4);
}

}  // namespace
}  // namespace bt
