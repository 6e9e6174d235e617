// Calls to PC thunks ("mov reg, [esp]; ret", how 32-bit PIC code reads EIP)
// done inline, behind a guard that reads the thunk when the call runs
// (EmitPcThunkCall).
#include "tests/support/assembled_guest.h"
#include "tests/support/intercepting_machine.h"

#include <bt/machine.h>

#include <doctest/doctest.h>

#include <functional>

namespace bt {
namespace {

namespace x86 = asmjit::x86;
using testing::AssembleGuest;
using testing::Here;

constexpr unsigned kCalls = 100;
constexpr std::uint32_t kStack = 0x90000;

struct ThunkGuest {
  std::vector<std::uint8_t> image;
  std::uint32_t after_call = 0;  // the call's return address
  std::uint32_t thunk = 0;
};

// Calls the thunk on the next page kCalls times, then copies [ESP-4] (what
// the call pushed) to EAX and halts. `thunk` emits the thunk; `before_last`
// runs before the last call, given the thunk's label.
ThunkGuest CallingGuest(
    const std::function<void(x86::Assembler&)>& thunk,
    const std::function<void(x86::Assembler&, asmjit::Label)>& before_last = {}) {
  ThunkGuest guest;
  guest.image = AssembleGuest([&](x86::Assembler& a) {
    asmjit::Label loop = a.newLabel(), call = a.newLabel(), thunk_label = a.newLabel();
    a.mov(x86::esp, kStack);
    a.mov(x86::esi, kCalls);
    a.bind(loop);
    if (before_last) {
      a.cmp(x86::esi, 1);
      a.jne(call);
      before_last(a, thunk_label);
    }
    a.bind(call);
    a.call(thunk_label);
    guest.after_call = Here(a);
    a.dec(x86::esi);
    a.jnz(loop);
    a.mov(x86::eax, x86::dword_ptr(x86::esp, -4));
    a.hlt();
    testing::PadToPage(a);
    a.bind(thunk_label);
    guest.thunk = Here(a);
    thunk(a);
  });
  return guest;
}

void MovEbxFromTopRet(x86::Assembler& a) {
  a.mov(x86::ebx, x86::dword_ptr(x86::esp));
  a.ret();
}

TEST_CASE("a call to a PC thunk gives its register the return address and pushes it") {
  const ThunkGuest thunked = CallingGuest(MovEbxFromTopRet);
  auto machine = testing::BootIntercepting(thunked.image);
  REQUIRE(machine->Run().reason == StopReason::kHalted);
  const Registers r = machine->GetRegisters();
  CHECK(r.ebx == thunked.after_call);
  CHECK(r.eax == thunked.after_call);
  CHECK(r.esp == kStack);

  // The same with a nop in the thunk, which makes it no PC thunk: the calls
  // are made, and the thunk and the code after the call are units of their
  // own that the inlined calls do without.
  const ThunkGuest plain = CallingGuest([](x86::Assembler& a) {
    a.mov(x86::ebx, x86::dword_ptr(x86::esp));
    a.nop();
    a.ret();
  });
  auto plain_machine = testing::BootIntercepting(plain.image);
  REQUIRE(plain_machine->Run().reason == StopReason::kHalted);
  CHECK(plain_machine->GetRegisters().ebx == plain.after_call);
  CHECK(machine->GetStats().units_translated < plain_machine->GetStats().units_translated);
}

TEST_CASE("an inlined call runs the thunk that is there when it runs") {
  // Before the last call the guest rewrites the thunk's mov to load EDX: the
  // unit with the inlined call stays (its own page is not written), and its
  // guard sees the new bytes, with ECX (which it uses) as it was.
  static constexpr std::uint32_t kEcx = 0x12345678;
  const ThunkGuest guest =
      CallingGuest(MovEbxFromTopRet, [](x86::Assembler& a, asmjit::Label thunk) {
        a.xor_(x86::ebx, x86::ebx);
        a.xor_(x86::edx, x86::edx);
        a.mov(x86::ecx, kEcx);
        a.lea(x86::edi, x86::ptr(thunk));
        a.mov(x86::byte_ptr(x86::edi, 1), 0x14);  // ModRM: mov edx, [esp]
      });
  auto machine = testing::BootIntercepting(guest.image);
  REQUIRE(machine->Run().reason == StopReason::kHalted);
  const Registers r = machine->GetRegisters();
  CHECK(r.edx == guest.after_call);
  CHECK(r.ebx == 0);
  CHECK(r.ecx == kEcx);
  CHECK(
      machine->GetStats().host_faults[static_cast<std::size_t>(HostFaultCause::kPcThunkChanged)] ==
      1);
}

TEST_CASE("an inlined call whose PC thunk is no longer present faults on its fetch") {
  // The thunk's page is linear 4 MiB through a page table; before the last
  // call the guest makes it not present. The call pushes, then #PF on the
  // fetch at the thunk, as without inlining.
  constexpr std::uint32_t kDirectory = 0x800000, kTable = 0x801000;
  constexpr std::uint32_t kThunkLinear = 0x400000;
  std::vector<std::uint8_t> image = AssembleGuest([&](x86::Assembler& a) {
    asmjit::Label loop = a.newLabel(), call = a.newLabel();
    testing::EmitEnablePaging(a, kDirectory);
    a.mov(x86::esp, kStack);
    a.mov(x86::esi, kCalls);
    a.bind(loop);
    a.cmp(x86::esi, 1);
    a.jne(call);
    a.mov(x86::dword_ptr(kTable), 0);
    a.invlpg(x86::dword_ptr(kThunkLinear));
    a.bind(call);
    a.call(kThunkLinear);
    a.dec(x86::esi);
    a.jnz(loop);
    a.hlt();
  });
  auto machine = testing::BootIntercepting(image);
  const std::uint32_t directory[3] = {0x00000083, kTable | 3, 0x00800083};
  REQUIRE(machine->WritePhysical(kDirectory, directory, sizeof(directory)));
  const std::uint32_t pte = 0x900000 | 3;
  REQUIRE(machine->WritePhysical(kTable, &pte, 4));
  const std::uint8_t thunk[4] = {0x8B, 0x1C, 0x24, 0xC3};
  REQUIRE(machine->WritePhysical(0x900000, thunk, sizeof(thunk)));
  const StopInfo stop = machine->Run();
  REQUIRE(stop.reason == StopReason::kGuestException);
  CHECK(stop.vector == 14);
  CHECK(stop.eip == kThunkLinear);
  CHECK(stop.error_code == 0);  // supervisor read of a not-present page
  CHECK(machine->GetRegisters().esp == kStack - 4);
  CHECK(machine->GetRegisters().esi == 1);
}

TEST_CASE("inlined calls need no side exits") {
  // A guard that fails traps instead of leaving through an exit: calls after
  // as many conditional branches as a unit has side exits are inlined too
  // (when guards had exits of their own, such calls overran the unit's
  // exits, and the host crashed).
  constexpr unsigned kBranches = 16, kCalls = 4;
  const auto image_with = [&](const std::function<void(x86::Assembler&)>& thunk_code) {
    return AssembleGuest([&](x86::Assembler& a) {
      asmjit::Label never = a.newLabel(), thunk = a.newLabel();
      a.mov(x86::esp, kStack);
      a.xor_(x86::eax, x86::eax);
      a.xor_(x86::esi, x86::esi);
      for (unsigned i = 0; i < kBranches; ++i) {
        a.test(x86::eax, x86::eax);
        a.jnz(never);
      }
      for (unsigned i = 0; i < kCalls; ++i) {
        a.call(thunk);
        a.add(x86::esi, x86::ebx);
      }
      a.hlt();
      a.bind(never);
      a.mov(x86::esi, 0xBAD);
      a.hlt();
      testing::PadToPage(a);
      a.bind(thunk);
      thunk_code(a);
    });
  };
  auto machine = testing::BootIntercepting(image_with(MovEbxFromTopRet));
  REQUIRE(machine->Run().reason == StopReason::kHalted);
  const Registers r = machine->GetRegisters();
  CHECK(r.esp == kStack);
  CHECK(r.esi != 0xBAD);
  // ESI sums the return addresses, kSpacing bytes apart (call rel32, add
  // r32, r32); EBX holds the last.
  constexpr std::uint32_t kSpacing = 5 + 2;
  CHECK(r.esi == r.ebx * kCalls - kSpacing * (kCalls - 1) * kCalls / 2);

  // Not inlined (a nop makes the thunk none), the calls make the thunk and
  // each return address units of their own.
  auto plain = testing::BootIntercepting(image_with([](x86::Assembler& a) {
    a.mov(x86::ebx, x86::dword_ptr(x86::esp));
    a.nop();
    a.ret();
  }));
  REQUIRE(plain->Run().reason == StopReason::kHalted);
  CHECK(plain->GetRegisters().esi == r.esi);
  CHECK(machine->GetStats().units_translated + kCalls < plain->GetStats().units_translated);
}

}  // namespace
}  // namespace bt
