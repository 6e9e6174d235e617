// Chains between translation units of different guest pages under paging
// (CodeCache::Chain, Vcpu::ChainScopeOf): a direct call from one page into
// another is chained, and the chain breaks when the target page's
// translation may change - at a CR3 load for an ordinary page, at an invlpg
// of it for a global one.
#include "tests/support/assembled_guest.h"
#include "tests/support/intercepting_machine.h"

#include <bt/machine.h>

#include <doctest/doctest.h>

#include <cstring>
#include <functional>

namespace bt {
namespace {

namespace x86 = asmjit::x86;
using testing::AssembleGuest;

constexpr std::uint32_t kDirectories[2] = {0x800000, 0x802000};
constexpr std::uint32_t kTables[2] = {0x801000, 0x803000};
constexpr std::uint32_t kFrames[2] = {0x900000, 0x901000};  // "mov eax, n+1; ret"
constexpr std::uint32_t kTarget = 0x400000;                 // the first page of kTables
constexpr std::uint32_t kGlobal = 0x100, kPge = 0x80;
constexpr unsigned kRuns = 100;

// Both directories: [0, 4 MiB) and [8, 12 MiB) identity (4 MiB pages),
// [4, 8 MiB) through their own table.
std::unique_ptr<Machine> Boot(const std::vector<std::uint8_t>& image,
                              std::uint32_t identity_flags) {
  auto machine = testing::BootIntercepting(image);
  for (unsigned d = 0; d < 2; ++d) {
    const std::uint32_t directory[3] = {0x83 | identity_flags, kTables[d] | 3,
                                        0x800083 | identity_flags};
    REQUIRE(machine->WritePhysical(kDirectories[d], directory, sizeof(directory)));
    const std::uint8_t code[6] = {0xB8, static_cast<std::uint8_t>(d + 1), 0, 0, 0, 0xC3};
    REQUIRE(machine->WritePhysical(kFrames[d], code, sizeof(code)));
  }
  return machine;
}

std::uint32_t Pte(unsigned frame, std::uint32_t flags) { return kFrames[frame] | 3 | flags; }

// Paging on (with CR4.PGE if `global_pages`), then kRuns times `run`, which
// ends in a call whose EAX is summed up in ESI, then hlt.
std::vector<std::uint8_t> RunsGuest(bool global_pages,
                                    const std::function<void(x86::Assembler&)>& run) {
  return AssembleGuest([&](x86::Assembler& a) {
    testing::EmitEnablePaging(a, kDirectories[0]);
    if (global_pages) {
      a.mov(x86::eax, x86::cr4);
      a.or_(x86::eax, kPge);
      a.mov(x86::cr4, x86::eax);
    }
    a.mov(x86::esp, 0x90000);
    a.xor_(x86::esi, x86::esi);
    a.mov(x86::ecx, kRuns);
    asmjit::Label loop = a.newLabel();
    a.bind(loop);
    run(a);
    a.add(x86::esi, x86::eax);
    a.dec(x86::ecx);
    a.jnz(loop);
    a.hlt();
  });
}

TEST_CASE("a chain into another page breaks at a CR3 load: each address space runs its code") {
  auto machine = Boot(RunsGuest(false,
                                [](x86::Assembler& a) {
                                  a.mov(x86::edx, x86::ecx);  // odd runs in the second space
                                  a.and_(x86::edx, 1);
                                  a.shl(x86::edx, 13);
                                  a.add(x86::edx, kDirectories[0]);
                                  a.mov(x86::cr3, x86::edx);
                                  a.call(kTarget);
                                }),
                      0);
  for (unsigned d = 0; d < 2; ++d) {
    const std::uint32_t pte = Pte(d, 0);
    REQUIRE(machine->WritePhysical(kTables[d], &pte, 4));
  }
  REQUIRE(machine->Run().reason == StopReason::kHalted);
  CHECK(machine->GetRegisters().esi == kRuns / 2 * 3);
  CHECK(machine->GetStats().chains_broken >= kRuns / 2);
}

TEST_CASE("a chain into a global page survives CR3 loads and breaks at its invlpg") {
  auto machine = Boot(RunsGuest(true,
                                [](x86::Assembler& a) {
                                  a.mov(x86::eax, kDirectories[0]);
                                  a.mov(x86::cr3, x86::eax);  // keeps global translations
                                  // Odd runs: the target page onto the second frame.
                                  a.mov(x86::edx, x86::ecx);
                                  a.and_(x86::edx, 1);
                                  a.shl(x86::edx, 12);
                                  a.add(x86::edx, Pte(0, kGlobal));
                                  a.mov(x86::dword_ptr(kTables[0]), x86::edx);
                                  a.invlpg(x86::dword_ptr(kTarget));
                                  a.call(kTarget);
                                }),
                      kGlobal);
  REQUIRE(machine->Run().reason == StopReason::kHalted);
  CHECK(machine->GetRegisters().esi == kRuns / 2 * 3);
  CHECK(machine->GetStats().chains_broken >= kRuns / 2);
}

// The target's "mov eax, imm32; ret" starts 3 bytes before the end of its
// page, so the unit runs into the next page, whose frame holds the rest: the
// imm32's high bytes and the ret.
constexpr std::uint32_t kStraddler = kTarget + 0x1000 - 3;
constexpr std::uint32_t kSecondPte = (kFrames[0] + 0x2000) | 3 | kGlobal;

std::unique_ptr<Machine> BootStraddler(const std::vector<std::uint8_t>& image) {
  auto machine = Boot(image, kGlobal);
  const std::uint8_t head[3] = {0xB8, 0x01, 0x00};
  REQUIRE(machine->WritePhysical(kFrames[0] + 0x1000 - 3, head, sizeof(head)));
  for (unsigned d = 0; d < 2; ++d) {
    const std::uint8_t tail[3] = {static_cast<std::uint8_t>(d), 0x00, 0xC3};
    REQUIRE(machine->WritePhysical(kFrames[d] + 0x1000 * 2, tail, sizeof(tail)));
  }
  const std::uint32_t ptes[2] = {Pte(0, kGlobal), kSecondPte};
  REQUIRE(machine->WritePhysical(kTables[0], ptes, sizeof(ptes)));
  return machine;
}

TEST_CASE("a chain into a unit that runs into the next page breaks at that page's invlpg") {
  // Odd runs map the second page onto the second frame's copy, whose imm32
  // differs: eax is 0x00000001 or 0x00010001.
  auto machine = BootStraddler(RunsGuest(true, [](x86::Assembler& a) {
    a.mov(x86::edx, x86::ecx);
    a.and_(x86::edx, 1);
    a.shl(x86::edx, 12);
    a.add(x86::edx, kSecondPte);
    a.mov(x86::dword_ptr(kTables[0] + 4), x86::edx);
    a.invlpg(x86::dword_ptr(kTarget + 0x1000));
    a.call(kStraddler);
  }));
  REQUIRE(machine->Run().reason == StopReason::kHalted);
  CHECK(machine->GetRegisters().esi == kRuns + kRuns / 2 * 0x10000);
}

TEST_CASE("calls into a unit that runs into the next page are chained") {
  auto machine = BootStraddler(RunsGuest(false, [](x86::Assembler& a) { a.call(kStraddler); }));
  REQUIRE(machine->Run().reason == StopReason::kHalted);
  CHECK(machine->GetRegisters().esi == kRuns);
  CHECK(machine->GetStats().dispatcher_entries < kRuns / 2);
}

TEST_CASE("an invlpg elsewhere leaves the running unit and the indirect-branch table alone") {
  // The ret from the target is an indirect branch: it stays in the table
  // while the loop invalidates a page 4 MiB away, so the loop never leaves
  // translated code.
  auto machine = Boot(RunsGuest(false,
                                [](x86::Assembler& a) {
                                  a.invlpg(x86::dword_ptr(0x800000));
                                  a.call(kTarget);
                                }),
                      0);
  const std::uint32_t pte = Pte(0, 0);
  REQUIRE(machine->WritePhysical(kTables[0], &pte, 4));
  REQUIRE(machine->Run().reason == StopReason::kHalted);
  CHECK(machine->GetRegisters().esi == kRuns);
  CHECK(machine->GetStats().dispatcher_entries < kRuns / 2);
}

TEST_CASE("a return into a page remapped and invalidated since its call runs the new code") {
  // At kTarget, frame A: "call remap; mov eax, 1; ret"; frame B has
  // "mov eax, 2; ret" where the call returns to. remap maps kTarget to B and
  // invalidates it; the loop maps A back before each call.
  constexpr std::uint32_t kRemap = 0x902000, kFrameA = 0x904000, kFrameB = 0x905000;
  auto machine = Boot(RunsGuest(false,
                                [](x86::Assembler& a) {
                                  a.mov(x86::dword_ptr(kTables[0]), kFrameA | 3);
                                  a.invlpg(x86::dword_ptr(kTarget));
                                  a.call(kTarget);
                                }),
                      0);
  const std::uint32_t call = kRemap - (kTarget + 5);
  const std::uint8_t frame_a[11] = {0xE8,
                                    static_cast<std::uint8_t>(call),
                                    static_cast<std::uint8_t>(call >> 8),
                                    static_cast<std::uint8_t>(call >> 16),
                                    static_cast<std::uint8_t>(call >> 24),
                                    0xB8,
                                    1,
                                    0,
                                    0,
                                    0,
                                    0xC3};
  const std::uint8_t frame_b[11] = {0x90, 0x90, 0x90, 0x90, 0x90, 0xB8, 2, 0, 0, 0, 0xC3};
  // mov dword [kTables[0]], kFrameB | 3; invlpg [kTarget]; ret
  std::uint8_t remap[18] = {0xC7, 0x05, 0, 0, 0, 0, 0, 0, 0, 0, 0x0F, 0x01, 0x3D, 0, 0, 0, 0, 0xC3};
  const std::uint32_t pte = kFrameB | 3;
  std::memcpy(&remap[2], &kTables[0], 4);
  std::memcpy(&remap[6], &pte, 4);
  std::memcpy(&remap[13], &kTarget, 4);
  REQUIRE(machine->WritePhysical(kFrameA, frame_a, sizeof(frame_a)));
  REQUIRE(machine->WritePhysical(kFrameB, frame_b, sizeof(frame_b)));
  REQUIRE(machine->WritePhysical(kRemap, remap, sizeof(remap)));
  REQUIRE(machine->Run().reason == StopReason::kHalted);
  CHECK(machine->GetRegisters().esi == 2 * kRuns);
}

}  // namespace
}  // namespace bt
