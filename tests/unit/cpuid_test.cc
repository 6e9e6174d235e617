#include "runtime/vcpu.h"

#include <doctest/doctest.h>

namespace bt::runtime {
namespace {

TEST_CASE("CPUID reports the paging features the shadow MMU implements, and no more") {
  std::uint32_t out[4];
  GuestCpuid(1, 0, out);
  const std::uint32_t edx = out[3];
  CHECK((edx >> 3 & 1) == 1);   // PSE
  CHECK((edx >> 6 & 1) == 1);   // PAE
  CHECK((edx >> 13 & 1) == 1);  // PGE
  CHECK((edx >> 16 & 1) == 1);  // PAT, whose MSR rdmsr/wrmsr accept
  CHECK((edx >> 9 & 1) == 0);   // no APIC
  CHECK((edx >> 17 & 1) == 0);  // no PSE-36: physical addresses stay below 4 GiB

  GuestCpuid(0x80000000, 0, out);
  REQUIRE(out[0] >= 0x80000008);
  GuestCpuid(0x80000001, 0, out);
  CHECK((out[3] >> 20 & 1) == 1);  // NX, enabled by IA32_EFER.NXE
  CHECK((out[3] >> 11 & 1) == 0);  // no SYSCALL
  CHECK((out[3] >> 29 & 1) == 0);  // no long mode
  GuestCpuid(0x80000008, 0, out);
  CHECK(out[0] == 0x2020);  // 32 physical, 32 linear address bits
}

TEST_CASE("CPUID says a hypervisor is there") {
  std::uint32_t out[4];
  GuestCpuid(1, 0, out);
  CHECK((out[2] >> 31 & 1) == 1);
}

}  // namespace
}  // namespace bt::runtime
