// Privilege levels 1-3 (SDM Vol. 3A chapters 5 and 6; Vol. 2 IRET, RET, INT,
// CALL, JMP, IN/OUT): interrupt delivery and far calls through call gates
// into an inner ring on the stack the TSS holds for it, iret and far ret to
// an outer ring, the faults of privileged and IOPL-sensitive instructions at
// CPL > 0, and the I/O permission bitmap.
// Guests enter ring 3 (or 1) with iret; exceptions go to ring-0 handlers
// that log them and resume in the ring that faulted.
#include "tests/support/system_guest.h"

#include <bt/machine.h>

#include <doctest/doctest.h>

#include <functional>
#include <vector>

namespace bt {
namespace {

namespace x86 = asmjit::x86;
using testing::CheckFault;
using testing::Descriptor;
using testing::EmitFar;
using testing::ExpectSkip;
using testing::Flat;
using testing::Gate;
using testing::Here;
using testing::kBig;
using testing::kOut;
using testing::kSettings;
using Fault = testing::LoggedFault;

constexpr std::uint32_t kTss = 0x302000, kSmallTss = 0x302800;
constexpr std::uint32_t kSyscallFrame = kOut + 0x110;  // what kSyscallVector found
constexpr std::uint32_t kStack0 = testing::kStackTop, kStack1 = 0x370000, kStack3 = 0x360000;

// The I/O permission bitmap covers ports 0-0x3FF, then the 0xFF byte the
// processor may read past its end (SDM Vol. 1, 19.5.2).
constexpr std::uint32_t kIoMapOffset = 0x68, kTssLimit = kIoMapOffset + 0x80;

enum Selector : std::uint16_t {
  kCode0 = 0x08,
  kData0 = 0x10,
  kTssSelector = 0x18,
  kCode3 = 0x23,
  kData3 = 0x2B,
  kCode1 = 0x31,
  kData1 = 0x39,
  kAbsentData1 = 0x41,
  kConforming0 = 0x48,
  kReadOnly1 = 0x51,
  kSmallTssSelector = 0x58,
  // Gates the tests write (SetDescriptor), as they point into the code.
  kGateSlot0 = 0x60,
  kGateSlot1 = 0x68,
  kGateSlot2 = 0x70,
  kGateSlot3 = 0x80,
};

constexpr std::uint64_t kGdtEntries[] = {
    0,
    testing::kFlatCode0,                   // 0x08
    testing::kFlatData0,                   // 0x10
    Descriptor(kTss, kTssLimit, 0x89, 0),  // 0x18 32-bit TSS with an I/O map
    testing::kFlatCode3,                   // 0x20
    testing::kFlatData3,                   // 0x28
    Descriptor(0, 0xFFFFF, 0xBB, kBig),    // 0x30 code, DPL 1
    Descriptor(0, 0xFFFFF, 0xB3, kBig),    // 0x38 data, DPL 1
    Descriptor(0, 0xFFFFF, 0x33, kBig),    // 0x40 data, DPL 1, not present
    Descriptor(0, 0xFFFFF, 0x9F, kBig),    // 0x48 code, DPL 0, conforming
    Descriptor(0, 0xFFFFF, 0xB1, kBig),    // 0x50 data, DPL 1, read-only
    Descriptor(kSmallTss, 0x10, 0x89, 0),  // 0x58 32-bit TSS too short for SS1
    0,                                     // 0x60 kGateSlot0
    0,                                     // 0x68 kGateSlot1
    0,                                     // 0x70 kGateSlot2
    0,                                     // 0x78 unused
    0,                                     // 0x80 kGateSlot3
};

// Gates: exceptions 0-19 to logging ring-0 handlers; these from ring 3.
constexpr std::uint8_t kSyscallVector = 0x80;    // EAX += 100 in ring 0
constexpr std::uint8_t kRing1Vector = 0x81;      // EAX += 1000 in ring 1
constexpr std::uint8_t kFinishVector = 0x82;     // ends the run: cli; hlt in ring 0
constexpr std::uint8_t kOuterGateVector = 0x83;  // a DPL-3 gate to DPL-3 code: #GP

// The shared harness with the GDT above, TR loaded with its TSS, and the
// ring-0 and ring-1 handlers of the vectors above.
class RingGuest : public testing::SystemGuest {
 public:
  explicit RingGuest(const std::function<void(x86::Assembler&)>& body,
                     TranslatorOptions translator = {})
      : RingGuest(body, translator, Handlers{}) {}

