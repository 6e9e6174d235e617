// Demand paging through the guest's own #PF handler: the page its handler
// maps is mapped in the shadow when the handler returns, so the retried
// access does not fault on the host again.
#include "tests/support/system_guest.h"

#include <doctest/doctest.h>

namespace bt {
namespace {

namespace x86 = asmjit::x86;
using testing::Descriptor;
using testing::Gate;
using testing::Halt;
using testing::Here;
using testing::kBig;
using testing::kCodeSelector;
using testing::SystemGuest;

constexpr std::uint32_t kDirectory = 0x800000, kTable = 0x801000, kFrames = 0x900000;
constexpr std::uint32_t kWindow = 0x400000;  // kTable's pages, not present at first
constexpr unsigned kPages = 16;

// Jumps over a #PF handler that maps the faulting page onto kFrames + its
// index * 4 KiB, then turns paging on; returns the handler's address.
std::uint32_t EmitPagingWithHandler(x86::Assembler& a) {
  asmjit::Label start = a.newLabel();
  a.jmp(start);
  const std::uint32_t handler = Here(a);
  a.push(x86::eax);
  a.push(x86::ebx);
  a.mov(x86::eax, x86::cr2);
  a.shr(x86::eax, 12);
  a.and_(x86::eax, 0x3FF);
  a.mov(x86::ebx, x86::eax);
  a.shl(x86::ebx, 12);
  a.add(x86::ebx, kFrames | 3);
  a.mov(x86::dword_ptr(kTable, x86::eax, 2), x86::ebx);
  a.pop(x86::ebx);
  a.pop(x86::eax);
  a.add(x86::esp, 4);  // the error code
  a.iretd();
  a.bind(start);
  testing::EmitEnablePaging(a, kDirectory);
  return handler;
}

const std::uint64_t kGdt[] = {0, Descriptor(0, 0xFFFFF, 0x9B, kBig),
                              Descriptor(0, 0xFFFFF, 0x93, kBig)};

void MapIdentityAndTable(SystemGuest& guest) {
  // 4 MiB identity pages for [0, 4 MiB) and [8, 12 MiB); kTable for the rest.
  const std::uint32_t directory[3] = {0x00000083, kTable | 3, 0x00800083};
  REQUIRE(guest.machine().WritePhysical(kDirectory, directory, sizeof(directory)));
}

std::uint64_t HostFaults(const Stats& stats, HostFaultCause cause) {
  return stats.host_faults[static_cast<std::size_t>(cause)];
}

TEST_CASE("a page the #PF handler maps is in the shadow when it returns") {
  std::uint32_t handler = 0;
  SystemGuest guest(kGdt, [&](x86::Assembler& a) {
    handler = EmitPagingWithHandler(a);
    a.xor_(x86::esi, x86::esi);
    for (unsigned page = 0; page < kPages; ++page) {
      a.add(x86::esi, x86::dword_ptr(kWindow + page * 0x1000 + 8));
    }
    Halt(a);
  });
  guest.SetGate(14, Gate(handler, kCodeSelector, 0x8E));
  MapIdentityAndTable(guest);
  for (unsigned page = 0; page < kPages; ++page) {
    guest.Write32(kFrames + page * 0x1000 + 8, page + 1);
  }
  const Registers r = guest.Run();
  CHECK(r.esi == kPages * (kPages + 1) / 2);
  const Stats stats = guest.machine().GetStats();
  CHECK(HostFaults(stats, HostFaultCause::kGuestPageFault) == kPages);
  CHECK(stats.mapped_after_page_fault == kPages);
  // The identity pages the guest touches fault once each; the window pages
  // would add kPages more.
  CHECK(HostFaults(stats, HostFaultCause::kShadowMiss) < kPages);
}

TEST_CASE("a read that takes #PF on every run stays resolved by the runtime") {
  // The page is made not present and invalidated after each read, as the
  // pgfault nanobenchmark does: each run is a #PF the runtime raises itself
  // once the read is resolved, and a host fault otherwise.
  static constexpr unsigned kRuns = 300;
  std::uint32_t handler = 0;
  SystemGuest guest(kGdt, [&](x86::Assembler& a) {
    handler = EmitPagingWithHandler(a);
    a.xor_(x86::esi, x86::esi);
    a.mov(x86::ecx, kRuns);
    asmjit::Label loop = a.newLabel();
    a.bind(loop);
    a.add(x86::esi, x86::dword_ptr(kWindow + 8));
    a.mov(x86::dword_ptr(kTable), 0);
    a.invlpg(x86::dword_ptr(kWindow));
    a.dec(x86::ecx);
    a.jnz(loop);
    Halt(a);
  });
  guest.SetGate(14, Gate(handler, kCodeSelector, 0x8E));
  MapIdentityAndTable(guest);
  guest.Write32(kFrames + 8, 1);
  const Registers r = guest.Run();
  CHECK(r.esi == kRuns);
  const Stats stats = guest.machine().GetStats();
  CHECK(stats.adaptive_resolved >= 1);
  CHECK(stats.adaptive_reverted == 0);
  CHECK(HostFaults(stats, HostFaultCause::kGuestPageFault) < 10);
}

}  // namespace
}  // namespace bt
