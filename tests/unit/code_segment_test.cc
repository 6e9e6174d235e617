// 32-bit code segments with a base and a limit (SDM Vol. 3A 3.4.5, 5.3; Vol.
// 2 CALL, JMP, Jcc, LOOP, RET, INT n, IRET): instructions are fetched at
// CS.base + EIP; EIP, the return addresses near calls push and the EIP of
// exception and interrupt frames are offsets; a fetch of a byte beyond the
// limit raises #GP(0) at the instruction that does not fit, and a near
// branch to an offset beyond it raises #GP(0) at the branch, before it
// changes anything. Units translated in one code segment never run in
// another at the same offsets, and flat code keeps its inline
// indirect-branch table. The code of based segments is assembled at offset
// 0 and written at the segment's base, so that its labels are offsets.
#include "tests/support/system_guest.h"

#include <bt/machine.h>

#include <doctest/doctest.h>

#include <cstring>
#include <functional>
#include <tuple>
#include <vector>

namespace bt {
namespace {

namespace x86 = asmjit::x86;
using asmjit::Imm;
using asmjit::Label;
using testing::CheckFault;
using testing::Descriptor;
using testing::EmitFar;
using testing::ExpectSkip;
using testing::Flat;
using testing::Here;
using testing::kByteGranular32;
using testing::kOut;
using Fault = testing::LoggedFault;

constexpr std::uint32_t kBaseA = 0x10000, kBaseB = 0x20000, kBaseRunOff = 0x30000;
constexpr std::uint32_t kLimit = 0xFFFF, kSmallLimit = 0x7FF, kRunOffLimit = 0xF;
constexpr std::uint32_t kGp = 13, kUd = 6;
// Beyond kSmallLimit, within kLimit.
constexpr std::uint32_t kFarOffset = 0x900;

enum Selector : std::uint16_t {
  kCode0 = 0x08,
  kCodeA = 0x18,        // base kBaseA, limit kLimit
  kCodeB = 0x20,        // base kBaseB, limit kLimit
  kSmallA = 0x28,       // base kBaseA, limit kSmallLimit
  kRunOff = 0x30,       // base kBaseRunOff, limit kRunOffLimit
  kGateBeyond = 0x38,   // call gate to kSmallA:kFarOffset
  kGateA = 0x40,        // call gate to kCodeA:0
  kConformingA = 0x48,  // base kBaseA, limit kLimit, conforming
};

constexpr std::uint64_t kGdtEntries[] = {
    0,
    testing::kFlatCode0,                                           // 0x08
    testing::kFlatData0,                                           // 0x10
    Descriptor(kBaseA, kLimit, 0x9B, kByteGranular32),             // 0x18
    Descriptor(kBaseB, kLimit, 0x9B, kByteGranular32),             // 0x20
    Descriptor(kBaseA, kSmallLimit, 0x9B, kByteGranular32),        // 0x28
    Descriptor(kBaseRunOff, kRunOffLimit, 0x9B, kByteGranular32),  // 0x30
    testing::Gate(kFarOffset, kSmallA, 0x8C),                      // 0x38
    testing::Gate(0, kCodeA, 0x8C),                                // 0x40
    Descriptor(kBaseA, kLimit, 0x9F, kByteGranular32),             // 0x48
};

// The code of a segment: `body` assembled at offset 0.
std::vector<std::uint8_t> AssembleSegment(const std::function<void(x86::Assembler&)>& body) {
  asmjit::CodeHolder code;
  code.init(asmjit::Environment(asmjit::Arch::kX86), 0);
  x86::Assembler a(&code);
  body(a);
  code.flatten();
  code.resolveUnresolvedLinks();
  code.relocateToBase(0);
  std::vector<std::uint8_t> bytes(code.codeSize());
  code.copyFlattenedData(bytes.data(), bytes.size());
  return bytes;
}

std::uint32_t Offset(const x86::Assembler& a) { return static_cast<std::uint32_t>(a.offset()); }

void PadTo(x86::Assembler& a, std::uint32_t offset) {
  while (Offset(a) < offset) a.nop();
}

x86::Mem Out(unsigned index) { return Flat(kOut + 4 * index); }

x86::Mem ThroughCs(x86::Mem mem) {
  mem.setSegment(x86::cs);
  return mem;
}

// ExpectSkip in a segment's code: returns the faulting instruction's offset.
std::uint32_t ExpectSkipHere(x86::Assembler& a, const std::function<void()>& emit_faulting) {
  return ExpectSkip(a, emit_faulting, 0);
}

struct SegmentCode {
  std::uint32_t base;
  std::vector<std::uint8_t> code;
};

// Runs the flat `body`, then halts, with `segments` in RAM, under each
// translator setting; `prepare` may change the guest before it runs, and
// `check` sees it after.
void RunEverySetting(const std::function<void(x86::Assembler&)>& body,
                     const std::vector<SegmentCode>& segments,
                     const std::function<void(testing::SystemGuest&)>& check,
                     const std::function<void(testing::SystemGuest&)>& prepare = nullptr) {
  for (const TranslatorOptions& settings : testing::kSettings) {
    CAPTURE(settings.max_unit_instructions);
    CAPTURE(settings.chaining);
    testing::SystemGuest guest(
        kGdtEntries,
        [&](x86::Assembler& a) {
          body(a);
          testing::Halt(a);
        },
        settings);
    for (const SegmentCode& segment : segments) {
      REQUIRE(
          guest.machine().WritePhysical(segment.base, segment.code.data(), segment.code.size()));
    }
    if (prepare) prepare(guest);
    guest.Run();
    check(guest);
  }
}

void CheckFaults(
    testing::SystemGuest& guest,
    const std::vector<std::tuple<std::uint32_t, std::uint32_t, std::uint16_t>>& expected) {
  const std::vector<Fault> faults = guest.Faults();
  REQUIRE(faults.size() == expected.size());
  for (std::size_t i = 0; i < faults.size(); ++i) {
    CAPTURE(i);
    const auto& [vector, eip, cs] = expected[i];
    CheckFault(faults[i], vector, 0, eip, cs);
  }
}

TEST_CASE("code in a CS with a base runs at offsets: calls, tables, cs: data, faults, interrupts") {
  std::uint32_t after_call = 0, after_indirect = 0, after_int = 0, ud2_at = 0, read_at = 0,
                write_at = 0, handler = 0, handler_after_call = 0;
  const std::vector<std::uint8_t> code = AssembleSegment([&](x86::Assembler& a) {
    Label sub = a.newLabel(), table = a.newLabel(), joined = a.newLabel(), value = a.newLabel();
    Label targets[3] = {a.newLabel(), a.newLabel(), a.newLabel()};
    a.call(sub);
    after_call = Offset(a);
    a.mov(Out(0), x86::eax);
    a.mov(x86::ecx, 2);
    a.jmp(ThroughCs(x86::dword_ptr(table, x86::ecx, 2)));
    for (unsigned i = 0; i < 3; ++i) {
      a.bind(targets[i]);
      a.mov(Out(1), 0xA0 + i);
      a.jmp(joined);
    }
    a.bind(joined);
    a.lea(x86::eax, x86::ptr(sub));
    a.call(x86::eax);
    after_indirect = Offset(a);
    a.mov(Out(2), x86::eax);
    Label top = a.newLabel();
    a.mov(x86::ecx, 100);
    a.xor_(x86::edx, x86::edx);
    a.bind(top);
    a.add(x86::edx, x86::ecx);
    a.dec(x86::ecx);
    a.jnz(top);
    a.mov(Out(3), x86::edx);
    a.int_(0x40);
    after_int = Offset(a);
    ud2_at = ExpectSkipHere(a, [&] { a.ud2(); });
    a.mov(x86::eax, ThroughCs(x86::dword_ptr(value)));
    a.mov(Out(4), x86::eax);
    read_at =
        ExpectSkipHere(a, [&] { a.mov(x86::eax, ThroughCs(x86::dword_ptr_abs(kLimit - 1))); });
    write_at = ExpectSkipHere(a, [&] { a.mov(ThroughCs(x86::dword_ptr(value)), x86::ecx); });
    a.retf();
    a.bind(sub);
    a.mov(x86::eax, x86::dword_ptr(x86::esp));
    a.ret();
    a.bind(value);
    a.dd(0x5EC0DE);
    a.bind(table);
    for (const Label& target : targets) a.embedLabel(target);
    // The handler of int 0x41, through an interrupt gate into this segment.
    handler = Offset(a);
    a.call(sub);
    handler_after_call = Offset(a);
    a.mov(Out(7), x86::eax);
    a.mov(x86::eax, x86::dword_ptr(x86::esp));
    a.mov(Out(8), x86::eax);
    a.mov(x86::eax, x86::dword_ptr(x86::esp, 4));
    a.mov(Out(9), x86::eax);
    a.iretd();
  });
  std::uint32_t flat_handler = 0, after_int41 = 0;
  RunEverySetting(
      [&](x86::Assembler& a) {
        Label start = a.newLabel();
        EmitFar(a, true, kCodeA);
        a.int_(0x41);
        after_int41 = Here(a);
        a.jmp(start);
        // int 0x40's handler: the frame's EIP and CS.
        flat_handler = Here(a);
        a.mov(x86::eax, x86::dword_ptr(x86::esp));
        a.mov(Out(5), x86::eax);
        a.mov(x86::eax, x86::dword_ptr(x86::esp, 4));
        a.mov(Out(6), x86::eax);
        a.iretd();
        a.bind(start);
      },
      {{kBaseA, code}},
      [&](testing::SystemGuest& guest) {
        CHECK(guest.Read32(kOut) == after_call);
        CHECK(guest.Read32(kOut + 4) == 0xA2);
        CHECK(guest.Read32(kOut + 8) == after_indirect);
        CHECK(guest.Read32(kOut + 12) == 5050);
        CHECK(guest.Read32(kOut + 16) == 0x5EC0DE);
        CHECK(guest.Read32(kOut + 20) == after_int);
        CHECK(guest.Read32(kOut + 24) == kCodeA);
        CHECK(guest.Read32(kOut + 28) == handler_after_call);
        CHECK(guest.Read32(kOut + 32) == after_int41);
        CHECK(guest.Read32(kOut + 36) == kCode0);
        CheckFaults(guest,
                    {{kUd, ud2_at, kCodeA}, {kGp, read_at, kCodeA}, {kGp, write_at, kCodeA}});
      },
      [&](testing::SystemGuest& guest) {
        guest.SetGate(0x40, testing::Gate(flat_handler, kCode0, 0x8E));
        guest.SetGate(0x41, testing::Gate(handler, kCodeA, 0x8E));
      });
}

TEST_CASE("branches beyond the CS limit raise #GP(0) at the branch and change nothing") {
  std::vector<std::tuple<std::uint32_t, std::uint32_t, std::uint16_t>> expected;
  auto expect = [&](std::uint32_t offset) { expected.emplace_back(kGp, offset, kSmallA); };
  const std::vector<std::uint8_t> code = AssembleSegment([&](x86::Assembler& a) {
    Label loop_site = a.newLabel(), straddle_site = a.newLabel(), run_site = a.newLabel();
    Label sub = a.newLabel();
    a.mov(Out(0), x86::esp);
    expect(ExpectSkipHere(a, [&] { a.jmp(Imm(kFarOffset)); }));
    expect(ExpectSkipHere(a, [&] { a.call(Imm(kFarOffset)); }));
    a.xor_(x86::eax, x86::eax);
    a.jnz(Imm(kFarOffset));  // not taken: no fault
    expect(ExpectSkipHere(a, [&] { a.jz(Imm(kFarOffset)); }));
    a.mov(x86::eax, kFarOffset);
    expect(ExpectSkipHere(a, [&] { a.call(x86::eax); }));
    expect(ExpectSkipHere(a, [&] { a.jmp(x86::eax); }));
    a.push(kFarOffset);
    expect(ExpectSkipHere(a, [&] { a.ret(); }));
    a.pop(x86::edx);
    a.mov(Out(1), x86::edx);
    a.mov(Out(2), x86::esp);
    a.mov(x86::ecx, 5);
    ExpectSkipHere(a, [&] { a.jmp(loop_site); });
    expect(0x7A0);
    a.mov(Out(3), x86::ecx);
    // An instruction that does not fit below the limit, jumped to and run into.
    a.mov(x86::eax, 0x22222222);
    ExpectSkipHere(a, [&] { a.jmp(straddle_site); });
    expect(kSmallLimit);
    ExpectSkipHere(a, [&] { a.jmp(run_site); });
    expect(kSmallLimit);
    a.mov(Out(4), x86::eax);
    a.call(sub);
    a.retf();
    a.bind(sub);
    a.mov(Out(5), 0x5AB);
    a.ret();
    PadTo(a, 0x7A0);
    a.bind(loop_site);
    a.db(0xE2);  // loop to 0x7A2 + 0x7F, beyond the limit
    a.db(0x7F);
    PadTo(a, 0x7F8);
    a.bind(run_site);
    PadTo(a, kSmallLimit);
    a.bind(straddle_site);
    a.mov(x86::al, 0x33);  // its second byte lies beyond the limit
    a.ud2();
  });
  // A segment whose code runs to its limit, without a straddling instruction:
  // the fetch of the instruction after it faults.
  const std::vector<std::uint8_t> run_off = AssembleSegment([&](x86::Assembler& a) {
    a.retf();  // where the fault handler resumes
    PadTo(a, kRunOffLimit + 1);
    a.ud2();
  });
  RunEverySetting(
      [&](x86::Assembler& a) {
        EmitFar(a, true, kSmallA);
        a.mov(Flat(testing::kAction), testing::kSkip);
        a.mov(Flat(testing::kResume), 0);
        EmitFar(a, true, kRunOff, 1);
      },
      {{kBaseA, code}, {kBaseRunOff, run_off}},
      [&](testing::SystemGuest& guest) {
        const std::uint32_t esp = guest.Read32(kOut);
        CHECK(guest.Read32(kOut + 4) == kFarOffset);
        CHECK(guest.Read32(kOut + 8) == esp);
        CHECK(guest.Read32(kOut + 12) == 5);
        CHECK(guest.Read32(kOut + 16) == 0x22222222);
        CHECK(guest.Read32(kOut + 20) == 0x5AB);
        auto all = expected;
        all.emplace_back(kGp, kRunOffLimit + 1, kRunOff);
        CheckFaults(guest, all);
      });
}

TEST_CASE(
    "far transfers check the new EIP against the new CS limit; a gate and a conforming "
    "segment lead into a based one") {
  const std::vector<std::uint8_t> code = AssembleSegment([&](x86::Assembler& a) {
    a.inc(Out(1));
    a.retf();
  });
  std::vector<std::uint32_t> expected;
  RunEverySetting(
      [&](x86::Assembler& a) {
        expected.clear();
        a.mov(Out(0), x86::esp);
        expected.push_back(ExpectSkip(a, [&] { EmitFar(a, false, kSmallA, kFarOffset); }));
        expected.push_back(ExpectSkip(a, [&] { EmitFar(a, true, kSmallA, kFarOffset); }));
        expected.push_back(ExpectSkip(a, [&] { EmitFar(a, true, kGateBeyond); }));
        EmitFar(a, true, kGateA);
        EmitFar(a, true, kConformingA);
        a.push(kSmallA);
        a.push(kFarOffset);
        expected.push_back(ExpectSkip(a, [&] { a.retf(); }));
        a.add(x86::esp, 8);
        a.pushfd();
        a.push(kSmallA);
        a.push(kFarOffset);
        expected.push_back(ExpectSkip(a, [&] { a.iretd(); }));
        a.add(x86::esp, 12);
        expected.push_back(ExpectSkip(a, [&] { a.int_(0x42); }));
        a.mov(Out(2), x86::esp);
      },
      {{kBaseA, code}},
      [&](testing::SystemGuest& guest) {
        CHECK(guest.Read32(kOut + 4) == 2);
        CHECK(guest.Read32(kOut + 8) == guest.Read32(kOut));
        std::vector<std::tuple<std::uint32_t, std::uint32_t, std::uint16_t>> faults;
        for (std::uint32_t eip : expected) faults.emplace_back(kGp, eip, kCode0);
        CheckFaults(guest, faults);
      },
      [&](testing::SystemGuest& guest) {
        guest.SetGate(0x42, testing::Gate(kFarOffset, kSmallA, 0x8E));
      });
}

TEST_CASE("code segments with other bases or limits at the same offsets run their own code") {
  // The same layout in each segment: a jump from offset 0 to kFarOffset,
  // where the segment adds its own constant and calls through a register.
  // At offset 5 a far return, where the fault handler resumes.
  auto segment_code = [](std::uint32_t constant) {
    return AssembleSegment([&](x86::Assembler& a) {
      Label far_part = a.newLabel(), sub = a.newLabel();
      a.long_().jmp(far_part);
      a.retf();
      PadTo(a, kFarOffset);
      a.bind(far_part);
      a.mov(x86::eax, constant);
      a.add(Out(0), x86::eax);
      a.lea(x86::ecx, x86::ptr(sub));
      a.call(x86::ecx);
      a.retf();
      a.bind(sub);
      a.ret();
    });
  };
  RunEverySetting(
      [&](x86::Assembler& a) {
        Label again = a.newLabel();
        a.mov(x86::ebx, 10);
        a.bind(again);
        EmitFar(a, true, kCodeA);
        EmitFar(a, true, kCodeB);
        a.dec(x86::ebx);
        a.jnz(again);
        // kSmallA has kCodeA's base, and kFarOffset is beyond its limit.
        a.mov(Flat(testing::kAction), testing::kSkip);
        a.mov(Flat(testing::kResume), 5);
        EmitFar(a, true, kSmallA);
        EmitFar(a, true, kCodeA);
      },
      {{kBaseA, segment_code(1)}, {kBaseB, segment_code(0x100)}},
      [&](testing::SystemGuest& guest) {
        CHECK(guest.Read32(kOut) == 11 * 1 + 10 * 0x100);
        CheckFaults(guest, {{kGp, 0, kSmallA}});
      });
}

TEST_CASE("flat code keeps the inline indirect-branch table around code segments with bases") {
  constexpr std::uint32_t kCalls = 1000;
  const std::vector<std::uint8_t> code = AssembleSegment([&](x86::Assembler& a) {
    a.mov(Out(1), 0xBA5E);
    a.retf();
  });
  testing::SystemGuest guest(kGdtEntries, [&](x86::Assembler& a) {
    Label sub = a.newLabel(), start = a.newLabel();
    a.jmp(start);
    a.bind(sub);
    a.inc(Out(0));
    a.ret();
    a.bind(start);
    a.lea(x86::edx, x86::ptr(sub));
    for (int round = 0; round < 2; ++round) {
      Label again = a.newLabel();
      a.mov(x86::ecx, kCalls);
      a.bind(again);
      a.call(x86::edx);
      a.dec(x86::ecx);
      a.jnz(again);
      EmitFar(a, true, kCodeA);
    }
    // cs: in flat code stays flat.
    a.mov(x86::eax, ThroughCs(x86::dword_ptr_abs(kBaseA)));
    a.mov(Out(2), x86::eax);
    testing::Halt(a);
  });
  REQUIRE(guest.machine().WritePhysical(kBaseA, code.data(), code.size()));
  guest.Run();
  CHECK(guest.Read32(kOut) == 2 * kCalls);
  CHECK(guest.Read32(kOut + 4) == 0xBA5E);
  std::uint32_t first_bytes = 0;
  std::memcpy(&first_bytes, code.data(), 4);
  CHECK(guest.Read32(kOut + 8) == first_bytes);
  // Each call and return through the table, not the dispatcher.
  CHECK(guest.machine().GetStats().dispatcher_entries < kCalls / 10);
}

}  // namespace
}  // namespace bt
