// Adaptive translation of memory operands (runtime/adaptive.cc): an
// instruction that keeps faulting on the same pages is retranslated to have
// its operand resolved by the runtime, and goes back when it stops faulting.
// The guests map linear [4 MiB, 8 MiB) through one page table whose first
// entry they switch between two frames, with invlpg.
#include "tests/support/assembled_guest.h"
#include "tests/support/intercepting_machine.h"

#include <bt/machine.h>

#include <doctest/doctest.h>

namespace bt {
namespace {

namespace x86 = asmjit::x86;
using testing::AssembleGuest;
using testing::Here;

constexpr std::uint32_t kDirectory = 0x800000, kTable = 0x801000;
constexpr std::uint32_t kWindowPage = 0x400000;  // kTable's first entry
constexpr std::uint32_t kFrames[2] = {0x900000, 0x901000};
constexpr std::uint32_t kFrameValues[2] = {0x1, 0x100};

// Identity 4 MiB pages over [0, 4 MiB) (the image) and [8, 12 MiB) (the
// tables and frames); kTable maps [4, 8 MiB), empty at first.
std::unique_ptr<Machine> Boot(const std::vector<std::uint8_t>& image) {
  std::unique_ptr<Machine> machine = testing::BootIntercepting(image);
  const std::uint32_t directory[3] = {0x00000083, kTable | 3, 0x00800083};
  REQUIRE(machine->WritePhysical(kDirectory, directory, sizeof(directory)));
  for (unsigned i = 0; i < 2; ++i) {
    REQUIRE(machine->WritePhysical(kFrames[i], &kFrameValues[i], 4));
  }
  return machine;
}

// Points the window page at kFrames[ECX & 1] and invalidates it.
void SwitchFrame(x86::Assembler& a) {
  a.mov(x86::edx, x86::ecx);
  a.and_(x86::edx, 1);
  a.shl(x86::edx, 12);
  a.add(x86::edx, kFrames[0] | 3);
  a.mov(x86::dword_ptr(kTable), x86::edx);
  a.invlpg(x86::dword_ptr(kWindowPage));
}

std::uint64_t ShadowMisses(const Stats& stats) {
  return stats.host_faults[static_cast<std::size_t>(HostFaultCause::kShadowMiss)];
}

TEST_CASE("a read that faults on every run is resolved by the runtime, then reverts") {
  // ECX from 1050 down to 1: above 1000 the frame switches every run, then
  // it stays (kFrames[1001 & 1]) and the read stops faulting.
  auto machine = Boot(AssembleGuest([](x86::Assembler& a) {
    testing::EmitEnablePaging(a, kDirectory);
    a.xor_(x86::esi, x86::esi);
    a.mov(x86::ecx, 1050);
    asmjit::Label loop = a.newLabel(), read = a.newLabel();
    a.bind(loop);
    a.cmp(x86::ecx, 1000);
    a.jbe(read);
    SwitchFrame(a);
    a.bind(read);
    a.add(x86::esi, x86::dword_ptr(kWindowPage));
    a.dec(x86::ecx);
    a.jnz(loop);
    a.hlt();
  }));
  REQUIRE(machine->Run().reason == StopReason::kHalted);
  CHECK(machine->GetRegisters().esi == 25 * 0x101 + 1000 * kFrameValues[1]);
  const Stats stats = machine->GetStats();
  CHECK(stats.adaptive_resolved >= 1);
  CHECK(stats.adaptive_reverted >= 1);
  // Without adaptive translation every one of the 50 switches faults.
  CHECK(ShadowMisses(stats) < 25);
}

TEST_CASE("a resolved read-modify-write lands in the frame the page tables name") {
  auto machine = Boot(AssembleGuest([](x86::Assembler& a) {
    testing::EmitEnablePaging(a, kDirectory);
    a.mov(x86::ecx, 100);
    asmjit::Label loop = a.newLabel();
    a.bind(loop);
    SwitchFrame(a);
    a.add(x86::dword_ptr(kWindowPage), 2);
    a.dec(x86::ecx);
    a.jnz(loop);
    a.hlt();
  }));
  REQUIRE(machine->Run().reason == StopReason::kHalted);
  for (unsigned i = 0; i < 2; ++i) {
    std::uint32_t value = 0;
    REQUIRE(machine->ReadPhysical(kFrames[i], &value, 4));
    CHECK(value == kFrameValues[i] + 100);
  }
  CHECK(machine->GetStats().adaptive_resolved >= 1);
}

TEST_CASE("a resolved operand on a not-present page raises #PF at its instruction") {
  std::uint32_t read_eip = 0;
  auto machine = Boot(AssembleGuest([&](x86::Assembler& a) {
    testing::EmitEnablePaging(a, kDirectory);
    a.mov(x86::ecx, 40);
    asmjit::Label loop = a.newLabel(), read = a.newLabel();
    a.bind(loop);
    SwitchFrame(a);
    a.cmp(x86::ecx, 1);
    a.jne(read);
    a.mov(x86::dword_ptr(kTable), 0);  // the last run: not present
    a.invlpg(x86::dword_ptr(kWindowPage));
    a.bind(read);
    read_eip = Here(a);
    a.mov(x86::ebx, x86::dword_ptr(kWindowPage));  // ModRM, not the moffs form
    a.dec(x86::ecx);
    a.jnz(loop);
    a.hlt();
  }));
  const StopInfo stop = machine->Run();
  CHECK(stop.reason == StopReason::kGuestException);
  CHECK(stop.vector == 14);
  CHECK(stop.eip == read_eip);
  CHECK(stop.error_code == 0);  // a read of a not-present page
  CHECK(machine->GetRegisters().ecx == 1);
  CHECK(machine->GetStats().adaptive_resolved >= 1);
}

TEST_CASE(
    "a read resolved by faults in many address spaces reverts when its runs stay on one page") {
  // 60 rounds, each a new process on the same page directory: a CR3 load
  // while its table is empty (the shadow of the window page goes), the page
  // mapped again, and 30 reads of it: one fault a round, the way a loop in
  // each of many short-lived processes faults. A callout on every read
  // would cost more than the fault; the plain translation is kept after a
  // few rounds.
  static constexpr unsigned kRounds = 60, kReads = 30;
  auto machine = Boot(AssembleGuest([](x86::Assembler& a) {
    testing::EmitEnablePaging(a, kDirectory);
    a.xor_(x86::esi, x86::esi);
    a.mov(x86::ebx, kRounds);
    asmjit::Label round = a.newLabel(), read = a.newLabel();
    a.bind(round);
    a.mov(x86::dword_ptr(kTable), 0);
    a.mov(x86::eax, kDirectory);
    a.mov(x86::cr3, x86::eax);
    a.mov(x86::dword_ptr(kTable), kFrames[0] | 3);
    a.mov(x86::ecx, kReads);
    a.bind(read);
    a.add(x86::esi, x86::dword_ptr(kWindowPage));
    a.dec(x86::ecx);
    a.jnz(read);
    a.dec(x86::ebx);
    a.jnz(round);
    a.hlt();
  }));
  REQUIRE(machine->Run().reason == StopReason::kHalted);
  CHECK(machine->GetRegisters().esi == kRounds * kReads * kFrameValues[0]);
  const Stats stats = machine->GetStats();
  CHECK(stats.adaptive_resolved >= 1);
  CHECK(stats.adaptive_reverted >= 1);
  // Resolve and release are two callouts a read.
  CHECK(stats.callouts[static_cast<std::size_t>(CalloutKind::kResolvedMemory)] <
        kRounds * kReads / 2);
}

}  // namespace
}  // namespace bt
