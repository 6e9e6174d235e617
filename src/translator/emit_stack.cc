// Stack instructions: guest ESP lives in R12 and guest stack memory in the
// window, so push/pop and friends become moves through gs: and a flag-free
// lea on R12. Stores happen before ESP moves so a fault leaves ESP intact.
#include "translator/unit_builder.h"

namespace bt::translator {
namespace {

using decoder::Kind;
using decoder::kNoRegister;

x86::Gp Sized(const x86::Gp& reg32, unsigned size) { return size == 2 ? reg32.r16() : reg32; }

x86::Mem Stack(std::int32_t offset, unsigned size) {
  x86::Mem mem = x86::ptr(kGuestEsp, offset, size);
  mem.setSegment(x86::gs);
  return mem;
}

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
  if (insn.has_memory) {
    a.mov(Sized(x86::r11d, size), b.GuestMemory(insn, size));
    a.mov(Stack(offset, size), Sized(x86::r11d, size));
  } else if (std::uint8_t reg = RegisterOperand(insn); reg != kNoRegister) {
    a.mov(Stack(offset, size), Sized(kGuestGpr32[reg], size));
  } else {
    a.mov(Stack(offset, size), asmjit::Imm(insn.immediate));
  }
  AdjustEsp(b, offset);
}

void EmitPop(UnitBuilder& b, const DecodedInstruction& insn) {
  auto& a = b.a();
  const unsigned size = insn.operand_size;
  a.mov(Sized(x86::r11d, size), Stack(0, size));
  AdjustEsp(b, static_cast<std::int32_t>(size));
  if (insn.has_memory) {
    // The destination address uses the incremented ESP (SDM POP).
    b.SetFixup(size == 2 ? Fixup::kUndoPop2 : Fixup::kUndoPop4);
    a.mov(b.GuestMemory(insn, size), Sized(x86::r11d, size));
  } else {
    a.mov(Sized(kGuestGpr32[RegisterOperand(insn)], size), Sized(x86::r11d, size));
  }
}

void EmitPushSegment(UnitBuilder& b, const DecodedInstruction& insn) {
  const unsigned size = insn.operand_size;
  b.a().movzx(x86::r11d, StateField(offsetof(CpuState, segment) +
                                        insn.special_register * sizeof(SegmentState) +
                                        offsetof(SegmentState, selector),
                                    2));
  b.a().mov(Stack(-static_cast<std::int32_t>(size), size), Sized(x86::r11d, size));
  AdjustEsp(b, -static_cast<std::int32_t>(size));
}

void EmitPushf(UnitBuilder& b, const DecodedInstruction& insn) {
  auto& a = b.a();
  const unsigned size = insn.operand_size;
  // The host flags are parked on the host stack while we merge in the
  // virtual bits, and popfq puts the guest's arithmetic flags back.
  a.pushfq();
  a.mov(x86::r11d, x86::dword_ptr(x86::rsp));
  a.and_(x86::r11d, kHostFlagsMask);
  a.or_(x86::r11d, StateField(offsetof(CpuState, eflags_virtual), 4));
  a.popfq();
  a.mov(Stack(-static_cast<std::int32_t>(size), size), Sized(x86::r11d, size));
  AdjustEsp(b, -static_cast<std::int32_t>(size));
}

void EmitPusha(UnitBuilder& b, const DecodedInstruction& insn) {
  const unsigned size = insn.operand_size;
  for (unsigned reg = 0; reg < 8; ++reg) {
    const auto offset = -static_cast<std::int32_t>(size * (reg + 1));
    b.a().mov(Stack(offset, size), Sized(kGuestGpr32[reg], size));
  }
  AdjustEsp(b, -static_cast<std::int32_t>(8 * size));
}

void EmitPopa(UnitBuilder& b, const DecodedInstruction& insn) {
  auto& a = b.a();
  const auto size = static_cast<std::int32_t>(insn.operand_size);
  // Touch both ends first: after that no load can fault, so guest
  // registers only change once the whole pop is certain to complete.
  a.mov(Sized(x86::r11d, size), Stack(7 * size, size));
  a.mov(Sized(kGuestGpr32[kEdi], size), Stack(0, size));
  for (int reg = kEsi; reg >= kEcx; --reg) {
    if (reg == kEsp) continue;
    a.mov(Sized(kGuestGpr32[reg], size), Stack((7 - reg) * size, size));
  }
  a.mov(Sized(x86::eax, size), Sized(x86::r11d, size));
  AdjustEsp(b, 8 * size);
}

void EmitEnter(UnitBuilder& b, const DecodedInstruction& insn) {
  auto& a = b.a();
  a.mov(Stack(-4, 4), x86::ebp);
  AdjustEsp(b, -4);
  a.mov(x86::ebp, kGuestEsp);
  AdjustEsp(b, -static_cast<std::int32_t>(insn.immediate & 0xFFFF));
}

void EmitLeave(UnitBuilder& b, const DecodedInstruction& insn) {
  auto& a = b.a();
  const unsigned size = insn.operand_size;
  x86::Mem top = x86::ptr(x86::ebp, 0, size);
  top.setSegment(x86::gs);
  a.mov(Sized(x86::r11d, size), top);
  a.lea(kGuestEsp, x86::ptr(x86::rbp, static_cast<std::int32_t>(size)));
  a.mov(Sized(x86::ebp, size), Sized(x86::r11d, size));
}

}  // namespace

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
