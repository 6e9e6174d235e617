// Chains between translation units of different guest pages under paging
// (CodeCache::Chain, Vcpu::ChainScopeOf): a direct call from one page into
// another is chained, and the chain breaks when the target page's
// translation may change - at a CR3 load for an ordinary page, at an invlpg
// of it for a global one.
#include "tests/support/assembled_guest.h"
#include "tests/support/intercepting_machine.h"

#include <bt/machine.h>

#include <doctest/doctest.h>

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

TEST_CASE("a chain into another page breaks at a CR3 load: each address space runs its code") {
  auto machine = Boot(AssembleGuest([](x86::Assembler& a) {
                        testing::EmitEnablePaging(a, kDirectories[0]);
                        a.mov(x86::esp, 0x90000);
                        a.xor_(x86::esi, x86::esi);
                        a.mov(x86::ecx, kRuns);
                        asmjit::Label loop = a.newLabel();
                        a.bind(loop);
                        a.mov(x86::edx, x86::ecx);  // odd runs in the second space
                        a.and_(x86::edx, 1);
                        a.shl(x86::edx, 13);
                        a.add(x86::edx, kDirectories[0]);
                        a.mov(x86::cr3, x86::edx);
                        a.call(kTarget);
                        a.add(x86::esi, x86::eax);
                        a.dec(x86::ecx);
                        a.jnz(loop);
                        a.hlt();
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
  auto machine = Boot(AssembleGuest([](x86::Assembler& a) {
                        testing::EmitEnablePaging(a, kDirectories[0]);
                        a.mov(x86::eax, x86::cr4);
                        a.or_(x86::eax, kPge);
                        a.mov(x86::cr4, x86::eax);
                        a.mov(x86::esp, 0x90000);
                        a.xor_(x86::esi, x86::esi);
                        a.mov(x86::ecx, kRuns);
                        asmjit::Label loop = a.newLabel();
                        a.bind(loop);
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
                        a.add(x86::esi, x86::eax);
                        a.dec(x86::ecx);
                        a.jnz(loop);
                        a.hlt();
                      }),
                      kGlobal);
  REQUIRE(machine->Run().reason == StopReason::kHalted);
  CHECK(machine->GetRegisters().esi == kRuns / 2 * 3);
  CHECK(machine->GetStats().chains_broken >= kRuns / 2);
}

}  // namespace
}  // namespace bt
