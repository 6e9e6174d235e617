#include "translator/unit_builder.h"

#include "platform/host_fault.h"

#include <algorithm>
#include <cassert>
#include <cstring>

namespace bt::translator {

using asmjit::Imm;
using asmjit::Label;
using decoder::Kind;
using decoder::kNoRegister;

UnitBuilder::UnitBuilder(const Trampolines& trampolines, TranslationUnit* unit,
                         std::uint8_t* code_base, FaultMapEntry* fault_map,
                         std::uint32_t fault_map_capacity, CalloutRecord* records, bool chaining)
    : trampolines_(trampolines),
      unit_(unit),
      code_base_(code_base),
      fault_map_(fault_map),
      fault_map_capacity_(fault_map_capacity),
      records_(records),
      chaining_(chaining) {
  code_.init(asmjit::Environment(asmjit::Arch::kX64), reinterpret_cast<std::uint64_t>(code_base));
  code_.attach(&assembler_);
}

void UnitBuilder::BeginInstruction(const DecodedInstruction& instruction, Fixup fixup,
                                   std::uint8_t argument) {
  current_eip_ = instruction.eip;
  SetFixup(fixup, argument);
}

void UnitBuilder::SetFixup(Fixup fixup, std::uint8_t argument) {
  auto offset = static_cast<std::uint32_t>(assembler_.offset());
  if (fault_map_size_ && fault_map_[fault_map_size_ - 1].host_offset == offset) {
    --fault_map_size_;  // the previous entry covers no code
  }
  assert(fault_map_size_ < fault_map_capacity_);
  fault_map_[fault_map_size_++] = {offset, current_eip_, fixup, argument};
  current_fixup_ = fixup;
  current_argument_ = argument;
}

void UnitBuilder::EmitEventPoll(std::uint32_t resume_eip) {
  // A unit is entered at its start, or at a call's continuation by a return
  // that only the call just before it pushed, and loops only through its
  // exits, so every round of a loop through a later transfer has read the
  // page at the unit's first poll. (Calls that never returned leave their
  // continuations on the return stack, a bounded number of rounds at most.)
  if (polled_) return;
  polled_ = true;
  current_eip_ = resume_eip;
  SetFixup(Fixup::kNone);
  assembler_.mov(kScratch32, x86::dword_ptr(kState, kPollOffset));
}

UnitBuilder::SegmentUse UnitBuilder::UseOf(std::uint8_t segment) const {
  if (SegmentChecked(mode(), segment)) return SegmentUse::kChecked;
  return segment == kFs || segment == kGs ? SegmentUse::kBased : SegmentUse::kFlat;
}

UnitBuilder::SegmentUse UnitBuilder::OperandUse(const DecodedInstruction& insn) const {
  if (insn.segment == kNoRegister || insn.memory.agen) return SegmentUse::kFlat;
  return UseOf(insn.segment);
}

void UnitBuilder::EffectiveAddress(const DecodedInstruction& insn, const x86::Gp& dest) {
  const decoder::MemoryOperand& m = insn.memory;
  if (m.base == kNoRegister && m.index == kNoRegister) {
    const auto address = static_cast<std::uint32_t>(m.displacement);
    assembler_.mov(dest.r32(), Imm(m.address16 ? address & 0xFFFF : address));
    return;
  }
  x86::Mem address;
  const auto shift = static_cast<std::uint32_t>(__builtin_ctz(m.scale));
  if (m.base != kNoRegister && m.index != kNoRegister) {
    address = x86::ptr(kGuestGpr32[m.base], kGuestGpr32[m.index], shift, m.displacement);
  } else if (m.base != kNoRegister) {
    address = x86::ptr(kGuestGpr32[m.base], m.displacement);
  } else {
    // [disp32 + index*scale]: the 64-bit sum truncated to 32 bits is the
    // 32-bit address, as guest registers are kept zero-extended.
    address = x86::ptr(static_cast<std::uint64_t>(static_cast<std::int64_t>(m.displacement)),
                       kGuestGpr64[m.index], shift);
  }
  // 32-bit base registers make asmjit emit addr32, so the sum wraps at 4 GiB.
  assembler_.lea(dest.r32(), address);
  if (m.address16) assembler_.movzx(dest.r32(), dest.r16());
}

void UnitBuilder::LinearAddress(const DecodedInstruction& insn, const x86::Gp& dest, bool check,
                                unsigned bytes) {
  EffectiveAddress(insn, dest);
  const SegmentUse use = OperandUse(insn);
  if (use == SegmentUse::kFlat) return;
  const bool accessed = insn.memory.read || insn.memory.written;
  if (use == SegmentUse::kChecked && check && accessed) {
    CheckLimit(insn.segment, dest, bytes ? bytes : std::max<unsigned>(insn.memory.bytes, 1),
               insn.memory.written);
  }
  AddSegmentBase(insn.segment, dest);
}

// The check is inline because it runs on every access through a checked
// segment, where a callout would cost a hundred times more; it stays off
// flat units, so common code pays nothing. Translated code must keep the
// guest's flags, so there is no cmp: with the offset o, the bounds
// [first, last] and the access's last byte o + bytes - 1 in 64 bits,
//   o - first                 has a high dword of 0 exactly when o >= first,
//   o + bytes - 1 - last - 1  has a high dword of ~0 exactly when the last
//                             byte is at most `last`,
// as both lie within +-2^33. bswap brings each high dword down, lea adds
// them up, and jrcxz (with the guest's ECX set aside) takes the in-bounds
// path; out of bounds, ud2 traps into the host fault handler, whose fault
// map entry turns it into the guest's #GP(0) or #SS(0) with every register
// and flag as the instruction found them.
void UnitBuilder::CheckLimit(std::uint8_t segment, const x86::Gp& offset, unsigned bytes,
                             bool write) {
  auto& a = assembler_;
  const std::size_t bounds = offsetof(CpuState, segment_bounds) +
                             (segment * 2u + (write ? 1u : 0u)) * sizeof(SegmentBounds);
  const x86::Gp o = offset.r64();
  Label within = a.newLabel();
  a.mov(x86::r9, x86::rcx);
  a.mov(x86::rcx, StateField(bounds + offsetof(SegmentBounds, neg_first), 8));
  a.lea(x86::rcx, x86::ptr(x86::rcx, o));
  a.mov(x86::r8, StateField(bounds + offsetof(SegmentBounds, neg_last), 8));
  a.lea(x86::r8, x86::ptr(x86::r8, o, 0, static_cast<std::int32_t>(bytes) - 2));
  a.bswap(x86::rcx);
  a.mov(x86::ecx, x86::ecx);
  a.bswap(x86::r8);
  a.not_(x86::r8d);
  a.lea(x86::rcx, x86::ptr(x86::rcx, x86::r8));
  a.jecxz(x86::rcx, within);
  a.mov(x86::rcx, x86::r9);
  EmitSegmentFault(segment == kSs ? kStackFault : kGeneralProtection);
  a.bind(within);
  a.mov(x86::rcx, x86::r9);
}

void UnitBuilder::EmitSegmentFault(std::uint8_t vector) {
  const Fixup fixup = current_fixup_;
  const std::uint8_t argument = current_argument_;
  SetFixup(Fixup::kSegmentFault, vector);
  assembler_.ud2();
  SetFixup(fixup, argument);
}

// As CheckLimit, without flags, but against the limit the unit was
// translated for: target + (0xFFFFFFFF - limit) carries into the high
// dword exactly when target > limit, and bswap brings that dword down.
void UnitBuilder::CheckCodeLimit(const x86::Gp& target) {
  if (!(mode() & kModeCodeSegment)) return;
  auto& a = assembler_;
  Label within = a.newLabel();
  a.mov(x86::r9, x86::rcx);
  a.mov(x86::ecx, Imm(0xFFFFFFFFu - unit_->key.code_limit));
  a.lea(x86::rcx, x86::ptr(x86::rcx, target.r64()));
  a.bswap(x86::rcx);
  a.jecxz(x86::ecx, within);
  a.mov(x86::rcx, x86::r9);
  EmitCodeLimitFault();
  a.bind(within);
  a.mov(x86::rcx, x86::r9);
}

// The base is read at run time, so a translation stays valid when the guest
// reloads the segment (per-CPU data, thread-local storage); lea keeps the
// guest flags intact, and its 32-bit result wraps the linear address at 4 GiB.
void UnitBuilder::AddSegmentBase(std::uint8_t segment, const x86::Gp& dest, const x86::Gp& temp) {
  assembler_.mov(temp.r32(),
                 StateField(offsetof(CpuState, segment) + segment * sizeof(SegmentState) +
                                offsetof(SegmentState, base),
                            4));
  assembler_.lea(dest.r32(), x86::ptr(dest.r64(), temp.r64()));
}

x86::Mem UnitBuilder::GuestMemory(const DecodedInstruction& insn, unsigned size) {
  const decoder::MemoryOperand& m = insn.memory;
  x86::Mem mem;
  if (m.address16 || m.base == kNoRegister || OperandUse(insn) != SegmentUse::kFlat) {
    LinearAddress(insn, kScratch, /*check=*/true, size);
    mem = x86::ptr(kScratch32, 0, size);
  } else if (m.index != kNoRegister) {
    mem = x86::ptr(kGuestGpr32[m.base], kGuestGpr32[m.index],
                   static_cast<std::uint32_t>(__builtin_ctz(m.scale)), m.displacement, size);
  } else {
    mem = x86::ptr(kGuestGpr32[m.base], m.displacement, size);
  }
  mem.setSegment(x86::gs);
  return mem;
}

x86::Mem UnitBuilder::StackFrame::At(std::int32_t offset, unsigned size) const {
  x86::Mem mem = x86::ptr(base, offset + bias, size);
  mem.setSegment(x86::gs);
  return mem;
}

UnitBuilder::StackFrame UnitBuilder::Stack(const x86::Gp& reg, std::int32_t first, unsigned bytes,
                                           bool write, const x86::Gp& scratch) {
  if (UseOf(kSs) != SegmentUse::kChecked) return {reg.r32(), 0};
  assembler_.lea(scratch.r32(), x86::ptr(reg.r64(), first));
  CheckLimit(kSs, scratch, bytes, write);
  AddSegmentBase(kSs, scratch, x86::r8);
  return {scratch.r32(), -first};
}

UnitBuilder::PendingExit& UnitBuilder::NewExit(std::uint32_t target_eip, unsigned rel32_offset) {
  assert(unit_->exit_count < kMaxExits);
  ExitLink* link = &unit_->exits[unit_->exit_count];
  PendingExit& pending = exits_[unit_->exit_count++];
  new (link) ExitLink();
  link->owner = unit_;
  link->target_eip = target_eip;
  pending = {assembler_.newLabel(), assembler_.newLabel(), rel32_offset, link};
  assembler_.bind(pending.jump);
  return pending;
}

void UnitBuilder::EmitDirectExit(std::uint32_t target_eip) {
  PendingExit& pending = NewExit(target_eip, 1);
  assembler_.long_().jmp(pending.slow_path);
}

void UnitBuilder::EmitConditionalExit(std::uint8_t condition, std::uint32_t target_eip) {
  if (BeyondCodeLimit(target_eip)) {
    Label not_taken = assembler_.newLabel();
    assembler_.j(static_cast<x86::CondCode>(condition ^ 1), not_taken);  // the opposite condition
    EmitCodeLimitFault();
    assembler_.bind(not_taken);
    return;
  }
  PendingExit& pending = NewExit(target_eip, 2);
  assembler_.long_().j(static_cast<x86::CondCode>(condition), pending.slow_path);
}

void UnitBuilder::EmitIndirectExit() {
  // The table's entries are flat units', found by eip alone (see
  // kModeCodeSegment).
  if (!chaining_ || (mode() & kModeCodeSegment)) {
    assembler_.jmp(Imm(reinterpret_cast<std::uint64_t>(trampolines_.exit_indirect)));
    return;
  }
  EmitIndirectLookup(assembler_, IndirectSalt(mode()), /*salt_in_state=*/false,
                     Imm(reinterpret_cast<std::uint64_t>(trampolines_.exit_indirect)));
}

// lea gives 1 where the guest returned to `return_eip`, which loop counts
// down to 0 and falls through: the hot path takes no branch. Otherwise loop
// jumps into the immediate of the movabs after it, whose bytes hide the way
// to the unit's lookup of the return address (shared by its continuations,
// and out of the way at its end).
void UnitBuilder::EmitContinuation(std::uint32_t return_eip) {
  constexpr std::uint8_t kMovabsR8[] = {0x49, 0xB8};                // movabs r8, imm64
  constexpr std::uint8_t kHiddenExit[] = {0x4C, 0x89, 0xC9, 0xE9};  // mov rcx, r9; jmp rel32
  auto& a = assembler_;
  if (!continuation_count_) continuation_lookup_ = a.newLabel();
  Label mismatch = a.newLabel(), past = a.newLabel();
  a.mov(x86::r9, x86::rcx);
  a.lea(x86::ecx, x86::ptr(kScratch, static_cast<std::int32_t>(1u - return_eip)));
  assert(continuation_count_ < kMaxExits);
  continuation_checks_[continuation_count_++] = static_cast<std::uint16_t>(a.offset());
  a.loop(x86::rcx, mismatch);
  Embed(kMovabsR8, sizeof(kMovabsR8));
  a.bind(mismatch);
  Embed(kHiddenExit, sizeof(kHiddenExit));
  a.embedLabelDelta(continuation_lookup_, past, 4);
  a.bind(past);
  a.mov(x86::rcx, x86::r9);
}

void UnitBuilder::EmitDirectCall(std::uint32_t target_eip, std::uint32_t return_eip) {
  if (!UsesReturnStack()) {
    EmitDirectExit(target_eip);
    return;
  }
  PendingExit& pending = NewExit(target_eip, 1);
  assembler_.call(pending.slow_path);
  EmitContinuation(return_eip);
}

void UnitBuilder::EmitIndirectCall(std::uint32_t return_eip) {
  if (!UsesReturnStack()) {
    EmitIndirectExit();
    return;
  }
  Label lookup = assembler_.newLabel();
  assembler_.call(lookup);
  EmitContinuation(return_eip);
  assembler_.bind(lookup);
  EmitIndirectExit();
}

void UnitBuilder::EmitReturn() {
  if (!UsesReturnStack()) {
    EmitIndirectExit();
    return;
  }
  assembler_.ret();
}

void UnitBuilder::EmitCallout(const DecodedInstruction& insn) {
  CalloutRecord* record = &records_[record_count_++];
  new (record) CalloutRecord{insn, mode()};
  // The runtime checks the operand's limit itself (Vcpu::CheckOperandLimit),
  // after the faults that come first, such as #GP for CPL > 0.
  if (insn.has_memory || insn.moffs) LinearAddress(insn, kScratch, /*check=*/false);
  assembler_.mov(x86::r11, Imm(reinterpret_cast<std::uint64_t>(record)));
  assembler_.call(Imm(reinterpret_cast<std::uint64_t>(trampolines_.callout)));
}

void UnitBuilder::EmitResolveMemory(const DecodedInstruction& insn) {
  DecodedInstruction resolve = insn;
  resolve.kind = Kind::kResolveMemory;
  EmitCallout(resolve);
}

void UnitBuilder::EmitCheckDivide(const DecodedInstruction& insn) {
  DecodedInstruction check = insn;
  check.kind = Kind::kCheckDivide;
  EmitCallout(check);
}

void UnitBuilder::EmitStringCheck(const DecodedInstruction& insn) {
  DecodedInstruction check = insn;
  check.kind = Kind::kStringCheck;
  EmitCallout(check);
}

void UnitBuilder::EmitReleaseMemory(const DecodedInstruction& insn, bool device) {
  if (!device && platform::UserModeGsBase()) {
    assembler_.wrgsbase(kWindow);
    return;
  }
  DecodedInstruction release = insn;
  release.kind = Kind::kReleaseMemory;
  EmitCallout(release);
}

namespace {

// An exit's slow path, written directly because it is the same few bytes
// every time: mov dword [r13 + next_eip], target; mov r14, link; jmp exit.
void WriteSlowPath(std::uint8_t* at, std::uint32_t target_eip, const ExitLink* link,
                   const std::uint8_t* exit_branch) {
  static_assert(offsetof(CpuState, next_eip) < 128);
  const std::uint8_t head[] = {0x41, 0xC7, 0x45, offsetof(CpuState, next_eip)};
  std::memcpy(at, head, sizeof(head));
  std::memcpy(at + 4, &target_eip, 4);
  at[8] = 0x49;  // REX.W + REX.B
  at[9] = 0xBE;  // mov r14, imm64
  const auto pointer = reinterpret_cast<std::uint64_t>(link);
  std::memcpy(at + 10, &pointer, 8);
  at[18] = 0xE9;
  PatchRel32(at + 19, exit_branch);
}

}  // namespace

std::size_t UnitBuilder::Finish(std::uint8_t* cold, std::uint16_t* continuation_checks) {
  if (continuation_count_) {
    assembler_.bind(continuation_lookup_);
    EmitIndirectExit();
  }
  // Exits jump past the end for now; their slow paths go to `cold` below.
  for (unsigned i = 0; i < unit_->exit_count; ++i) assembler_.bind(exits_[i].slow_path);
  code_.flatten();
  code_.resolveUnresolvedLinks();
  code_.relocateToBase(reinterpret_cast<std::uint64_t>(code_base_));
  std::size_t size = code_.codeSize();
  code_.copyFlattenedData(code_base_, size);
  unit_->code = code_base_;
  unit_->code_size = static_cast<std::uint32_t>(size);
  unit_->fault_map = fault_map_;
  unit_->fault_map_size = fault_map_size_;
  std::copy_n(continuation_checks_, continuation_count_, continuation_checks);
  unit_->continuation_checks = continuation_checks;
  unit_->continuation_count = continuation_count_;
  for (unsigned i = 0; i < unit_->exit_count; ++i) {
    ExitLink* link = exits_[i].link;
    link->rel32 = code_base_ + code_.labelOffset(exits_[i].jump) + exits_[i].rel32_offset;
    link->slow_path = cold + i * kSlowPathBytes;
    WriteSlowPath(link->slow_path, link->target_eip, link, trampolines_.exit_branch);
    PatchRel32(link->rel32, link->slow_path);
  }
  return size;
}

}  // namespace bt::translator