  // The handler of kRing1Vector, which runs in ring 1.
  std::uint32_t ring1_handler() const { return ring1_handler_; }
  void SetDescriptor(std::uint16_t selector, std::uint64_t descriptor) {
    REQUIRE(machine().WritePhysical(testing::kGdt + (selector & ~7u), &descriptor, 8));
  }

 private:
  struct Handlers {
    std::uint32_t syscall = 0, ring1 = 0, finish = 0;
  };

  RingGuest(const std::function<void(x86::Assembler&)>& body, TranslatorOptions translator,
            Handlers handlers)
      : testing::SystemGuest(
            kGdtEntries,
            [&](x86::Assembler& a) {
              EmitKernel(a, handlers);
              body(a);
            },
            translator),
        ring1_handler_(handlers.ring1) {
    SetGate(kSyscallVector, Gate(handlers.syscall, kCode0, 0xEF));  // trap gate, DPL 3
    SetGate(kRing1Vector, Gate(handlers.ring1, kCode1 & ~3, 0xEE));
    SetGate(kFinishVector, Gate(handlers.finish, kCode0, 0xEE));
    SetGate(kOuterGateVector, Gate(handlers.finish, kCode3 & ~3, 0xEE));
    // ESP0/SS0, ESP1/SS1, the I/O map base, and a map that denies every
    // port but 0x80 and 0x86.
    Write32(kTss + 4, kStack0);
    Write32(kTss + 8, kData0);
    Write32(kTss + 12, kStack1);
    Write32(kTss + 16, kData1);
    Write32(kTss + 0x64, kIoMapOffset << 16);
    std::vector<std::uint8_t> map(kTssLimit + 1 - kIoMapOffset, 0xFF);
    map[0x80 / 8] &= ~1;
    map[0x86 / 8] &= ~(1 << 6);
    REQUIRE(machine().WritePhysical(kTss + kIoMapOffset, map.data(), map.size()));
    Write32(kSmallTss + 4, kStack0);
    Write32(kSmallTss + 8, kData0);
  }

  static void EmitKernel(x86::Assembler& a, Handlers& handlers) {
    asmjit::Label start = a.newLabel();
    a.mov(x86::eax, kTssSelector);
    a.ltr(x86::ax);
    a.jmp(start);
    handlers.syscall = Here(a);
    a.mov(Flat(kOut + 0x100), x86::esp);
    a.push(x86::ebx);
    for (int i = 0; i < 5; ++i) {
      a.mov(x86::ebx, x86::dword_ptr(x86::esp, 4 + 4 * i));
      a.mov(Flat(kSyscallFrame + 4 * i), x86::ebx);
    }
    a.pop(x86::ebx);
    a.add(x86::eax, 100);
    a.iretd();
    handlers.ring1 = Here(a);
    a.mov(Flat(kOut + 0x104), x86::esp);
    a.mov(Flat(kOut + 0x108, 2), x86::ss);
    a.add(x86::eax, 1000);
    a.iretd();
    handlers.finish = Here(a);
    a.cli();
    a.hlt();
    a.bind(start);
  }

