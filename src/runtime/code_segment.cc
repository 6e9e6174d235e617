// Code segments with a base and a limit (SDM Vol. 3A 3.4.5, 5.3), in
// 32-bit code: EIP is an offset in CS, instructions are fetched from
// CS.base + EIP, and a fetch of a byte beyond CS.limit, or a branch to an
// offset beyond it, raises #GP(0).
//
// Flat code segments, which every common OS keeps, cost nothing: units are
// keyed on whether CS is flat (translator::kModeCodeSegment) and, if not,
// on its base and limit (UnitKey::code_base, code_limit), so a unit's code
// can assume both. The translator then stops straight-line code where the
// limit does, turns direct branches past it into #GP(0) and checks
// indirect targets inline, against the limit as a constant; indirect
// branches leave through the dispatcher, as the inline lookup table holds
// flat units only. Here the runtime computes the mode and checks the
// targets of the transfers it makes itself: far jmp, call and ret, call
// gates, interrupt and trap gates, iret and task switches (sysenter and
// sysexit load flat segments).
#include "runtime/descriptor.h"
#include "runtime/vcpu.h"

namespace bt::runtime {

using translator::kCs;

std::uint32_t Vcpu::CodeSegmentMode() {
  const translator::SegmentState& code = state_->segment[kCs];
  if (code.base == 0 && code.limit == 0xFFFFFFFF) return 0;
  // Data accesses through a cs: override in units of the mode check these,
  // as they do ES, SS and DS's. A code segment is never writable.
  state_->segment_bounds[kCs][0] = BoundsOf(code, false);
  state_->segment_bounds[kCs][1] = BoundsOf(code, true);
  return translator::kModeCodeSegment;
}

}  // namespace bt::runtime
