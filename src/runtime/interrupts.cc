// Protected-mode interrupt and exception delivery through the IDT, with the
// stack switch through the TSS into an inner ring, the double- and
// triple-fault rules, and iret (SDM Vol. 3, chapter 6; Vol. 2, IRET). Task
// gates and iret to a nested task switch tasks (task_switch.cc). 16-bit
// TSSs, real mode and virtual-8086 mode stop the run as unsupported rather
// than run wrongly.
#include "runtime/descriptor.h"
#include "runtime/vcpu.h"

#include <cstdio>
#include <cstring>

namespace bt::runtime {
namespace {

using Source = GuestEvent::Source;
using translator::kCr0Pe;
using translator::kCs;
using translator::kEflagsIf;
using translator::kEflagsNt;
using translator::kEflagsRf;
using translator::kEflagsTf;
using translator::kEflagsVm;
using translator::kEsp;
using translator::kSs;

// What iret may change at CPL 0: CF PF AF ZF SF TF IF DF OF IOPL NT RF AC ID.
constexpr std::uint32_t kIretChangeable = 0x00257FD5;
constexpr unsigned kMaxNestedFaults = 8;

bool Contributory(std::uint8_t vector) { return vector == 0 || (vector >= 10 && vector <= 13); }

}  // namespace

GuestEvent FaultDuring(const GuestEvent& cause, std::uint8_t vector, std::uint32_t error_code) {
  const bool external = cause.source == Source::kException || cause.source == Source::kExternal;
  return {vector,          Source::kException, true, error_code | (external ? 1u : 0u),
          cause.fault_eip, cause.fault_eip};
}

GuestEvent InstructionCause(const decoder::DecodedInstruction& insn) {
  return {kGeneralProtection, Source::kSoftwareInterrupt, true, 0, insn.eip, insn.eip};
}

bool Vcpu::Raise(const GuestEvent& event) {
  pending_event_ = event;
  state_->eip = event.fault_eip;
  state_->exit_reason = translator::ExitReason::kCallout;
  return true;
}

bool Vcpu::RaiseFault(std::uint8_t vector, const decoder::DecodedInstruction& insn,
                      std::uint32_t error_code) {
  return Raise(
      {vector, Source::kException, ExceptionHasErrorCode(vector), error_code, insn.eip, insn.eip});
}

std::optional<StopInfo> Vcpu::Deliver(GuestEvent event) {
  // Every interrupt comes here: the chain of events is only described when
  // it ends in a triple fault.
  GuestEvent chain[kMaxNestedFaults + 1];
  for (unsigned depth = 0;; ++depth) {
    chain[depth] = event;
    const bool exception =
        event.source == Source::kException || event.source == Source::kSoftwareException;
    if (exception && event.vector < 32 && (intercepted_exceptions_ >> event.vector & 1)) {
      char text[96];
      std::snprintf(text, sizeof(text), "guest exception vector %u at eip=0x%08x", event.vector,
                    event.return_eip);
      StopInfo stop = MakeStop(StopReason::kGuestException, text);
      stop.vector = event.vector;
      stop.eip = event.return_eip;
      stop.error_code = event.error_code;
      if (event.vector == kPageFault) stop.fault_address = state_->cr2;
      return stop;
    }
    GuestEvent nested;
    switch (DeliverOnce(event, nested)) {
      case Delivery::kDone: halted_ = false; return std::nullopt;
      case Delivery::kStop: return std::move(pending_stop_);
      case Delivery::kNestedFault: break;
    }
    if (event.vector == kDoubleFault || depth == kMaxNestedFaults) {
      std::string text = "triple fault: ";
      for (unsigned step = 0; step <= depth; ++step) {
        char described[64];
        std::snprintf(described, sizeof(described), "%svector %u at eip=0x%08x",
                      step ? ", then " : "", chain[step].vector, chain[step].fault_eip);
        text += described;
      }
      StopInfo stop = MakeStop(StopReason::kTripleFault, text);
      stop.vector = nested.vector;
      stop.eip = nested.fault_eip;
      return stop;
    }
    // SDM Vol. 3, table 6-5: a contributory fault or a page fault while
    // delivering one of those is a double fault; anything else is handled
    // as if the first event had not happened.
    const bool double_fault = (Contributory(event.vector) && Contributory(nested.vector)) ||
                              (event.vector == kPageFault &&
                               (nested.vector == kPageFault || Contributory(nested.vector)));
    if (double_fault) {
      nested = {kDoubleFault, Source::kException, true, 0, nested.fault_eip, nested.fault_eip};
    }
    event = nested;
  }
}

Vcpu::Delivery Vcpu::AccessFailedDuring(const GuestEvent& cause, const char* outside_ram,
                                        GuestEvent& nested) {
  if (access_fault_) {
    nested = PageFaultEvent(*access_fault_, cause.fault_eip);
    return Delivery::kNestedFault;
  }
  pending_stop_ = MakeStop(StopReason::kHostError, outside_ram);
  return Delivery::kStop;
}

Vcpu::Delivery Vcpu::DeliverOnce(const GuestEvent& event, GuestEvent& nested) {
  if (!(state_->cr0 & kCr0Pe)) {
    pending_stop_ = MakeStop(StopReason::kUnsupportedInstruction,
                             "interrupt delivery in real mode is not supported yet");
    return Delivery::kStop;
  }
  const std::uint32_t gate_error = event.vector * 8u + 2u;
  if (event.vector * 8u + 7u > state_->idt_limit) {
    nested = FaultDuring(event, kGeneralProtection, gate_error);
    return Delivery::kNestedFault;
  }
  Descriptor gate;
  if (!ReadGuest(state_->idt_base + event.vector * 8u, gate.bytes, sizeof(gate.bytes))) {
    return AccessFailedDuring(event, "the IDT lies outside RAM", nested);
  }
  // The type with the S bit, which is clear in gates.
  const std::uint8_t type = gate.access() & 0x1F;
  const unsigned cpl = state_->Cpl();
  const bool software =
      event.source == Source::kSoftwareException || event.source == Source::kSoftwareInterrupt;
  const bool interrupt_gate = type == kInterruptGate32 || type == kInterruptGate16;
  if ((!interrupt_gate && type != kTrapGate32 && type != kTrapGate16 && type != kTaskGate) ||
      (software && gate.dpl() < cpl)) {
    nested = FaultDuring(event, kGeneralProtection, gate_error);
    return Delivery::kNestedFault;
  }
  if (!gate.present()) {
    nested = FaultDuring(event, kSegmentNotPresent, gate_error);
    return Delivery::kNestedFault;
  }
  if (type == kTaskGate) return DeliverThroughTaskGate(event, gate, nested);
  const bool gate32 = type & 0x08;
  const std::uint16_t selector = gate.gate_selector();
  std::uint32_t offset = gate.bytes[0] | gate.bytes[1] << 8;
  if (gate32) offset |= gate.high() & 0xFFFF0000u;

  Descriptor code;
  if (Delivery read = ReadCodeSegment(selector, event, code, nested); read != Delivery::kDone) {
    return read;
  }
  // A non-conforming segment of an inner ring runs the handler there, on
  // the stack the TSS holds for it (SDM Vol. 3A 6.12.1).
  const unsigned new_cpl = !code.conforming() && code.dpl() < cpl ? code.dpl() : cpl;
  if (Delivery checked = CheckCodeSegment(code, selector, new_cpl, event, nested);
      checked != Delivery::kDone) {
    return checked;
  }
  std::uint32_t esp = state_->gpr[kEsp];
  std::uint16_t ss = 0;
  Descriptor stack;
  if (new_cpl != cpl) {
    if (Delivery read = ReadTssStack(new_cpl, event, ss, esp, nested); read != Delivery::kDone) {
      return read;
    }
    if (Delivery checked = CheckStackSegment(ss, new_cpl, kInvalidTss, event, stack, nested);
        checked != Delivery::kDone) {
      return checked;
    }
  }

  const std::uint32_t eflags = state_->Eflags();
  // A fault's frame has RF set, so that the handler's iret does not hit an
  // instruction breakpoint on the restarted instruction again (SDM Vol. 3,
  // 17.3.1.1; QEMU pushes it clear).
  const bool fault = event.source == Source::kException && event.return_eip == event.fault_eip;
  // The frame from its top down: the old SS:ESP on a stack switch, EFLAGS,
  // CS, EIP and the error code.
  std::uint32_t frame[6];
  unsigned count = 0;
  if (new_cpl != cpl) {
    frame[count++] = state_->segment[kSs].selector;
    frame[count++] = state_->gpr[kEsp];
  }
  frame[count++] = fault ? eflags | kEflagsRf : eflags;
  frame[count++] = state_->segment[kCs].selector;
  frame[count++] = event.return_eip;
  if (event.has_error_code) frame[count++] = event.error_code;
  const unsigned size = gate32 ? 4 : 2;
  std::uint8_t bytes[sizeof(frame)];
  for (unsigned i = 0; i < count; ++i) {
    std::memcpy(bytes + (count - 1 - i) * size, &frame[i], size);
  }
  esp -= count * size;
  // Within the new stack's bounds, or the current one's (#SS, SDM Vol. 2A
  // INT n).
  const translator::SegmentState stack_segment =
      new_cpl != cpl ? stack.Cached(ss) : state_->segment[kSs];
  const auto at = SegmentAddress(stack_segment, esp, count * size, true);
  if (!at) {
    nested = FaultDuring(event, kStackFault, new_cpl != cpl ? ss & 0xFFFCu : 0);
    return Delivery::kNestedFault;
  }
  const std::uint32_t handler = gate32 ? offset : offset & 0xFFFF;
  if (handler > code.limit()) {
    nested = FaultDuring(event, kGeneralProtection, 0);
    return Delivery::kNestedFault;
  }
  if (!WriteGuest(*at, bytes, count * size)) {
    return AccessFailedDuring(event, "the interrupt stack lies outside RAM", nested);
  }
  if (new_cpl != cpl) state_->segment[kSs] = stack.Cached(ss);
  state_->segment[kCs] = code.Cached(static_cast<std::uint16_t>((selector & ~3u) | new_cpl));
  state_->gpr[kEsp] = esp;
  state_->eip = handler;
  std::uint32_t flags = eflags & ~(kEflagsTf | kEflagsNt | kEflagsRf | kEflagsVm);
  if (interrupt_gate) flags &= ~kEflagsIf;
  state_->SetEflags(flags);
  if (new_cpl != cpl) OnPrivilegeChanged();
  return Delivery::kDone;
}

bool Vcpu::Iret(const decoder::DecodedInstruction& insn) {
  const std::uint32_t eflags = state_->Eflags();
  if (!(state_->cr0 & kCr0Pe)) {
    return ExitWith(MakeInstructionStop(StopReason::kUnsupportedInstruction, insn,
                                        "iret in real mode is not supported yet:"),
                    insn.eip);
  }
  if (eflags & kEflagsNt) return ReturnToPreviousTask(insn);
  const unsigned size = insn.operand_size == 2 ? 2 : 4;
  const std::uint32_t esp = state_->gpr[kEsp];
  std::uint32_t eip = 0, cs = 0, popped_flags = 0;
  const auto frame = StackAddress(esp, 3 * size, false);
  if (!frame) return RaiseFault(kStackFault, insn, 0);
  if (!ReadOperand(*frame, &eip, size) || !ReadOperand(*frame + size, &cs, size) ||
      !ReadOperand(*frame + 2 * size, &popped_flags, size)) {
    return StackOutsideRam(insn);
  }
  if (state_->Cpl() == 0 && size == 4 && (popped_flags & kEflagsVm)) {
    return ExitWith(MakeInstructionStop(StopReason::kUnsupportedInstruction, insn,
                                        "iret to virtual-8086 mode is not supported yet:"),
                    insn.eip);
  }
  ReturnTarget target;
  GuestEvent nested;
  if (size == 2) eip &= 0xFFFF;
  if (Delivery checked = CheckReturn(static_cast<std::uint16_t>(cs), eip, esp + 3 * size, size,
                                     InstructionCause(insn), target, nested);
      checked != Delivery::kDone) {
    return FailCheck(checked, nested, insn);
  }
  // IOPL and IF as the CPL before the return allows.
  std::uint32_t changeable = ChangeableFlags(kIretChangeable);
  if (size == 2) changeable &= 0xFFFF;
  // RF would only hold off an instruction breakpoint for one instruction,
  // after which the CPU clears it; libbt has no instruction breakpoints yet.
  state_->SetEflags(((eflags & ~changeable) | (popped_flags & changeable)) & ~kEflagsRf);
  state_->gpr[kEsp] = target.outer ? target.esp : esp + 3 * size;
  LoadReturnSegments(target);
  MapAfterPageFault();
  return ExitWith(std::nullopt, eip);
}

}  // namespace bt::runtime
