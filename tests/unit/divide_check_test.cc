// Divisions that keep raising #DE get a callout that raises it without a
// host trap (runtime/adaptive.cc). Each form runs a table of dividends and
// divisors, faulting ones first so that the check is in place for the rest,
// and must end with the registers and faults the host CPU gives for the same
// division.
#include "tests/support/system_guest.h"

#include <doctest/doctest.h>

#include <csetjmp>
#include <csignal>
#include <functional>
#include <vector>

namespace bt {
namespace {

namespace x86 = asmjit::x86;
using testing::Descriptor;
using testing::Halt;
using testing::kAction;
using testing::kBig;
using testing::kOut;
using testing::kResume;
using testing::kSkip;
using testing::SystemGuest;

struct Division {
  std::uint32_t eax, edx, divisor;
};

// The host's answer: EAX and EDX after the division, or that it faulted.
struct Outcome {
  std::uint32_t eax, edx;
  bool faulted;
  bool operator==(const Outcome&) const = default;
};

sigjmp_buf g_divide_trap;
void OnDivideTrap(int) { siglongjmp(g_divide_trap, 1); }

Outcome OnHost(const Division& d,
               const std::function<void(std::uint32_t&, std::uint32_t&, std::uint32_t)>& divide) {
  struct sigaction action {
  }, old{};
  action.sa_handler = OnDivideTrap;
  sigaction(SIGFPE, &action, &old);
  volatile Outcome outcome{d.eax, d.edx, true};
  if (sigsetjmp(g_divide_trap, 1) == 0) {
    std::uint32_t eax = d.eax, edx = d.edx;
    divide(eax, edx, d.divisor);
    outcome.eax = eax;
    outcome.edx = edx;
    outcome.faulted = false;
  }
  sigaction(SIGFPE, &old, nullptr);
  return {outcome.eax, outcome.edx, outcome.faulted};
}

constexpr std::uint32_t kTable = kOut + 0x100, kResults = kOut + 0x800, kMemoryDivisor = kOut;

// Runs `emit_divide` (EBX holds the divisor, also stored at kMemoryDivisor)
// over `cases` in the guest and on the host (`host_divide`).
void CheckAgainstHost(
    const std::vector<Division>& cases, const std::function<void(x86::Assembler&)>& emit_divide,
    const std::function<void(std::uint32_t&, std::uint32_t&, std::uint32_t)>& host_divide) {
  const std::uint64_t gdt[] = {0, Descriptor(0, 0xFFFFF, 0x9B, kBig),
                               Descriptor(0, 0xFFFFF, 0x93, kBig)};
  SystemGuest guest(gdt, [&](x86::Assembler& a) {
    asmjit::Label loop = a.newLabel(), after = a.newLabel();
    a.mov(x86::dword_ptr_abs(kAction), kSkip);
    a.lea(x86::eax, x86::ptr(after));
    a.mov(x86::dword_ptr_abs(kResume), x86::eax);
    a.xor_(x86::edi, x86::edi);
    a.bind(loop);
    a.mov(x86::eax, x86::dword_ptr(kTable + 0, x86::edi));
    a.mov(x86::edx, x86::dword_ptr(kTable + 4, x86::edi));
    a.mov(x86::ebx, x86::dword_ptr(kTable + 8, x86::edi));
    a.mov(x86::dword_ptr_abs(kMemoryDivisor), x86::ebx);
    a.mov(x86::ecx, x86::ebx);
    emit_divide(a);
    a.bind(after);
    a.mov(x86::dword_ptr(kResults + 0, x86::edi), x86::eax);
    a.mov(x86::dword_ptr(kResults + 4, x86::edi), x86::edx);
    a.add(x86::edi, 12);
    a.cmp(x86::edi, static_cast<std::uint32_t>(12 * cases.size()));
    a.jb(loop);
    Halt(a);
  });
  REQUIRE(guest.machine().WritePhysical(kTable, cases.data(), cases.size() * sizeof(Division)));
  guest.Run();
  const std::vector<testing::LoggedFault> faults = guest.Faults();
  std::size_t fault = 0;
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const Outcome host = OnHost(cases[i], host_divide);
    const bool faulted = fault < faults.size() && faults[fault].eip == faults[0].eip &&
                         guest.Read32(kResults + 12 * i) == cases[i].eax &&
                         guest.Read32(kResults + 12 * i + 4) == cases[i].edx && host.faulted;
    if (faulted) ++fault;
    const Outcome libbt{guest.Read32(kResults + 12 * i), guest.Read32(kResults + 12 * i + 4),
                        faulted};
    CAPTURE(i);
    CHECK(libbt == host);
  }
  CHECK(fault == faults.size());
  const Stats stats = guest.machine().GetStats();
  CHECK(stats.callouts[static_cast<std::size_t>(CalloutKind::kDivideCheck)] > 0);
}

// Four faulting divisions first (the check goes in after three), then the
// edges.
std::vector<Division> Cases(std::initializer_list<Division> edges) {
  std::vector<Division> cases = {{5, 0, 0}, {7, 0, 0}, {9, 0, 0}, {11, 0, 0}};
  cases.insert(cases.end(), edges);
  return cases;
}

TEST_CASE("checked div r32 and div m32 fault exactly where the host's do") {
  const auto cases = Cases({{100, 0, 7},
                            {0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFF},  // quotient 0xFFFFFFFF
                            {0, 1, 1},                             // quotient 2^32: #DE
                            {0, 0x10, 0x10},                       // quotient 2^32: #DE
                            {3, 0, 0},
                            {12345, 678, 0x1000}});
  const auto host = [](std::uint32_t& eax, std::uint32_t& edx, std::uint32_t divisor) {
    __asm__ volatile("divl %2" : "+a"(eax), "+d"(edx) : "r"(divisor));
  };
  CheckAgainstHost(
      cases, [](x86::Assembler& a) { a.div(x86::ebx); }, host);
  CheckAgainstHost(
      cases, [](x86::Assembler& a) { a.div(x86::dword_ptr_abs(kMemoryDivisor)); }, host);
}

TEST_CASE("checked idiv r32 faults exactly where the host's does, INT_MIN / -1 included") {
  CheckAgainstHost(
      Cases({{0x80000000, 0xFFFFFFFF, 0xFFFFFFFF},  // 2^31: #DE
             {0x80000000, 0xFFFFFFFF, 1},           // -2^31: fits
             {0, 0x80000000, 0xFFFFFFFF},           // INT64_MIN / -1
             {7, 0, 0xFFFFFFFE},
             {0xFFFFFFF9, 0xFFFFFFFF, 2},
             {0, 0x40000000, 0x7FFFFFFF}}),
      [](x86::Assembler& a) { a.idiv(x86::ebx); },
      [](std::uint32_t& eax, std::uint32_t& edx, std::uint32_t divisor) {
        __asm__ volatile("idivl %2" : "+a"(eax), "+d"(edx) : "r"(divisor));
      });
}

TEST_CASE("checked 8- and 16-bit divisions, with a high-byte divisor") {
  // div bh: AX / BH; idiv cx: DX:AX / CX.
  CheckAgainstHost(
      Cases({{0x1234, 0, 0x2000}, {0x1234, 0, 0x0100}, {0x00FF, 0, 0x0100}, {0xFFFF, 0, 0xFF00}}),
      [](x86::Assembler& a) { a.div(x86::bh); },
      [](std::uint32_t& eax, std::uint32_t&, std::uint32_t divisor) {
        std::uint32_t ebx = divisor;
        __asm__ volatile("divb %%bh" : "+a"(eax), "+b"(ebx));
      });
  CheckAgainstHost(
      Cases({{0x8000, 0xFFFF, 0xFFFF},
             {0x0000, 0x8000, 0xFFFF},
             {0x1000, 0, 3},
             {0x7FFF, 0, 0xFFFF},
             {0, 0x7FFF, 0x7FFF}}),
      [](x86::Assembler& a) { a.idiv(x86::cx); },
      [](std::uint32_t& eax, std::uint32_t& edx, std::uint32_t divisor) {
        __asm__ volatile("idivw %w2" : "+a"(eax), "+d"(edx) : "r"(divisor));
      });
}

}  // namespace
}  // namespace bt