  std::uint32_t ring1_handler_ = 0;
};

// Pushes the address of `label`; registers and flags stay.
void PushLabel(x86::Assembler& a, const asmjit::Label& label) {
  a.push(x86::eax);
  a.lea(x86::eax, x86::ptr(label));
  a.xchg(x86::dword_ptr(x86::esp), x86::eax);
}

// Enters `code` at `target` with iret: SS:ESP = `stack`:`esp`, EFLAGS =
// `eflags`. Returns the address of the iret.
std::uint32_t EnterRing(x86::Assembler& a, const asmjit::Label& target, std::uint16_t code = kCode3,
                        std::uint16_t stack = kData3, std::uint32_t esp = kStack3,
                        std::uint32_t eflags = 0x2) {
  a.push(stack);
  a.push(esp);
  a.push(eflags);
  a.push(code);
  PushLabel(a, target);
  const std::uint32_t at = Here(a);
  a.iretd();
  return at;
}

// Emits code that enters ring 3 (CS:EIP kCode3:the code `user` emits,
// SS:ESP kData3:kStack3, EFLAGS `eflags`) and ends the run after it. DS is
// kData3, as an OS would load it before the iret, unless `keep_ds`.
void InRing3(x86::Assembler& a, const std::function<void()>& user, std::uint32_t eflags = 0x2,
             bool keep_ds = false) {
  asmjit::Label entry = a.newLabel();
  if (!keep_ds) {
    a.push(kData3);
    a.pop(x86::ds);
  }
  EnterRing(a, entry, kCode3, kData3, kStack3, eflags);
  a.bind(entry);
  user();
  a.int_(kFinishVector);
}

struct Expected {
  std::uint32_t vector, error_code, eip, cs = kCode3;
};

// Runs `guest` and checks that it logged the `expected` exceptions and no
// other; returns the registers at the end.
Registers RunExpecting(RingGuest& guest, const std::vector<Expected>& expected) {
  const Registers r = guest.Run();
  const std::vector<Fault> faults = guest.Faults();
  REQUIRE(faults.size() == expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i) {
    CAPTURE(i);
    CheckFault(faults[i], expected[i].vector, expected[i].error_code, expected[i].eip,
               expected[i].cs);
  }
  return r;
}

TEST_CASE("int n from CPL 3 switches to SS0:ESP0 from the TSS; iret returns to CPL 3") {
  for (const TranslatorOptions& settings : kSettings) {
    std::uint32_t after_int = 0;
    RingGuest guest(
        [&](x86::Assembler& a) {
          a.mov(x86::eax, kData3);
          a.mov(x86::es, x86::ax);
          a.mov(x86::eax, kConforming0);
          a.mov(x86::fs, x86::ax);
          a.mov(x86::eax, kData0);
          a.mov(x86::gs, x86::ax);
          a.mov(x86::ds, x86::ax);
          InRing3(
              a,
              [&] {
                a.mov(x86::eax, 7);
                a.int_(kSyscallVector);
                after_int = Here(a);
                a.mov(x86::ebx, x86::eax);
                a.mov(x86::ecx, x86::cs);
                a.mov(x86::edx, x86::ss);
                a.mov(x86::esi, x86::esp);
                a.mov(x86::edi, x86::es);
                a.mov(x86::eax, x86::fs);
                a.shl(x86::eax, 16);
                a.mov(x86::ax, x86::gs);
                a.mov(x86::ebp, x86::ds);
              },
              0x202, /*keep_ds=*/true);
        },
        settings);
    const Registers r = RunExpecting(guest, {});
    // The ring-0 stack held SS, ESP, EFLAGS, CS, EIP.
    CHECK(guest.Read32(kOut + 0x100) == kStack0 - 20);
    CHECK(guest.Read32(kSyscallFrame) == after_int);
    CHECK(guest.Read32(kSyscallFrame + 4) == kCode3);
    CHECK((guest.Read32(kSyscallFrame + 8) & 0x200) != 0);
    CHECK(guest.Read32(kSyscallFrame + 12) == kStack3);
    CHECK(guest.Read32(kSyscallFrame + 16) == kData3);
    CHECK(r.ebx == 107);
    CHECK(r.ecx == kCode3);
    CHECK(r.edx == kData3);
    CHECK(r.esi == kStack3);
    // iret to CPL 3 nulled GS and DS (DPL 0 data), kept ES (DPL 3) and FS
    // (conforming code).
    CHECK(r.edi == kData3);
    CHECK(r.eax == kConforming0 << 16);
    CHECK(r.ebp == 0);
  }
}

TEST_CASE("a gate to a DPL-1 segment switches to SS1:ESP1; CPL 1 returns to CPL 3") {
  RingGuest guest([&](x86::Assembler& a) {
    InRing3(a, [&] {
      a.mov(x86::eax, 1);
      a.int_(kRing1Vector);
      a.mov(x86::ebx, x86::eax);
      a.mov(x86::esi, x86::esp);
    });
  });
  const Registers r = RunExpecting(guest, {});
  CHECK(r.ebx == 1001);
  CHECK(r.esi == kStack3);
  CHECK(guest.Read32(kOut + 0x104) == kStack1 - 20);
  CHECK(guest.Read32(kOut + 0x108) == kData1);
}

TEST_CASE("exceptions at CPL 3 reach ring-0 handlers with the user SS:ESP in the frame") {
  std::uint32_t at = 0;
  RingGuest guest(
      [&](x86::Assembler& a) { InRing3(a, [&] { at = ExpectSkip(a, [&] { a.ud2(); }); }); });
  RunExpecting(guest, {{6, 0, at}});
  CHECK(guest.Faults()[0].esp == kStack3);
  CHECK(guest.Faults()[0].ss == kData3);
}

TEST_CASE("privileged instructions at CPL 3 are #GP(0) at the instruction") {
  std::vector<Expected> expected;
  RingGuest guest([&](x86::Assembler& a) {
    InRing3(a, [&] {
      const std::function<void()> instructions[] = {
          [&] { a.hlt(); },
          [&] { a.lgdt(x86::ptr_abs(testing::kGdtr)); },
          [&] { a.lidt(x86::ptr_abs(testing::kIdtr)); },
          [&] { a.lldt(x86::ax); },
          [&] { a.ltr(x86::ax); },
          [&] { a.mov(x86::cr0, x86::eax); },
          [&] { a.mov(x86::eax, x86::cr3); },
          [&] { a.mov(x86::eax, x86::dr7); },
          [&] { a.clts(); },
          [&] { a.lmsw(x86::ax); },
          [&] { a.invlpg(x86::ptr_abs(kOut)); },
          [&] { a.wbinvd(); },
          [&] { a.invd(); },
          [&] { a.rdmsr(); },
          [&] { a.wrmsr(); },
          [&] { a.sysexit(); },
          // IOPL 0 keeps IF from CPL 3.
          [&] { a.cli(); },
          [&] { a.sti(); },
      };
      for (const auto& emit : instructions) expected.push_back({13, 0, ExpectSkip(a, emit)});
    });
  });
  RunExpecting(guest, expected);
}

TEST_CASE("cli and sti work at CPL <= IOPL; popf changes IOPL at CPL 0 only, IF at CPL <= IOPL") {
  RingGuest guest([&](x86::Assembler& a) {
    InRing3(
        a,
        [&] {
          a.cli();
          a.pushfd();
          a.pop(x86::ebx);
          a.sti();
          // IOPL 3 -> 0 does not take at CPL 3; IF does.
          a.push(0x0002);
          a.popfd();
          a.pushfd();
          a.pop(x86::ecx);
        },
        0x3202);
  });
  const Registers r = RunExpecting(guest, {});
  CHECK((r.ebx & 0x3200) == 0x3000);
  CHECK((r.ecx & 0x3200) == 0x3000);
}

TEST_CASE("popf at CPL 3 with IOPL 0 leaves IF alone without a fault") {
  RingGuest guest([&](x86::Assembler& a) {
    InRing3(
        a,
        [&] {
          a.push(0x3002);  // IF clear, IOPL 3
          a.popfd();
          a.pushfd();
          a.pop(x86::ebx);
        },
        0x202);
  });
  CHECK((RunExpecting(guest, {}).ebx & 0x3200) == 0x200);
}

TEST_CASE("iret at CPL 3 cannot change IOPL, nor IF with IOPL < 3") {
  RingGuest guest([&](x86::Assembler& a) {
    InRing3(
        a,
        [&] {
          asmjit::Label next = a.newLabel();
          EnterRing(a, next, kCode3, kData3, kStack3, 0x3002);
          a.bind(next);
          a.pushfd();
          a.pop(x86::ebx);
        },
        0x202);
  });
  CHECK((RunExpecting(guest, {}).ebx & 0x3200) == 0x200);
}

TEST_CASE("rdtsc at CPL 3 is #GP(0) only with CR4.TSD") {
  std::uint32_t at = 0;
  RingGuest guest([&](x86::Assembler& a) {
    a.mov(x86::eax, x86::cr4);
    a.or_(x86::eax, 4);
    a.mov(x86::cr4, x86::eax);
    a.rdtsc();  // CPL 0: fine
    InRing3(a, [&] { at = ExpectSkip(a, [&] { a.rdtsc(); }); });
  });
  RunExpecting(guest, {{13, 0, at}});
}

TEST_CASE("in and out at CPL > IOPL follow the TSS's I/O permission bitmap") {
  std::vector<Expected> denied;
  RingGuest guest([&](x86::Assembler& a) {
    InRing3(a, [&] {
      auto deny = [&](const std::function<void()>& emit) {
        denied.push_back({13, 0, ExpectSkip(a, emit)});
      };
      a.in(x86::al, 0x80);
      a.out(0x80, x86::al);
      a.mov(x86::edx, 0x86);
      a.in(x86::al, x86::dx);
      deny([&] { a.in(x86::al, 0x81); });
      deny([&] { a.out(0x81, x86::al); });
      // A word at 0x86 also needs 0x87; a dword at 0x80 needs 0x81-0x83.
      deny([&] { a.in(x86::ax, x86::dx); });
      deny([&] { a.out(0x80, x86::eax); });
      // Past the TSS limit.
      a.mov(x86::edx, 0x400);
      deny([&] { a.in(x86::al, x86::dx); });
    });
  });
  RunExpecting(guest, denied);
}

TEST_CASE("IOPL 3 allows every port at CPL 3 without the bitmap") {
  RingGuest guest([&](x86::Assembler& a) {
    InRing3(
        a,
        [&] {
          a.in(x86::al, 0x81);
          a.mov(x86::edx, 0x400);
          a.in(x86::al, x86::dx);
        },
        0x3002);
  });
  RunExpecting(guest, {});
}

TEST_CASE("a bad SS1 in the TSS is #TS(selector), a not-present one #SS(selector)") {
  struct Case {
    std::uint32_t ss1;
    std::uint32_t vector, error_code;
  };
  const Case cases[] = {
      {0, 10, 0},                              // null
      {kData0 | 1, 10, kData0},                // DPL 0
      {kData1 & ~3u, 10, kData1 & ~3u},        // RPL 0
      {kReadOnly1, 10, kReadOnly1 & ~3u},      // not writable
      {kCode1, 10, kCode1 & ~3u},              // code
      {0xF9, 10, 0xF8},                        // past the GDT limit
      {kAbsentData1, 12, kAbsentData1 & ~3u},  // not present
  };
  std::vector<Expected> expected;
  RingGuest guest([&](x86::Assembler& a) {
    InRing3(a, [&] {
      for (const Case& c : cases) {
        a.mov(x86::dword_ptr_abs(kTss + 16), c.ss1);  // no paging: ring 3 may write the TSS
        expected.push_back({c.vector, c.error_code, ExpectSkip(a, [&] { a.int_(kRing1Vector); })});
      }
    });
  });
  RunExpecting(guest, expected);
}

TEST_CASE("a TSS too short for the new SS:ESP is #TS(TR)") {
  std::uint32_t at = 0;
  RingGuest guest([&](x86::Assembler& a) {
    a.mov(x86::eax, kSmallTssSelector);
    a.ltr(x86::ax);
    InRing3(a, [&] { at = ExpectSkip(a, [&] { a.int_(kRing1Vector); }); });
  });
  RunExpecting(guest, {{10, kSmallTssSelector, at}});
}

TEST_CASE("a fault that a bad TSS stack turns into #TS has EXT set in the #TS error code") {
  std::uint32_t at = 0;
  RingGuest guest(
      [&](x86::Assembler& a) { InRing3(a, [&] { at = ExpectSkip(a, [&] { a.ud2(); }); }); });
  guest.SetGate(6, Gate(guest.ring1_handler(), kCode1 & ~3, 0x8E));
  guest.Write32(kTss + 16, 0);  // SS1
  RunExpecting(guest, {{10, 1, at}});
}

TEST_CASE("gates into an outer ring and int n through a DPL-0 gate from CPL 3 are #GP") {
  std::uint32_t outer = 0, inner = 0;
  RingGuest guest([&](x86::Assembler& a) {
    outer = ExpectSkip(a, [&] { a.int_(kOuterGateVector); });
    InRing3(a, [&] { inner = ExpectSkip(a, [&] { a.int_(3); }); });
  });
  RunExpecting(guest, {{13, kCode3 & ~3u, outer, kCode0}, {13, 3 * 8 + 2, inner}});
}

TEST_CASE("iret to an outer ring checks the popped SS: #GP(SS), #SS if not present") {
  struct Case {
    std::uint16_t cs, ss;
    std::uint32_t vector, error_code;
  };
  const Case cases[] = {
      {kCode3, 0, 13, 0},
      {kCode3, kData3 & ~3u, 13, kData3 & ~3u},  // RPL 0 for CS RPL 3
      {kCode3, kData1 | 3, 13, kData1 & ~3u},    // DPL 1 for CS RPL 3
      {kCode1, kAbsentData1, 12, kAbsentData1 & ~3u},
  };
  std::vector<Expected> expected;
  RingGuest guest([&](x86::Assembler& a) {
    asmjit::Label user = a.newLabel();
    for (const Case& c : cases) {
      ExpectSkip(a, [&] {
        expected.push_back({c.vector, c.error_code, EnterRing(a, user, c.cs, c.ss), kCode0});
      });
    }
    testing::Halt(a);
    a.bind(user);
    a.ud2();
  });
  RunExpecting(guest, expected);
}

TEST_CASE("iret to a CS whose DPL differs from its RPL is #GP(CS)") {
  std::uint32_t at = 0;
  RingGuest guest([&](x86::Assembler& a) {
    asmjit::Label user = a.newLabel();
    ExpectSkip(a, [&] { at = EnterRing(a, user, kCode0 | 3); });
    testing::Halt(a);
    a.bind(user);
    a.ud2();
  });
  RunExpecting(guest, {{13, kCode0, at, kCode0}});
}

TEST_CASE("far ret to an outer ring pops SS:ESP, releasing parameters on both stacks") {
  RingGuest guest([&](x86::Assembler& a) {
    asmjit::Label user = a.newLabel();
    a.push(kData3);
    a.push(kStack3);
    a.push(0x1111);  // parameters the callee releases
    a.push(0x2222);
    a.push(kCode3);
    PushLabel(a, user);
    a.retf(8);
    a.bind(user);
    a.mov(x86::eax, x86::cs);
    a.mov(x86::ebx, x86::ss);
    a.mov(x86::ecx, x86::esp);
    a.mov(x86::edx, x86::ds);
    a.int_(kFinishVector);
  });
  const Registers r = RunExpecting(guest, {});
  CHECK(r.eax == kCode3);
  CHECK(r.ebx == kData3);
  CHECK(r.ecx == kStack3 + 8);
  CHECK(r.edx == 0);  // DS held the DPL-0 data segment
}

TEST_CASE("far ret to an inner ring is #GP(CS)") {
  std::uint32_t at = 0;
  RingGuest guest([&](x86::Assembler& a) {
    asmjit::Label inner = a.newLabel(), user_end = a.newLabel();
    InRing3(a, [&] {
      a.push(kCode0);
      PushLabel(a, inner);
      at = ExpectSkip(a, [&] { a.retf(); });
      a.jmp(user_end);
      a.bind(inner);
      a.ud2();
      a.bind(user_end);
    });
  });
  RunExpecting(guest, {{13, kCode0, at}});
}

// A call gate with `parameters` to copy on a stack switch; access 0xEC is a
// present 32-bit call gate of DPL 3, 0x8C one of DPL 0.
constexpr std::uint64_t CallGate(std::uint32_t offset, std::uint16_t selector, std::uint8_t access,
                                 unsigned parameters = 0) {
  return Gate(offset, selector, access) | std::uint64_t{parameters} << 32;
}

TEST_CASE("far call through a call gate from CPL 3 enters ring 0 on SS0:ESP0 with the parameters") {
  for (const TranslatorOptions& settings : kSettings) {
    std::uint32_t procedure = 0, after_call = 0;
    RingGuest guest(
        [&](x86::Assembler& a) {
          InRing3(a, [&] {
            a.push(0x2222);
            a.push(0x1111);
            EmitFar(a, true, kGateSlot0 | 3);
            after_call = Here(a);
            a.mov(x86::ebx, x86::esp);
            a.mov(x86::ecx, x86::cs);
            a.mov(x86::edx, x86::ss);
          });
          procedure = Here(a);
          a.mov(x86::dword_ptr_abs(kOut), x86::esp);
          a.mov(x86::word_ptr_abs(kOut + 4), x86::cs);
          a.mov(x86::word_ptr_abs(kOut + 8), x86::ss);
          for (int i = 0; i < 6; ++i) {
            a.mov(x86::eax, x86::dword_ptr(x86::esp, 4 * i));
            a.mov(x86::dword_ptr_abs(kOut + 12 + 4 * i), x86::eax);
          }
          a.retf(8);
        },
        settings);
    guest.SetDescriptor(kGateSlot0, CallGate(procedure, kCode0, 0xEC, 2));
    const Registers r = RunExpecting(guest, {});
    CHECK(guest.Read32(kOut) == kStack0 - 24);
    CHECK(guest.Read32(kOut + 4) == kCode0);
    CHECK(guest.Read32(kOut + 8) == kData0);
    const std::uint32_t frame[6] = {after_call, kCode3, 0x1111, 0x2222, kStack3 - 8, kData3};
    for (int i = 0; i < 6; ++i) {
      CAPTURE(i);
      CHECK(guest.Read32(kOut + 12 + 4 * i) == frame[i]);
    }
    CHECK(r.ebx == kStack3);  // retf 8 released the parameters on both stacks
    CHECK(r.ecx == kCode3);
    CHECK(r.edx == kData3);
  }
}

TEST_CASE(
    "a call gate to the same ring pushes CS:EIP only; jmp through a call gate pushes nothing") {
  std::uint32_t procedure = 0, jumped = 0, after_call = 0;
  RingGuest guest([&](x86::Assembler& a) {
    asmjit::Label over = a.newLabel();
    a.mov(x86::esi, x86::esp);
    EmitFar(a, true, kGateSlot0);
    after_call = Here(a);
    EmitFar(a, false, kGateSlot1);
    a.jmp(over);
    procedure = Here(a);
    a.mov(x86::ebx, x86::esp);
    a.mov(x86::ecx, x86::dword_ptr(x86::esp));
    a.mov(x86::edx, x86::dword_ptr(x86::esp, 4));
    a.retf();
    jumped = Here(a);
    a.mov(x86::edi, x86::esp);
    a.bind(over);
    testing::Halt(a);
  });
  guest.SetDescriptor(kGateSlot0, CallGate(procedure, kCode0, 0x8C, 5));
  guest.SetDescriptor(kGateSlot1, CallGate(jumped, kCode0, 0x8C));
  const Registers r = RunExpecting(guest, {});
  CHECK(r.ebx == r.esi - 8);
  CHECK(r.ecx == after_call);
  CHECK(r.edx == kCode0);
  CHECK(r.edi == r.esi);
}

TEST_CASE("call gate checks: gate DPL and RPL, presence, jmp to an inner ring, the new stack") {
  std::vector<Expected> expected;
  RingGuest guest([&](x86::Assembler& a) {
    auto expect = [&](std::uint32_t vector, std::uint32_t error_code, std::uint16_t cs,
                      const std::function<void()>& emit) {
      expected.push_back({vector, error_code, ExpectSkip(a, emit), cs});
    };
    // RPL 3 above the gate's DPL 0.
    expect(13, kGateSlot1, kCode0, [&] { EmitFar(a, true, kGateSlot1 | 3); });
    expect(11, kGateSlot2, kCode0, [&] { EmitFar(a, true, kGateSlot2); });
    InRing3(a, [&] {
      expect(13, kGateSlot1, kCode3, [&] { EmitFar(a, true, kGateSlot1); });
      // A jmp through a gate cannot leave ring 3.
      expect(13, kCode0, kCode3, [&] { EmitFar(a, false, kGateSlot0); });
      // SS1 is null: #TS(0), and no EXT for an instruction.
      a.mov(x86::dword_ptr_abs(kTss + 16), 0);
      expect(10, 0, kCode3, [&] { EmitFar(a, true, kGateSlot3 | 3); });
    });
  });
  guest.SetDescriptor(kGateSlot0, CallGate(0, kCode0, 0xEC));
  guest.SetDescriptor(kGateSlot1, CallGate(0, kCode0, 0x8C));
  guest.SetDescriptor(kGateSlot2, CallGate(0, kCode0, 0x0C));  // not present
  guest.SetDescriptor(kGateSlot3, CallGate(0, kCode1 & ~3, 0xEC));
  RunExpecting(guest, expected);
}

// With paging, what an emulated instruction at CPL 3 reads or writes as its
// operand is a user-mode access: a supervisor page is #PF with the U bit.
TEST_CASE("operands of emulated instructions at CPL 3 are user-mode accesses under paging") {
  constexpr std::uint32_t kDirectory = 0x900000, kSupervisorPage = 0x800000;
  std::vector<Expected> expected;
  RingGuest guest([&](x86::Assembler& a) {
    testing::EmitEnablePaging(a, kDirectory);
    InRing3(a, [&] {
      expected.push_back(
          {14, 0x7, ExpectSkip(a, [&] { a.smsw(x86::word_ptr_abs(kSupervisorPage)); })});
      a.smsw(x86::word_ptr_abs(kOut + 0x200));  // a user page: fine
    });
  });
  // 4 MiB pages: [0, 4 MiB) user, [8, 12 MiB) supervisor only.
  const std::uint32_t directory[3] = {0x87, 0, 0x800083};
  REQUIRE(guest.machine().WritePhysical(kDirectory, directory, sizeof(directory)));
  RunExpecting(guest, expected);
  CHECK((guest.Read32(kOut + 0x200) & 0xFFFF) == 0x0011);  // PE ET: PG is not in the MSW
}

// The indirect-branch table is shared by both privilege views: what ring 0
// entered through it must not be reachable from ring 3 without the fetch
// check (#PF with the U bit for a supervisor page).
TEST_CASE("ring 3 cannot reach supervisor code through the indirect-branch table") {
  constexpr std::uint32_t kDirectory = 0x900000, kSupervisorCode = 0x800000;
  std::vector<Expected> expected;
  RingGuest guest([&](x86::Assembler& a) {
    testing::EmitEnablePaging(a, kDirectory);
    a.mov(x86::ebx, kSupervisorCode);
    for (int i = 0; i < 3; ++i) a.call(x86::ebx);  // fills the table in ring 0
    a.mov(x86::esi, x86::eax);
    InRing3(a, [&] {
      a.mov(x86::ebx, kSupervisorCode);
      ExpectSkip(a, [&] { a.call(x86::ebx); });
      expected.push_back({14, 0x5, kSupervisorCode});
    });
  });
  const std::uint32_t directory[3] = {0x87, 0, 0x800083};  // user, -, supervisor 4 MiB pages
  REQUIRE(guest.machine().WritePhysical(kDirectory, directory, sizeof(directory)));
  const std::uint8_t code[] = {0xB8, 0x77, 0, 0, 0, 0xC3};  // mov eax, 0x77; ret
  REQUIRE(guest.machine().WritePhysical(kSupervisorCode, code, sizeof(code)));
  const Registers r = RunExpecting(guest, expected);
  CHECK(r.esi == 0x77);
}

}  // namespace
}  // namespace bt
