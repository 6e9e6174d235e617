// Data segments with bases and limits (SDM Vol. 3A 3.4.5, 5.3, 5.4.1): ES,
// SS, DS, FS and GS with any base and limit, expand-up or expand-down,
// read-only or null, in 32-bit code.
//
// Flat segments cost nothing: units are keyed on which data segments are
// not flat (translator::kModeCheckedSegment), and only units translated
// with one of them checked check its bounds, which translated code reads
// from CpuState::segment_bounds at run time (so a reload of a checked
// segment with other bounds needs no retranslation). Units add the base of
// a checked segment, and always that of FS and GS: an FS or GS with a base
// but a flat limit, as operating systems use them, is not checked; nor is
// any FS or GS in a view that has not accessed memory through it yet
// (translator::kModeUsesFs), so that the null ones OSes keep there cost
// nothing.
// Here the runtime keeps those bounds, and does the same checks where it
// makes accesses itself: memory operands of callouts, the stack accesses
// of popf, iret, far calls and returns and interrupt delivery, and string
// instructions that would leave their segment, which run here element by
// element.
#include "runtime/descriptor.h"
#include "runtime/vcpu.h"

#include <algorithm>

namespace bt::runtime {

using decoder::DecodedInstruction;
using decoder::Kind;
using translator::kEs;
using translator::kSs;
using translator::SegmentBounds;
using translator::SegmentState;

namespace {

constexpr std::uint16_t kUsable = 0x10;       // S: a code or data segment; clear when null
constexpr std::uint16_t kCodeSegment = 0x08;  // type bit 3
constexpr std::uint16_t kExpandDown = 0x04;   // type bit 2 of a data segment
constexpr std::uint16_t kWritable = 0x02;     // type bit 1 of a data segment
constexpr std::uint16_t kBig = 0x4000;        // D/B in the attributes' high byte

// Whether a callout accesses its ModRM or moffs operand, whose limit is
// then checked before it runs: all do but invlpg, which takes an address,
// those that fault or stop before any access, and the one after an
// instruction whose operand the runtime resolved (checked before it).
bool AccessesOperand(Kind kind) {
  switch (kind) {
    case Kind::kInvlpg:
    case Kind::kReleaseMemory:
    case Kind::kSegmentUse:
    case Kind::kFpuUnavailable:
    case Kind::kInvalid:
    case Kind::kUnsupported:
    case Kind::kIdent: return false;  // a form with no host encoding: unsupported
    default: return true;
  }
}

// EFLAGS after `a - b` in `size` bytes, as cmp sets them (SDM Vol. 1
// appendix A): CF, PF, AF, ZF, SF, OF.
std::uint32_t SubtractionFlags(std::uint32_t a, std::uint32_t b, unsigned size) {
  const unsigned bits = 8 * size;
  const std::uint32_t mask = size == 4 ? 0xFFFFFFFFu : (1u << bits) - 1;
  a &= mask;
  b &= mask;
  const std::uint32_t result = (a - b) & mask, sign = 1u << (bits - 1);
  std::uint32_t flags = 0;
  if (a < b) flags |= translator::kEflagsCf;
  if (!(__builtin_popcount(result & 0xFF) & 1)) flags |= translator::kEflagsPf;
  if ((a ^ b ^ result) & 0x10) flags |= translator::kEflagsAf;
  if (result == 0) flags |= translator::kEflagsZf;
  if (result & sign) flags |= translator::kEflagsSf;
  if ((a ^ b) & (a ^ result) & sign) flags |= translator::kEflagsOf;
  return flags;
}

}  // namespace

std::uint8_t LimitFault(unsigned segment) {
  return segment == kSs ? kStackFault : kGeneralProtection;
}

SegmentBounds BoundsOf(const SegmentState& segment, bool write) {
  const std::uint16_t attributes = segment.attributes;
  const bool code = attributes & kCodeSegment;
  // A loaded code segment is readable, as the load checked; none is writable.
  if (!(attributes & kUsable) || (write && (code || !(attributes & kWritable)))) {
    return SegmentBounds::Empty();
  }
  const std::int64_t limit = segment.limit;
  if (!code && (attributes & kExpandDown)) {
    const std::int64_t top = (attributes & kBig) ? 0xFFFFFFFF : 0xFFFF;
    return {-(limit + 1), -top};
  }
  return {0, -limit};
}

std::optional<std::uint32_t> SegmentAddress(const SegmentState& segment, std::uint32_t offset,
                                            std::uint64_t bytes, bool write) {
  if (!BoundsOf(segment, write).Contains(offset, bytes)) return std::nullopt;
  return segment.base + offset;
}

std::uint32_t Vcpu::SegmentMode() {
  using translator::kFs;
  using translator::kGs;
  // Called at every unit lookup: flat segments, the usual ones, are told by
  // their attributes, and only checked ones get the bounds that translated
  // code reads (a flat one's are never read).
  constexpr std::uint16_t kFlatType = kUsable | kCodeSegment | kExpandDown | kWritable;
  std::uint32_t mode = 0;
  for (const unsigned index : {translator::kEs, translator::kSs, translator::kDs, kFs, kGs}) {
    const SegmentState& segment = state_->segment[index];
    // Every offset readable and writable, and a base that units add anyway.
    const bool flat = (segment.attributes & kFlatType) == (kUsable | kWritable) &&
                      segment.limit == 0xFFFFFFFF &&
                      (segment.base == 0 || index == kFs || index == kGs);
    if (flat) continue;
    state_->segment_bounds[index][0] = BoundsOf(segment, false);
    state_->segment_bounds[index][1] = BoundsOf(segment, true);
    mode |= translator::kModeCheckedSegment << index;
  }
  return mode;
}

bool Vcpu::AfterSegmentLoad(unsigned index, std::uint32_t next_eip) {
  const std::uint32_t mode = SegmentMode() & translator::DependentSegments(unit_mode_);
  // The unit goes on if what it assumed of the segments still holds: a
  // flat segment reloaded flat (as kernels do on every system call), or a
  // checked one with new bounds, which its checks read at run time. An SS
  // load leaves for its interrupt shadow (HoldInterruptsAfterStackLoad).
  if (index == kSs || mode != (unit_mode_ & translator::kModeCheckedSegments)) {
    return ExitWith(std::nullopt, next_eip);
  }
  return false;
}

bool Vcpu::UseSegment(const DecodedInstruction& insn) {
  segments_used_[CurrentView() == mmu::View::kUser] |= translator::UsesSegmentBit(insn.segment);
  return ExitWith(std::nullopt, insn.eip);
}

bool Vcpu::OperandOutsideLimit(const DecodedInstruction& insn) {
  if (!(insn.has_memory || insn.moffs) || insn.memory.agen || !AccessesOperand(insn.kind) ||
      insn.segment > translator::kGs) {
    return false;
  }
  // Units passed the segment's base in the operand's address where they
  // add it (FS, GS and checked segments); flat segments have base 0.
  const SegmentState& segment = state_->segment[insn.segment];
  const std::uint32_t offset = state_->effective_address - segment.base;
  const std::uint32_t bytes = std::max<std::uint32_t>(insn.memory.bytes, 1);
  if (BoundsOf(segment, insn.memory.written).Contains(offset, bytes)) return false;
  return RaiseFault(LimitFault(insn.segment), insn, 0);
}

std::optional<std::uint32_t> Vcpu::StackAddress(std::uint32_t offset, std::uint32_t bytes,
                                                bool write) const {
  return SegmentAddress(state_->segment[kSs], offset, bytes, write);
}

namespace {

struct StringForm {
  unsigned size;  // bytes per element
  bool source;    // reads [ESI] in its segment
  bool destination;
  bool stores;    // writes ES:[EDI] (movs, stos); cmps and scas read it
  bool compares;  // cmps, scas: a rep prefix is repe or repne
};

StringForm FormOf(const DecodedInstruction& insn) {
  const std::uint8_t opcode = insn.bytes[insn.prefix_count];
  const unsigned size = (opcode & 1) ? insn.operand_size : 1;
  switch (opcode & ~1u) {
    case 0xA4: return {size, true, true, true, false};    // movs
    case 0xA6: return {size, true, true, false, true};    // cmps
    case 0xAA: return {size, false, true, true, false};   // stos
    case 0xAC: return {size, true, false, false, false};  // lods
    default: return {size, false, true, false, true};     // scas
  }
}

}  // namespace

bool RunWithin(const SegmentState& segment, std::uint32_t offset, std::uint64_t count,
               unsigned size, bool down, bool write) {
  const std::uint64_t span = count * size;
  const std::int64_t first =
      down ? static_cast<std::int64_t>(offset) + size - static_cast<std::int64_t>(span) : offset;
  if (first < 0 || first + static_cast<std::int64_t>(span) - 1 > 0xFFFFFFFFll) return false;
  return BoundsOf(segment, write).Contains(static_cast<std::uint32_t>(first), span);
}

bool Vcpu::CheckString(const DecodedInstruction& insn) {
  const StringForm form = FormOf(insn);
  const std::uint64_t count = insn.rep ? state_->gpr[translator::kEcx] : 1;
  if (count == 0) return false;
  const bool down = state_->host_flags & translator::kEflagsDf;
  const bool source_within =
      !form.source || RunWithin(state_->segment[insn.segment], state_->gpr[translator::kEsi], count,
                                form.size, down, false);
  const bool destination_within =
      !form.destination || RunWithin(state_->segment[kEs], state_->gpr[translator::kEdi], count,
                                     form.size, down, form.stores);
  if (source_within && destination_within) return false;
  return EmulateString(insn);
}

// The string instruction element by element (SDM Vol. 2B MOVS, CMPS, STOS,
// LODS, SCAS and REP): a fault leaves ESI, EDI and ECX at the element that
// raised it, with the elements before it done.
bool Vcpu::EmulateString(const DecodedInstruction& insn) {
  using translator::kEax;
  using translator::kEcx;
  using translator::kEdi;
  using translator::kEsi;
  const StringForm form = FormOf(insn);
  const std::uint32_t step =
      (state_->host_flags & translator::kEflagsDf) ? 0u - form.size : form.size;
  constexpr std::uint32_t kArithmetic = translator::kEflagsCf | translator::kEflagsPf |
                                        translator::kEflagsAf | translator::kEflagsZf |
                                        translator::kEflagsSf | translator::kEflagsOf;
  std::uint32_t* gpr = state_->gpr;
  for (std::uint32_t budget = kStringElementsPerCallout; !insn.rep || gpr[kEcx] != 0; --budget) {
    // Long reps go on from a later callout, after the dispatcher has seen
    // to stop requests and events (which may come between iterations).
    if (budget == 0) return ExitWith(std::nullopt, insn.eip);
    std::uint32_t source = 0, destination = 0;
    if (form.source) {
      const auto at = SegmentAddress(state_->segment[insn.segment], gpr[kEsi], form.size, false);
      if (!at) return RaiseFault(LimitFault(insn.segment), insn, 0);
      if (!ReadOperand(*at, &source, form.size)) return OperandOutsideRam(insn);
    }
    if (form.destination) {
      const auto at = SegmentAddress(state_->segment[kEs], gpr[kEdi], form.size, form.stores);
      if (!at) return RaiseFault(kGeneralProtection, insn, 0);
      if (form.stores) {
        const std::uint32_t value = form.source ? source : gpr[kEax];
        if (!WriteOperand(*at, &value, form.size)) return OperandOutsideRam(insn);
      } else if (!ReadOperand(*at, &destination, form.size)) {
        return OperandOutsideRam(insn);
      }
    } else {
      WriteRegister(kEax, form.size, source);  // lods
    }
    if (form.compares) {
      const std::uint32_t left = form.source ? source : gpr[kEax];
      state_->host_flags = (state_->host_flags & ~std::uint64_t{kArithmetic}) |
                           SubtractionFlags(left, destination, form.size);
    }
    if (form.source) gpr[kEsi] += step;
    if (form.destination) gpr[kEdi] += step;
    if (!insn.rep) break;
    --gpr[kEcx];
    // repe (F3) stops at a difference, repne (F2) at a match.
    const bool equal = state_->host_flags & translator::kEflagsZf;
    if (form.compares && equal != (insn.rep == 1)) break;
  }
  return ExitWith(std::nullopt, insn.next_eip());
}

}  // namespace bt::runtime
