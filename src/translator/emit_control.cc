// Near control transfers. Direct targets leave through chainable exit stubs;
// computed targets (indirect jmp/call) go through the inline lookup table
// with the target in r14d, and calls and returns through the return stack.
#include "translator/unit_builder.h"

namespace bt::translator {
namespace {

using decoder::Kind;
using decoder::kNoRegister;

// `scratch` may be needed for SS's limit check; r14 may hold the target.
void PushReturnAddress(UnitBuilder& b, const DecodedInstruction& insn, const x86::Gp& scratch) {
  const UnitBuilder::StackFrame stack = b.Stack(kGuestEsp, -4, 4, /*write=*/true, scratch);
  b.a().mov(stack.At(-4, 4), asmjit::Imm(insn.next_eip()));
  b.a().lea(kGuestEsp, x86::ptr(x86::r12, -4));
}

void LoadTarget(UnitBuilder& b, const DecodedInstruction& insn) {
  if (insn.has_memory) {
    b.a().mov(kScratch32, b.GuestMemory(insn, 4));
  } else {
    b.a().mov(kScratch32, kGuestGpr32[insn.rm_gpr]);
  }
}

// A direct branch to `insn`'s target, or its #GP(0) when the target lies
// beyond CS's limit (SDM Vol. 2 JMP, CALL, Jcc, LOOP: at the branch).
void EmitBranchExit(UnitBuilder& b, const DecodedInstruction& insn) {
  if (b.BeyondCodeLimit(insn.branch_target)) {
    b.EmitCodeLimitFault();
  } else {
    b.EmitDirectExit(insn.branch_target);
  }
}

// jecxz and loop*: only rel8 forms exist, so they branch to a nearby exit;
// both outcomes leave through chainable exits.
template <class EmitBranch>
void EmitConditional(UnitBuilder& b, const DecodedInstruction& insn, EmitBranch branch) {
  asmjit::Label taken = b.a().newLabel();
  branch(taken);
  b.EmitDirectExit(insn.next_eip());
  b.a().bind(taken);
  if (b.BeyondCodeLimit(insn.branch_target) && insn.bytes[insn.prefix_count] != 0xE3) {
    // loop has counted down: the fault leaves ECX (or CX) as it was.
    b.a().lea(kScratch32, x86::ptr(x86::rcx, 1));
    if (HasPrefix(insn, 0x67)) {
      b.a().mov(x86::cx, x86::r14w);
    } else {
      b.a().mov(x86::ecx, kScratch32);
    }
  }
  EmitBranchExit(b, insn);
}

// jcxz and loop* counting in CX (0x67 prefix) have no 64-bit-mode encoding.
// jecxz is the only flag-free zero test, so it runs on a copy of ECX cut to
// CX, and ECX is put back on both paths; the CX decrement is a flag-free lea
// merged into the low 16 bits.
void EmitCxCondition(x86::Assembler& a, std::uint8_t opcode, asmjit::Label taken) {
  constexpr std::uint8_t kJcxz = 0xE3, kLoope = 0xE1, kLoopne = 0xE0;
  asmjit::Label zero = a.newLabel(), not_taken = a.newLabel();
  if (opcode != kJcxz) {
    a.lea(kScratch32, x86::ptr(x86::rcx, -1));
    a.mov(x86::cx, x86::r14w);
  }
  if (opcode == kLoope) a.jne(not_taken);
  if (opcode == kLoopne) a.je(not_taken);
  a.mov(kScratch, x86::rcx);
  a.movzx(x86::ecx, x86::cx);
  a.jecxz(x86::ecx, zero);
  a.mov(x86::rcx, kScratch);
  a.jmp(opcode == kJcxz ? not_taken : taken);
  a.bind(zero);
  a.mov(x86::rcx, kScratch);
  if (opcode == kJcxz) a.jmp(taken);
  a.bind(not_taken);
}

}  // namespace

void EmitControl(UnitBuilder& b, const DecodedInstruction& insn) {
  auto& a = b.a();
  switch (insn.kind) {
    case Kind::kJmpRelative: EmitBranchExit(b, insn); break;
    case Kind::kJcc:
      b.EmitConditionalExit(insn.condition, insn.branch_target);
      b.EmitDirectExit(insn.next_eip());
      break;
    case Kind::kJecxz:
    case Kind::kLoop: {
      const std::uint8_t opcode = insn.bytes[insn.prefix_count];
      EmitConditional(b, insn, [&](asmjit::Label taken) {
        if (HasPrefix(insn, 0x67)) {
          EmitCxCondition(a, opcode, taken);
          return;
        }
        if (opcode == 0xE3) a.jecxz(x86::ecx, taken);
        if (opcode == 0xE2) a.loop(x86::ecx, taken);
        if (opcode == 0xE1) a.loope(x86::ecx, taken);
        if (opcode == 0xE0) a.loopne(x86::ecx, taken);
      });
      break;
    }
    case Kind::kCallRelative:
      if (b.BeyondCodeLimit(insn.branch_target)) {
        b.EmitCodeLimitFault();  // before the push
        break;
      }
      PushReturnAddress(b, insn, kScratch);
      b.EmitDirectCall(insn.branch_target, insn.next_eip());
      break;
    case Kind::kJmpIndirect:
      LoadTarget(b, insn);
      b.CheckCodeLimit(kScratch);
      b.EmitIndirectExit();
      break;
    case Kind::kCallIndirect:
      LoadTarget(b, insn);
      b.CheckCodeLimit(kScratch);
      PushReturnAddress(b, insn, x86::r10);
      b.EmitIndirectCall(insn.next_eip());
      break;
    case Kind::kRet: {
      a.mov(kScratch32, b.Stack(kGuestEsp, 0, 4, /*write=*/false).At(0, 4));
      b.CheckCodeLimit(kScratch);
      a.lea(kGuestEsp, x86::ptr(x86::r12, 4 + static_cast<std::int32_t>(insn.immediate)));
      b.EmitReturn();
      break;
    }
    default: break;
  }
}

void EmitPcThunkCall(UnitBuilder& b, const DecodedInstruction& call, std::uint32_t thunk) {
  auto& a = b.a();
  const unsigned reg = thunk >> 11 & 7;  // ModRM.reg of its mov
  // Compared without touching guest EFLAGS, with guest ECX kept in r9: lea
  // gives 1 on a match, which loop counts down to 0 and falls through. A
  // mismatch jumps into the displacement of the nop after it, whose bytes
  // hide a ud2: the guard's hot path takes no branch (taken ones cost
  // branch-target-buffer entries, and there is one guard per PIC call), and
  // its trap needs no room of its own. The trap, or a guard that cannot read
  // the thunk, leaves the unit before the call, which then runs alone and as
  // it is (Vcpu::HandleHostFault, Vcpu::HandleWindowFault).
  constexpr std::uint8_t kNopDisp32[] = {0x0F, 0x1F, 0x80};        // nop dword [rax + disp32]
  constexpr std::uint8_t kHiddenUd2[] = {0x0F, 0x0B, 0x00, 0x00};  // the disp32
  asmjit::Label mismatch = a.newLabel();
  a.mov(x86::r9, x86::rcx);
  b.SetFixup(Fixup::kPcThunkGuard);
  a.mov(x86::ecx, call.branch_target);
  x86::Mem bytes = x86::ptr(x86::rcx, 0, 4);
  bytes.setSegment(x86::gs);
  a.mov(x86::ecx, bytes);
  a.lea(x86::ecx, x86::ptr(x86::rcx, static_cast<std::int32_t>(1u - thunk)));
  a.loop(x86::rcx, mismatch);
  b.Embed(kNopDisp32, sizeof(kNopDisp32));
  a.bind(mismatch);
  b.Embed(kHiddenUd2, sizeof(kHiddenUd2));
  b.SetFixup(Fixup::kNone);
  a.mov(x86::rcx, x86::r9);
  // The push's store, faulting as the call's own would (SS is flat: see
  // Translator::PcThunkOf); ESP is back where the thunk's ret leaves it.
  const UnitBuilder::StackFrame stack = b.Stack(kGuestEsp, -4, 4, /*write=*/true);
  a.mov(stack.At(-4, 4), asmjit::Imm(call.next_eip()));
  a.mov(kGuestGpr32[reg], asmjit::Imm(call.next_eip()));
}

}  // namespace bt::translator
