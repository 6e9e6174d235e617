// rdmsr and wrmsr (SDM Vol. 2B; MSRs in Vol. 4, table 2-2): the MSRs a 32-bit
// kernel uses on a CPU with what libbt's CPUID reports. Every other MSR, and
// any access at CPL > 0, is #GP(0) as the SDM has it. Two follow from CPUID:
// IA32_APIC_BASE (1BH) does not exist without CPUID.01H:EDX.APIC, and of
// IA32_EFER (C0000080H) only NXE is there, as leaf 80000001H reports NX but
// neither SYSCALL nor long mode, so setting any other bit is #GP(0). QEMU
// answers some unknown MSRs with 0 instead of #GP, and ignores writes to
// EFER bits its CPU lacks.
//
// CPUID reports the host's vendor, and Linux on an AMD CPU sets
// EnableCf8ExtCfg (bit 46) in the northbridge's NB_CFG (C001001FH) without
// checking for #GP: on an AMD host that MSR is there, with only that bit
// writable (the PCI host bridge has no extended configuration space for it
// to open, so it is only kept).
#include "runtime/vcpu.h"

#include <x86intrin.h>

namespace bt::runtime {

using decoder::DecodedInstruction;
using translator::kEax;
using translator::kEcx;
using translator::kEdx;
using translator::kEferNxe;

namespace {

enum Msr : std::uint32_t {
  kTimeStampCounter = 0x10,
  kPlatformId = 0x17,  // read-only; Linux's microcode loader reads it
  kBiosSignId = 0x8B,  // microcode revision; Linux writes 0, runs CPUID, reads
  kSysenterCs = 0x174,
  kSysenterEsp = 0x175,
  kSysenterEip = 0x176,
  kMiscEnable = 0x1A0,
  kPat = 0x277,
  kEfer = 0xC0000080,
  kAmdNbConfig = 0xC001001F,
};

constexpr std::uint64_t kEnableCf8ExtCfg = 1ull << 46;

bool AmdHost() {
  std::uint32_t vendor[4];
  GuestCpuid(0, 0, vendor);
  return vendor[1] == 0x68747541;  // "Auth" of "AuthenticAMD"
}

// IA32_MISC_ENABLE bits a write may change, none of which affects libbt:
// fast strings (0), automatic thermal control (3), limit CPUID maxval (22,
// already true: the largest basic leaf is 1), xTPR disable (23). The rest
// are read-only or reserved, and a write that changes them is #GP(0). That
// includes XD disable (34), which would have to hide NX from CPUID and
// EFER: this CPU cannot turn NX off, so the bit stays 0.
constexpr std::uint64_t kMiscEnableWritable =
    (1ull << 0) | (1ull << 3) | (1ull << 22) | (1ull << 23);

// Every entry of the PAT must be a defined memory type: UC, WC, WT, WP, WB
// or UC- (0, 1, 4, 5, 6, 7); writing 2, 3 or 8-FFH is #GP(0) (SDM Vol. 3A,
// "IA32_PAT MSR").
bool ValidPat(std::uint64_t value) {
  for (unsigned i = 0; i < 8; ++i) {
    const unsigned type = value >> (8 * i) & 0xFF;
    if (type == 2 || type == 3 || type > 7) return false;
  }
  return true;
}

}  // namespace

std::uint64_t Vcpu::GuestTsc() const { return __rdtsc() + state_->msr.tsc_offset; }

bool Vcpu::ReadMsr(const DecodedInstruction& insn) {
  const translator::MsrState& msr = state_->msr;
  std::uint64_t value = 0;
  switch (state_->gpr[kEcx]) {
    case kTimeStampCounter: value = GuestTsc(); break;
    case kPlatformId: value = 0; break;  // platform ID 0 in bits 52:50
    case kBiosSignId: value = 0; break;  // no microcode update loaded
    case kSysenterCs: value = msr.sysenter_cs; break;
    case kSysenterEsp: value = msr.sysenter_esp; break;
    case kSysenterEip: value = msr.sysenter_eip; break;
    case kMiscEnable: value = msr.misc_enable; break;
    case kPat: value = msr.pat; break;
    case kEfer: value = msr.efer; break;
    case kAmdNbConfig:
      if (!AmdHost()) return RaiseFault(kGeneralProtection, insn, 0);
      value = msr.amd_nb_config;
      break;
    default: return RaiseFault(kGeneralProtection, insn, 0);
  }
  state_->gpr[kEax] = static_cast<std::uint32_t>(value);
  state_->gpr[kEdx] = static_cast<std::uint32_t>(value >> 32);
  return false;
}

bool Vcpu::WriteMsr(const DecodedInstruction& insn) {
  translator::MsrState& msr = state_->msr;
  const std::uint64_t value =
      static_cast<std::uint64_t>(state_->gpr[kEdx]) << 32 | state_->gpr[kEax];
  switch (state_->gpr[kEcx]) {
    case kTimeStampCounter: msr.tsc_offset = value - __rdtsc(); break;
    // Software writes 0 before CPUID loads the signature (SDM Vol. 3A,
    // "Microcode Update Signature"); there is none to load.
    case kBiosSignId: break;
    // Bits 63:16 are unused but kept (SDM Vol. 4; QEMU keeps 15:0 only).
    case kSysenterCs: msr.sysenter_cs = value; break;
    // 32 bits wide on a processor without Intel 64, which is what CPUID says.
    case kSysenterEsp: msr.sysenter_esp = static_cast<std::uint32_t>(value); break;
    case kSysenterEip: msr.sysenter_eip = static_cast<std::uint32_t>(value); break;
    case kMiscEnable:
      if ((value ^ msr.misc_enable) & ~kMiscEnableWritable) {
        return RaiseFault(kGeneralProtection, insn, 0);
      }
      msr.misc_enable = value;
      break;
    case kPat:
      if (!ValidPat(value)) return RaiseFault(kGeneralProtection, insn, 0);
      msr.pat = value;
      break;
    case kEfer:
      if (value & ~kEferNxe) return RaiseFault(kGeneralProtection, insn, 0);
      msr.efer = value;
      // Translated code may run on: NXE makes no page fetchable that was
      // not, or the other way round, since a fetch from a page with bit 63
      // set faults either way (execute-disable, or a reserved bit without
      // NXE; SDM Vol. 3A, 4.4.2). Only the shadow's data mappings change.
      UpdatePagingMode();
      break;
    case kAmdNbConfig:
      if (!AmdHost() || (value & ~kEnableCf8ExtCfg)) {
        return RaiseFault(kGeneralProtection, insn, 0);
      }
      msr.amd_nb_config = value;
      break;
    default: return RaiseFault(kGeneralProtection, insn, 0);
  }
  return false;
}

}  // namespace bt::runtime
