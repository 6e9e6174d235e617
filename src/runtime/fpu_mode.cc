// CR0.TS, CR0.EM and CR0.MP against natively run x87, MMX and SSE code (SDM
// Vol. 3A 2.5, table 2-2; 13.4 for lazy FPU switching with #NM).
//
// Translated code runs those instructions on the host FPU as they are, and
// the host's own CR0 never faults them. Units are therefore keyed on the
// guest's CR0 bits that matter (translator::UnitMode): in the usual mode (TS
// and EM clear) the instructions are copied and nothing is tested at run
// time; in a mode where they fault the translator makes each of them a
// callout that raises the fault here. Both sets of units stay cached, so a
// kernel that sets TS on every task switch and clears it in its #NM handler
// (lazy FPU switching) flips between them without retranslating. Changing
// these bits empties the indirect-branch table, whose entries do not record
// them. The mode also holds the view and the segments that are not flat
// (segment_access.cc, code_segment.cc), which the table's salt records, or
// which keep units out of the table (a CS that is not flat).
#include "runtime/vcpu.h"

namespace bt::runtime {

std::uint32_t Vcpu::CurrentUnitMode() {
  const std::uint32_t mode = translator::UnitMode(state_->cr0, state_->cr4);
  if (mode != indirect_mode_) {
    indirect_.Clear();
    indirect_mode_ = mode;
  }
  const bool user = CurrentView() == mmu::View::kUser;
  const std::uint32_t used = segments_used_[user];
  return mode | used | (SegmentMode() & translator::DependentSegments(used)) | CodeSegmentMode() |
         (user ? translator::kModeUserView : 0);
}

void Vcpu::OnCr0Changed(std::uint32_t old_cr0) {
  if (translator::UnitMode(old_cr0, state_->cr4) != translator::UnitMode(state_->cr0, state_->cr4))
    CurrentUnitMode();
  UpdatePagingMode();
}

bool Vcpu::RaiseFpuUnavailable(const decoder::DecodedInstruction& insn) {
  // Units are keyed on CR0 and CR4, so this unit's mode is theirs. Should
  // they have changed without a return to the dispatcher, re-run the
  // instruction from a unit of the right mode rather than fault wrongly.
  if (!translator::FpuFaults(insn.fpu_class, translator::UnitMode(state_->cr0, state_->cr4))) {
    return ExitWith(std::nullopt, insn.eip);
  }
  // #UD comes before #NM: MMX and SSE under CR0.EM, SSE without OSFXSR.
  const bool undefined =
      (insn.fpu_class == decoder::FpuClass::kMmx && (state_->cr0 & translator::kCr0Em)) ||
      (insn.fpu_class == decoder::FpuClass::kSse &&
       ((state_->cr0 & translator::kCr0Em) || !(state_->cr4 & translator::kCr4Osfxsr)));
  return RaiseFault(undefined ? kInvalidOpcode : kDeviceNotAvailable, insn);
}

}  // namespace bt::runtime
