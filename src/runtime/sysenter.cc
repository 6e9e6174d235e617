// sysenter and sysexit, the 32-bit fast system call (SDM Vol. 2B SYSENTER,
// SYSEXIT): CS, SS, ESP and EIP come from the IA32_SYSENTER_* MSRs and
// registers, with flat descriptors that the processor assumes without
// reading the GDT.
#include "runtime/vcpu.h"

namespace bt::runtime {

using decoder::DecodedInstruction;
using translator::kCs;
using translator::kSs;

namespace {

using translator::kEflagsIf;
using translator::kEflagsRf;
using translator::kEflagsVm;
// The descriptor caches both instructions load: base 0, limit 4 GiB (G=1),
// 32-bit; code type 11 (execute/read, accessed), data type 3 (read/write,
// accessed); S and P set; DPL 0, or 3 with kDpl3.
constexpr std::uint16_t kFlatCode = 0xC09B, kFlatData = 0xC093, kDpl3 = 3u << 5;
constexpr std::uint32_t kFlatLimit = 0xFFFFFFFF;

}  // namespace

bool Vcpu::Sysenter(const DecodedInstruction& insn) {
  const std::uint64_t sysenter_cs = state_->msr.sysenter_cs;
  if (!(state_->cr0 & translator::kCr0Pe) || (sysenter_cs & 0xFFFC) == 0) {
    return RaiseFault(kGeneralProtection, insn, 0);
  }
  // The RPL of IA32_SYSENTER_CS is ignored: CPL 0.
  const auto code = static_cast<std::uint16_t>(sysenter_cs & 0xFFFC);
  const unsigned old_cpl = state_->Cpl();
  state_->SetEflags(state_->Eflags() & ~(kEflagsVm | kEflagsIf | kEflagsRf));
  state_->segment[kCs] = {code, 0, kFlatLimit, kFlatCode};
  state_->segment[kSs] = {static_cast<std::uint16_t>(code + 8), 0, kFlatLimit, kFlatData};
  state_->gpr[translator::kEsp] = state_->msr.sysenter_esp;
  if (old_cpl != 0) OnPrivilegeChanged();
  return ExitWith(std::nullopt, state_->msr.sysenter_eip);
}

bool Vcpu::Sysexit(const DecodedInstruction& insn) {
  const std::uint64_t sysenter_cs = state_->msr.sysenter_cs;
  // CPL > 0 is #GP(0) too, raised before the callout gets here.
  if (!(state_->cr0 & translator::kCr0Pe) || (sysenter_cs & 0xFFFC) == 0) {
    return RaiseFault(kGeneralProtection, insn, 0);
  }
  // CS = SYSENTER_CS + 16 and SS = SYSENTER_CS + 24, both with RPL 3, which
  // makes the CPL 3.
  const auto code = static_cast<std::uint16_t>((sysenter_cs + 16) | 3);
  state_->segment[kCs] = {code, 0, kFlatLimit, static_cast<std::uint16_t>(kFlatCode | kDpl3)};
  state_->segment[kSs] = {static_cast<std::uint16_t>(code + 8), 0, kFlatLimit,
                          static_cast<std::uint16_t>(kFlatData | kDpl3)};
  state_->gpr[translator::kEsp] = state_->gpr[translator::kEcx];
  OnPrivilegeChanged();
  return ExitWith(std::nullopt, state_->gpr[translator::kEdx]);
}

}  // namespace bt::runtime
