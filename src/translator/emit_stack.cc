// Stack instructions: guest ESP lives in R12 and guest stack memory in the
// window, so push/pop and friends become moves through gs: and a flag-free
// lea on R12 (with SS's base and a limit check in units where SS is not
// flat, UnitBuilder::Stack). Stores happen before ESP moves so a fault
// leaves ESP intact.
#include "translator/unit_builder.h"

namespace bt::translator {
namespace {

using decoder::Kind;
using decoder::kNoRegister;

x86::Gp Sized(const x86::Gp& reg32, unsigned size) { return size == 2 ? reg32.r16() : reg32; }

void AdjustEsp(UnitBuilder& b, std::int32_t delta) {
  b.a().lea(kGuestEsp, x86::ptr(x86::r12, delta));
}

std::uint8_t RegisterOperand(const DecodedInstruction& insn) {
  return insn.opcode_gpr != kNoRegister ? insn.opcode_gpr : insn.rm_gpr;
}

void EmitPush(UnitBuilder& b, const DecodedInstruction& insn) {
  auto& a = b.a();
  const unsigned size = insn.operand_size;
  const auto offset = -static_cast<std::int32_t>(size);
  if (insn.has_memory) a.mov(Sized(x86::r11d, size), b.GuestMemory(insn, size));
  const UnitBuilder::StackFrame stack = b.Stack(kGuestEsp, offset, size, /*write=*/true);
  if (insn.has_memory) {
    a.mov(stack.At(offset, size), Sized(x86::r11d, size));
  } else if (std::uint8_t reg = RegisterOperand(insn); reg != kNoRegister) {
    a.mov(stack.At(offset, size), Sized(kGuestGpr32[reg], size));
  } else {
    a.mov(stack.At(offset, size), asmjit::Imm(insn.immediate));
  }
  AdjustEsp(b, offset);
}

void EmitPop(UnitBuilder& b, const DecodedInstruction& insn) {
  auto& a = b.a();
  const unsigned size = insn.operand_size;
  a.mov(Sized(x86::r11d, size), b.Stack(kGuestEsp, 0, size, /*write=*/false).At(0, size));
  if (!insn.has_memory) {
    AdjustEsp(b, static_cast<std::int32_t>(size));
    a.mov(Sized(kGuestGpr32[RegisterOperand(insn)], size), Sized(x86::r11d, size));
    return;
  }
  if (b.OperandUse(insn) == UnitBuilder::SegmentUse::kChecked) {
    // The destination address uses the incremented ESP (SDM POP); it is
    // stored to first, so that a failed limit check, whose fault map entry
    // has no room for an ESP fix-up, finds ESP as it was.
    DecodedInstruction after_pop = insn;
    if (insn.memory.base == kEsp) after_pop.memory.displacement += static_cast<std::int32_t>(size);
    a.mov(b.GuestMemory(after_pop, size), Sized(x86::r11d, size));
    AdjustEsp(b, static_cast<std::int32_t>(size));
    return;
  }
  AdjustEsp(b, static_cast<std::int32_t>(size));
  // The destination address uses the incremented ESP (SDM POP).
  b.SetFixup(size == 2 ? Fixup::kUndoPop2 : Fixup::kUndoPop4);
  a.mov(b.GuestMemory(insn, size), Sized(x86::r11d, size));
}

void EmitPushSegment(UnitBuilder& b, const DecodedInstruction& insn) {
  const auto size = static_cast<std::int32_t>(insn.operand_size);
  b.a().movzx(x86::r11d, StateField(offsetof(CpuState, segment) +
                                        insn.special_register * sizeof(SegmentState) +
                                        offsetof(SegmentState, selector),
                                    2));
  const UnitBuilder::StackFrame stack = b.Stack(kGuestEsp, -size, size, /*write=*/true);
  b.a().mov(stack.At(-size, size), Sized(x86::r11d, size));
  AdjustEsp(b, -size);
}

void EmitPushf(UnitBuilder& b, const DecodedInstruction& insn) {
  auto& a = b.a();
  const auto size = static_cast<std::int32_t>(insn.operand_size);
  // The host flags are parked on the host stack while we merge in the
  // virtual bits, and popfq puts the guest's arithmetic flags back.
  a.pushfq();
  a.mov(x86::r11d, x86::dword_ptr(x86::rsp));
  a.and_(x86::r11d, kHostFlagsMask);
  a.or_(x86::r11d, StateField(offsetof(CpuState, eflags_virtual), 4));
  a.popfq();
  const UnitBuilder::StackFrame stack = b.Stack(kGuestEsp, -size, size, /*write=*/true);
  a.mov(stack.At(-size, size), Sized(x86::r11d, size));
  AdjustEsp(b, -size);
}

void EmitPusha(UnitBuilder& b, const DecodedInstruction& insn) {
  const auto size = static_cast<std::int32_t>(insn.operand_size);
  const UnitBuilder::StackFrame stack = b.Stack(kGuestEsp, -8 * size, 8 * size, /*write=*/true);
  for (int reg = 0; reg < 8; ++reg) {
    b.a().mov(stack.At(-size * (reg + 1), size), Sized(kGuestGpr32[reg], size));
  }
  AdjustEsp(b, -8 * size);
}

void EmitPopa(UnitBuilder& b, const DecodedInstruction& insn) {
  auto& a = b.a();
  const auto size = static_cast<std::int32_t>(insn.operand_size);
  const UnitBuilder::StackFrame stack = b.Stack(kGuestEsp, 0, 8 * size, /*write=*/false);
  // Touch both ends first: after that no load can fault, so guest
  // registers only change once the whole pop is certain to complete.
  a.mov(Sized(x86::r11d, size), stack.At(7 * size, size));
  a.mov(Sized(kGuestGpr32[kEdi], size), stack.At(0, size));
  for (int reg = kEsi; reg >= kEcx; --reg) {
    if (reg == kEsp) continue;
    a.mov(Sized(kGuestGpr32[reg], size), stack.At((7 - reg) * size, size));
  }
  a.mov(Sized(x86::eax, size), Sized(x86::r11d, size));
  AdjustEsp(b, 8 * size);
}

void EmitEnter(UnitBuilder& b, const DecodedInstruction& insn) {
  auto& a = b.a();
  const auto frame = static_cast<std::int32_t>(insn.immediate & 0xFFFF);
  // ENTER checks its new ESP against the stack limit too (SDM Vol. 2A
  // ENTER): the range from it to the pushed EBP covers both.
  const UnitBuilder::StackFrame stack =
      b.Stack(kGuestEsp, -4 - frame, static_cast<unsigned>(4 + frame), /*write=*/true);
  a.mov(stack.At(-4, 4), x86::ebp);
  AdjustEsp(b, -4);
  a.mov(x86::ebp, kGuestEsp);
  AdjustEsp(b, -frame);
}

void EmitLeave(UnitBuilder& b, const DecodedInstruction& insn) {
  auto& a = b.a();
  const unsigned size = insn.operand_size;
  a.mov(Sized(x86::r11d, size), b.Stack(x86::ebp, 0, size, /*write=*/false).At(0, size));
  a.lea(kGuestEsp, x86::ptr(x86::rbp, static_cast<std::int32_t>(size)));
  a.mov(Sized(x86::ebp, size), Sized(x86::r11d, size));
}

}  // namespace

bool JoinsStackRun(const UnitBuilder& b, const DecodedInstruction& insn) {
  if ((insn.kind != Kind::kPush && insn.kind != Kind::kPop) || insn.operand_size != 4 ||
      insn.has_memory || b.UseOf(kSs) != UnitBuilder::SegmentUse::kFlat) {
    return false;
  }
  const std::uint8_t reg = RegisterOperand(insn);
  return reg != kEsp && (reg != kNoRegister || insn.kind == Kind::kPush);
}

// Native pushes and pops move ESP in the CPU's stack engine, at no cost;
// here each one's lea on R12 made a chain of dependent adds through every
// prologue and epilogue, which the stack accesses after it waited for. A
// run moves R12 once at its end: each instruction accesses the stack at
// its offset from where the run found ESP, and a fault part-way finds ESP
// moved by the instructions before it (Fixup::kEspPending).
void EmitStackRun(UnitBuilder& b, const DecodedInstruction* run, unsigned count) {
  auto& a = b.a();
  std::int32_t moved = 0;
  for (unsigned i = 0; i < count; ++i) {
    const DecodedInstruction& insn = run[i];
    b.BeginInstruction(insn, moved ? Fixup::kEspPending : Fixup::kNone,
                       static_cast<std::uint8_t>(moved / 4));
    const UnitBuilder::StackFrame stack{kGuestEsp};  // SS is flat
    const std::uint8_t reg = RegisterOperand(insn);
    if (insn.kind == Kind::kPop) {
      a.mov(kGuestGpr32[reg], stack.At(moved, 4));
      moved += 4;
    } else if (reg != kNoRegister) {
      moved -= 4;
      a.mov(stack.At(moved, 4), kGuestGpr32[reg]);
    } else {
      moved -= 4;
      a.mov(stack.At(moved, 4), asmjit::Imm(insn.immediate));
    }
  }
  if (moved) AdjustEsp(b, moved);
}

void EmitStack(UnitBuilder& b, const DecodedInstruction& insn) {
  switch (insn.kind) {
    case Kind::kPush: EmitPush(b, insn); break;
    case Kind::kPop: EmitPop(b, insn); break;
    case Kind::kPushSegment: EmitPushSegment(b, insn); break;
    case Kind::kPushf: EmitPushf(b, insn); break;
    case Kind::kPusha: EmitPusha(b, insn); break;
    case Kind::kPopa: EmitPopa(b, insn); break;
    case Kind::kEnter:
      if (insn.immediate2 == 0 && insn.operand_size == 4) {
        EmitEnter(b, insn);
      } else {
        b.EmitCallout(insn);  // nested frames: done by the runtime
      }
      break;
    case Kind::kLeave: EmitLeave(b, insn); break;
    default: break;
  }
}

}  // namespace bt::translator
