// CPUID describes exactly what libbt runs: the host's model, the
// instruction-set features that IDENT translation passes through, and the
// system features the runtime emulates (MSR: rdmsr/wrmsr with the MSRs of
// msrs.cc; SEP: sysenter/sysexit; PSE, PAE, PGE: the shadow MMU; NX: the
// walker's execute-disable bit, enabled by IA32_EFER.NXE; PAT: the MSR,
// whose memory types do not matter to a software MMU), but none of those
// libbt does not emulate yet (APIC, SYSCALL) or cannot (AVX and other
// VEX/EVEX encodings, long mode).
#include "runtime/vcpu.h"

#include <cpuid.h>

#include <algorithm>
#include <array>
#include <cstring>

namespace bt::runtime {
namespace {

constexpr std::uint32_t kMaxBasicLeaf = 1;
constexpr std::uint32_t kMaxExtendedLeaf = 0x80000008;

// Leaf 1 EDX: FPU, PSE, TSC, MSR, PAE, CX8, SEP, PGE, CMOV, PAT, MMX, FXSR,
// SSE, SSE2.
constexpr std::uint32_t kLeaf1Edx = (1u << 0) | (1u << 3) | (1u << 4) | (1u << 5) | (1u << 6) |
                                    (1u << 8) | (1u << 11) | (1u << 13) | (1u << 15) | (1u << 16) |
                                    (1u << 23) | (1u << 24) | (1u << 25) | (1u << 26);
// Leaf 80000008H EAX: 32 physical and 32 linear address bits. Without the
// leaf, PAE would imply 36 physical bits (SDM Vol. 3A, 4.1.4), and guest
// physical addresses above 4 GiB would not be reserved as the walker has.
constexpr std::uint32_t kAddressSizes = 0x2020;
// Leaf 1 ECX: SSE3, PCLMULQDQ off, SSSE3, CX16 off, SSE4.1, SSE4.2, POPCNT.
constexpr std::uint32_t kLeaf1Ecx = (1u << 0) | (1u << 9) | (1u << 19) | (1u << 20) | (1u << 23);
// Leaf 1 ECX bit 31, reserved for hypervisors to say they are there: libbt
// is one, and guests then take what it does not emulate (a PMU, say) for a
// limit of virtualization rather than broken hardware.
constexpr std::uint32_t kHypervisorPresent = 1u << 31;
// Extended leaf 1 ECX: LAHF/SAHF, LZCNT (ABM).
constexpr std::uint32_t kExtendedEcx = (1u << 0) | (1u << 5);
// Extended leaf 1 EDX: NX, which the page walker implements whatever the host has.
constexpr std::uint32_t kExtendedEdx = 1u << 20;

using Leaf = std::array<std::uint32_t, 4>;

Leaf ComputeLeaf(std::uint32_t leaf) {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  __cpuid_count(leaf, 0, eax, ebx, ecx, edx);
  switch (leaf) {
    case 0: eax = kMaxBasicLeaf; break;
    case 1:
      ebx &= 0x0000FFFF;  // one logical processor, APIC ID 0
      ecx = (ecx & kLeaf1Ecx) | kHypervisorPresent;
      edx &= kLeaf1Edx;
      break;
    case 0x80000000: eax = kMaxExtendedLeaf; break;
    case 0x80000001:
      ecx &= kExtendedEcx;
      edx = kExtendedEdx;  // no long mode, no SYSCALL
      break;
    case 0x80000005:  // cache and TLB descriptions: none given
    case 0x80000006:
    case 0x80000007: eax = ebx = ecx = edx = 0; break;
    case 0x80000008:
      eax = kAddressSizes;
      ebx = ecx = edx = 0;
      break;
    default: break;
  }
  return {eax, ebx, ecx, edx};
}

}  // namespace

// None of the leaves given depends on the subleaf. They are read from the
// host once: under a hypervisor every host CPUID is a VM exit, microseconds
// that a guest calling CPUID at every program start (glibc does, a few dozen
// times) would pay each time.
void GuestCpuid(std::uint32_t leaf, std::uint32_t, std::uint32_t out[4]) {
  static const auto leaves = [] {
    std::array<Leaf, kMaxBasicLeaf + 1 + (kMaxExtendedLeaf - 0x80000000) + 1> table;
    for (std::uint32_t i = 0; i <= kMaxBasicLeaf; ++i) table[i] = ComputeLeaf(i);
    for (std::uint32_t i = 0x80000000; i <= kMaxExtendedLeaf; ++i) {
      table[kMaxBasicLeaf + 1 + (i - 0x80000000)] = ComputeLeaf(i);
    }
    return table;
  }();
  const bool extended = leaf >= 0x80000000;
  Leaf result{};
  if (!extended && leaf <= kMaxBasicLeaf) {
    result = leaves[leaf];
  } else if (extended && leaf <= kMaxExtendedLeaf) {
    result = leaves[kMaxBasicLeaf + 1 + (leaf - 0x80000000)];
  }
  std::copy(result.begin(), result.end(), out);
}

std::uint32_t HostMxcsrMask() {
  static const std::uint32_t mask = [] {
    alignas(16) std::uint8_t image[512] = {};
    __builtin_ia32_fxsave64(image);
    std::uint32_t saved = 0;
    std::memcpy(&saved, image + 28, sizeof(saved));
    // SDM Vol. 1, 11.6.6: a zero mask means the default 0xFFBF.
    return saved ? saved : 0xFFBFu;
  }();
  return mask;
}

}  // namespace bt::runtime
