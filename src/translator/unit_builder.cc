#include "translator/unit_builder.h"

#include "platform/host_fault.h"

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
}

void UnitBuilder::EffectiveAddress(const DecodedInstruction& insn, const x86::Gp& dest) {
  const decoder::MemoryOperand& m = insn.memory;
  if (m.base == kNoRegister && m.index == kNoRegister) {
    const auto address = static_cast<std::uint32_t>(m.displacement);
    assembler_.mov(dest.r32(), Imm(m.address16 ? address & 0xFFFF : address));
    AddSegmentBase(insn, dest);
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
  AddSegmentBase(insn, dest);
}

// The base is read at run time, so a translation stays valid when the guest
// reloads FS or GS (per-CPU data, thread-local storage); lea keeps the guest
// flags intact, and its 32-bit result wraps the linear address at 4 GiB.
void UnitBuilder::AddSegmentBase(const DecodedInstruction& insn, const x86::Gp& dest) {
  if (insn.based_segment == kNoRegister) return;
  assembler_.mov(kSegmentBase, StateField(offsetof(CpuState, segment) +
                                              insn.based_segment * sizeof(SegmentState) +
                                              offsetof(SegmentState, base),
                                          4));
  assembler_.lea(dest.r32(), x86::ptr(dest.r64(), kSegmentBase.r64()));
}

x86::Mem UnitBuilder::GuestMemory(const DecodedInstruction& insn, unsigned size) {
  const decoder::MemoryOperand& m = insn.memory;
  x86::Mem mem;
  if (m.address16 || m.base == kNoRegister || insn.based_segment != kNoRegister) {
    EffectiveAddress(insn, kScratch);
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
  PendingExit& pending = NewExit(target_eip, 2);
  assembler_.long_().j(static_cast<x86::CondCode>(condition), pending.slow_path);
}

void UnitBuilder::EmitIndirectExit() {
  auto& a = assembler_;
  if (!chaining_) {
    a.jmp(Imm(reinterpret_cast<std::uint64_t>(trampolines_.exit_indirect)));
    return;
  }
  // Inline lookup in the table at kIndirectTableOffset: lea and jrcxz
  // compare without touching guest EFLAGS.
  Label hit = a.newLabel();
  a.movzx(x86::r10d, kScratch.r16());
  a.lea(x86::r10, x86::ptr(x86::r10, x86::r10));  // 16-byte entries
  a.mov(x86::r9, x86::rcx);
  a.mov(x86::ecx, x86::dword_ptr(kState, x86::r10, 3, kIndirectTableOffset));
  const std::uint32_t salt = (mode() & kModeUserView) ? kUserIndirectSalt : 0;
  a.lea(x86::ecx, x86::ptr(x86::rcx, kScratch, 0, static_cast<std::int32_t>(salt)));
  a.jecxz(x86::rcx, hit);
  a.mov(x86::rcx, x86::r9);
  a.jmp(Imm(reinterpret_cast<std::uint64_t>(trampolines_.exit_indirect)));
  a.bind(hit);
  a.mov(x86::rcx, x86::r9);
  a.jmp(x86::qword_ptr(kState, x86::r10, 3, kIndirectTableOffset + 8));
}

void UnitBuilder::EmitCallout(const DecodedInstruction& insn) {
  CalloutRecord* record = &records_[record_count_++];
  new (record) CalloutRecord{insn};
  if (insn.has_memory || insn.moffs) EffectiveAddress(insn, kScratch);
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

std::size_t UnitBuilder::Finish(std::uint8_t* cold) {
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
