// Far jmp and far call in protected mode (SDM Vol. 2A CALL and JMP; Vol. 3A
// 5.8): straight to a code segment, or through a call gate, by which a call
// may enter an inner ring on the stack the TSS holds for it, copying the
// gate's count of parameters there. A TSS or a task gate switches tasks
// (task_switch.cc).
#include "runtime/descriptor.h"
#include "runtime/vcpu.h"

#include <algorithm>
#include <cstring>

namespace bt::runtime {

using decoder::DecodedInstruction;
using translator::kCs;
using translator::kEsp;
using translator::kSs;

bool Vcpu::FarTransfer(const DecodedInstruction& insn, std::uint16_t selector, std::uint32_t offset,
                       bool call) {
  if ((selector & ~3u) != 0) {
    Descriptor descriptor;
    GuestEvent nested;
    if (Delivery read = ReadDescriptor(selector, InstructionCause(insn), descriptor, nested);
        read != Delivery::kDone) {
      return FailCheck(read, nested, insn);
    }
    if (descriptor.system()) {
      switch (descriptor.type()) {
        case kCallGate16:
        case kCallGate32: return TransferThroughCallGate(insn, selector, descriptor, call);
        case kTss16Available:
        case kTss16Busy:
        case kTaskGate:
        case kTss32Available:
        case kTss32Busy: return TransferToTask(insn, selector, descriptor, call);
        default: break;  // LoadSegment raises #GP(selector)
      }
    }
  }
  const unsigned size = insn.operand_size;
  const std::uint32_t esp = state_->gpr[kEsp];
  if (call) {
    const std::uint32_t frame[2] = {insn.next_eip(), state_->segment[kCs].selector};
    std::uint8_t bytes[8];
    std::memcpy(bytes, &frame[0], size);
    std::memcpy(bytes + size, &frame[1], size);
    const auto at = StackAddress(esp - 2 * size, 2 * size, true);
    if (!at) return RaiseFault(kStackFault, insn, 0);
    if (!WriteOperand(*at, bytes, 2 * size)) return StackOutsideRam(insn);
  }
  const translator::SegmentState old_cs = state_->segment[kCs];
  if (!LoadSegment(kCs, selector, insn)) return true;
  const std::uint32_t target = size == 2 ? offset & 0xFFFF : offset;
  if (target > state_->segment[kCs].limit) {
    state_->segment[kCs] = old_cs;
    return RaiseFault(kGeneralProtection, insn, 0);
  }
  if (call) state_->gpr[kEsp] = esp - 2 * size;
  return ExitWith(std::nullopt, target);
}

bool Vcpu::TransferThroughCallGate(const DecodedInstruction& insn, std::uint16_t selector,
                                   const Descriptor& gate, bool call) {
  const unsigned cpl = state_->Cpl();
  const std::uint32_t gate_error = selector & 0xFFFCu;
  if (gate.dpl() < cpl || (selector & 3) > gate.dpl()) {
    return RaiseFault(kGeneralProtection, insn, gate_error);
  }
  if (!gate.present()) return RaiseFault(kSegmentNotPresent, insn, gate_error);
  const std::uint16_t code_selector = gate.gate_selector();
  const GuestEvent cause = InstructionCause(insn);
  Descriptor code;
  GuestEvent nested;
  if (Delivery read = ReadCodeSegment(code_selector, cause, code, nested);
      read != Delivery::kDone) {
    return FailCheck(read, nested, insn);
  }
  // Only a call enters an inner ring; a jmp stays at the CPL.
  const unsigned new_cpl =
      call && code.code() && !code.conforming() && code.dpl() < cpl ? code.dpl() : cpl;
  if (Delivery checked = CheckCodeSegment(code, code_selector, new_cpl, cause, nested);
      checked != Delivery::kDone) {
    return FailCheck(checked, nested, insn);
  }
  const bool gate32 = gate.type() == kCallGate32;
  const std::uint32_t target =
      (gate.bytes[0] | gate.bytes[1] << 8) | (gate32 ? gate.high() & 0xFFFF0000u : 0);
  const translator::SegmentState new_cs =
      code.Cached(static_cast<std::uint16_t>((code_selector & ~3u) | new_cpl));
  if (!call) {
    if (target > new_cs.limit) return RaiseFault(kGeneralProtection, insn, 0);
    state_->segment[kCs] = new_cs;
    return ExitWith(std::nullopt, target);
  }

  // The new frame from the bottom up: the return EIP and CS; on a stack
  // switch also the parameters, in the order they had on the caller's
  // stack, and the caller's ESP and SS. The gate's size sets the slots'.
  const unsigned size = gate32 ? 4 : 2;
  const std::uint32_t old_esp = state_->gpr[kEsp];
  std::uint32_t esp = old_esp;
  std::uint16_t ss = 0;
  Descriptor stack;
  unsigned parameters = 0;
  if (new_cpl != cpl) {
    if (Delivery read = ReadTssStack(new_cpl, cause, ss, esp, nested); read != Delivery::kDone) {
      return FailCheck(read, nested, insn);
    }
    if (Delivery checked = CheckStackSegment(ss, new_cpl, kInvalidTss, cause, stack, nested);
        checked != Delivery::kDone) {
      return FailCheck(checked, nested, insn);
    }
    parameters = gate.bytes[4] & 0x1F;
  }
  std::uint8_t bytes[(4 + 0x1F) * 4];
  const std::uint32_t return_eip = insn.next_eip(), old_cs = state_->segment[kCs].selector;
  std::memcpy(bytes, &return_eip, size);
  std::memcpy(bytes + size, &old_cs, size);
  std::uint32_t count = 2;
  if (new_cpl != cpl) {
    const auto parameters_at = StackAddress(old_esp, std::max(parameters * size, 1u), false);
    if (!parameters_at) return RaiseFault(kStackFault, insn, 0);
    if (!ReadGuest(*parameters_at, bytes + 2 * size, parameters * size)) {
      return StackOutsideRam(insn);
    }
    const std::uint32_t old_ss = state_->segment[kSs].selector;
    std::memcpy(bytes + (2 + parameters) * size, &old_esp, size);
    std::memcpy(bytes + (3 + parameters) * size, &old_ss, size);
    count += parameters + 2;
  }
  esp -= count * size;
  const translator::SegmentState stack_segment =
      new_cpl != cpl ? stack.Cached(ss) : state_->segment[kSs];
  const auto at = SegmentAddress(stack_segment, esp, count * size, true);
  if (!at) return RaiseFault(kStackFault, insn, new_cpl != cpl ? ss & 0xFFFCu : 0);
  if (target > new_cs.limit) return RaiseFault(kGeneralProtection, insn, 0);
  // The inner ring's stack is a supervisor access; the caller's own, at
  // its CPL, an access of that CPL.
  if (!(new_cpl != cpl ? WriteGuest(*at, bytes, count * size)
                       : WriteOperand(*at, bytes, count * size))) {
    return StackOutsideRam(insn);
  }
  if (new_cpl != cpl) state_->segment[kSs] = stack.Cached(ss);
  state_->segment[kCs] = new_cs;
  state_->gpr[kEsp] = esp;
  if (new_cpl != cpl) OnPrivilegeChanged();
  return ExitWith(std::nullopt, target);
}

bool Vcpu::StackOutsideRam(const DecodedInstruction& insn) {
  if (access_fault_) return RaiseAccessFault(insn);
  return ExitWith(MakeInstructionStop(StopReason::kHostError, insn, "the stack lies outside RAM:"),
                  insn.eip);
}

}  // namespace bt::runtime
