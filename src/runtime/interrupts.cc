// Protected-mode interrupt and exception delivery through the IDT, the
// double- and triple-fault rules, and iret (SDM Vol. 3, chapter 6; Vol. 2,
// IRET). Same-privilege transfers only so far: a gate into an inner ring
// (which needs the TSS stack switch), task gates, real mode and returns to
// an outer ring stop the run as unsupported rather than run wrongly.
#include "runtime/descriptor.h"
#include "runtime/vcpu.h"

#include <cstdio>

namespace bt::runtime {
namespace {

using Source = GuestEvent::Source;
using translator::kCr0Pe;
using translator::kCs;
using translator::kEflagsIf;
using translator::kEflagsIopl;
using translator::kEflagsNt;
using translator::kEflagsRf;
using translator::kEflagsTf;
using translator::kEflagsVm;
using translator::kEsp;

// What iret may change at CPL 0: CF PF AF ZF SF TF IF DF OF IOPL NT RF AC ID.
constexpr std::uint32_t kIretChangeable = 0x00257FD5;
constexpr unsigned kMaxNestedFaults = 8;

// Gate types (SDM Vol. 3, 6.11).
constexpr std::uint8_t kTaskGate = 0x05, kInterruptGate16 = 0x06, kTrapGate16 = 0x07,
                       kInterruptGate32 = 0x0E, kTrapGate32 = 0x0F;

bool Contributory(std::uint8_t vector) { return vector == 0 || (vector >= 10 && vector <= 13); }

// A fault raised while delivering or returning from `cause`.
GuestEvent FaultDuring(const GuestEvent& cause, std::uint8_t vector, std::uint32_t error_code) {
  const bool external = cause.source == Source::kException || cause.source == Source::kExternal;
  return {vector,          Source::kException, true, error_code | (external ? 1u : 0u),
          cause.fault_eip, cause.fault_eip};
}

}  // namespace

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
  std::string chain;
  for (unsigned depth = 0;; ++depth) {
    char step[96];
    std::snprintf(step, sizeof(step), "%svector %u at eip=0x%08x", chain.empty() ? "" : ", then ",
                  event.vector, event.fault_eip);
    chain += step;
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
      return stop;
    }
    GuestEvent nested;
    switch (DeliverOnce(event, nested)) {
      case Delivery::kDone: halted_ = false; return std::nullopt;
      case Delivery::kStop: return std::move(pending_stop_);
      case Delivery::kNestedFault: break;
    }
    if (event.vector == kDoubleFault || depth == kMaxNestedFaults) {
      StopInfo stop = MakeStop(StopReason::kTripleFault, "triple fault: " + chain);
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

Vcpu::Delivery Vcpu::ReadDescriptor(std::uint16_t selector, const GuestEvent& cause,
                                    Descriptor& descriptor, GuestEvent& nested) {
  if (selector & 4) {
    pending_stop_ = MakeStop(StopReason::kUnsupportedInstruction,
                             "a selector in the LDT; the LDT is not supported yet");
    return Delivery::kStop;
  }
  const std::uint32_t offset = selector & ~7u;
  if (offset + 7 > state_->gdt_limit) {
    nested = FaultDuring(cause, kGeneralProtection, selector & 0xFFFCu);
    return Delivery::kNestedFault;
  }
  if (!ReadGuest(state_->gdt_base + offset, descriptor.bytes, 8)) {
    return AccessFailedDuring(cause, "the GDT lies outside RAM", nested);
  }
  return Delivery::kDone;
}

Vcpu::Delivery Vcpu::LoadCodeSegment(std::uint16_t selector, unsigned cpl, const GuestEvent& cause,
                                     GuestEvent& nested) {
  if ((selector & ~3u) == 0) {
    nested = FaultDuring(cause, kGeneralProtection, 0);
    return Delivery::kNestedFault;
  }
  Descriptor descriptor;
  if (Delivery read = ReadDescriptor(selector, cause, descriptor, nested);
      read != Delivery::kDone) {
    return read;
  }
  const std::uint32_t error_code = selector & 0xFFFCu;
  if (!descriptor.code() ||
      (descriptor.conforming() ? descriptor.dpl() > cpl : descriptor.dpl() != cpl)) {
    nested = FaultDuring(cause, kGeneralProtection, error_code);
    return Delivery::kNestedFault;
  }
  if (!descriptor.present()) {
    nested = FaultDuring(cause, kSegmentNotPresent, error_code);
    return Delivery::kNestedFault;
  }
  const std::uint32_t base = descriptor.base(), limit = descriptor.limit();
  if (base != 0 || limit != 0xFFFFFFFF || !descriptor.big()) {
    char text[128];
    std::snprintf(text, sizeof(text),
                  "code segment 0x%04x (base 0x%08x, limit 0x%08x) is not flat 32-bit; only "
                  "those are supported yet",
                  selector, base, limit);
    pending_stop_ = MakeStop(StopReason::kUnsupportedInstruction, text);
    return Delivery::kStop;
  }
  state_->segment[kCs] = descriptor.Cached(static_cast<std::uint16_t>((selector & ~3u) | cpl));
  return Delivery::kDone;
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
  if (type == kTaskGate && gate.present()) {
    pending_stop_ = MakeStop(StopReason::kUnsupportedInstruction,
                             "task gates in the IDT are not supported yet");
    return Delivery::kStop;
  }
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
  const bool gate32 = type & 0x08;
  const auto selector = static_cast<std::uint16_t>(gate.bytes[2] | gate.bytes[3] << 8);
  std::uint32_t offset = gate.bytes[0] | gate.bytes[1] << 8;
  if (gate32) offset |= gate.high() & 0xFFFF0000u;

  Descriptor code;
  if (Delivery read = ReadDescriptor(selector, event, code, nested); read != Delivery::kDone) {
    return read;
  }
  if (code.code() && !code.conforming() && code.dpl() < cpl) {
    pending_stop_ = MakeStop(StopReason::kUnsupportedInstruction,
                             "an interrupt into an inner privilege level (a TSS stack switch) is "
                             "not supported yet");
    return Delivery::kStop;
  }
  const translator::SegmentState saved_cs = state_->segment[kCs];
  if (Delivery loaded = LoadCodeSegment(selector, cpl, event, nested); loaded != Delivery::kDone) {
    return loaded;
  }

  const unsigned size = gate32 ? 4 : 2;
  const std::uint32_t eflags = state_->Eflags();
  // A fault's frame has RF set, so that the handler's iret does not hit an
  // instruction breakpoint on the restarted instruction again (SDM Vol. 3,
  // 17.3.1.1; QEMU pushes it clear).
  const bool fault = event.source == Source::kException && event.return_eip == event.fault_eip;
  const std::uint32_t pushed_eflags = fault ? eflags | kEflagsRf : eflags;
  std::uint32_t esp = state_->gpr[kEsp];
  auto push = [&](std::uint32_t value) {
    esp -= size;
    return WriteGuest(esp, &value, size);
  };
  if (!push(pushed_eflags) || !push(saved_cs.selector) || !push(event.return_eip) ||
      (event.has_error_code && !push(event.error_code))) {
    state_->segment[kCs] = saved_cs;
    return AccessFailedDuring(event, "the interrupt stack lies outside RAM", nested);
  }
  state_->gpr[kEsp] = esp;
  state_->eip = gate32 ? offset : offset & 0xFFFF;
  std::uint32_t flags = eflags & ~(kEflagsTf | kEflagsNt | kEflagsRf | kEflagsVm);
  if (interrupt_gate) flags &= ~kEflagsIf;
  state_->SetEflags(flags);
  return Delivery::kDone;
}

bool Vcpu::Iret(const decoder::DecodedInstruction& insn) {
  const std::uint32_t eflags = state_->Eflags();
  if (!(state_->cr0 & kCr0Pe) || (eflags & kEflagsNt)) {
    return ExitWith(MakeInstructionStop(StopReason::kUnsupportedInstruction, insn,
                                        "iret in real mode or to a nested task is not supported "
                                        "yet:"),
                    insn.eip);
  }
  const unsigned size = insn.operand_size == 2 ? 2 : 4;
  const std::uint32_t esp = state_->gpr[kEsp];
  std::uint32_t eip = 0, cs = 0, popped_flags = 0;
  if (!ReadGuest(esp, &eip, size) || !ReadGuest(esp + size, &cs, size) ||
      !ReadGuest(esp + 2 * size, &popped_flags, size)) {
    if (access_fault_) return RaiseAccessFault(insn);
    return ExitWith(
        MakeInstructionStop(StopReason::kHostError, insn, "iret's stack lies outside RAM:"),
        insn.eip);
  }
  const unsigned cpl = state_->Cpl();
  const unsigned rpl = cs & 3;
  const GuestEvent cause{
      kGeneralProtection, Source::kSoftwareInterrupt, true, 0, insn.eip, insn.eip};
  if (rpl < cpl) return Raise(FaultDuring(cause, kGeneralProtection, cs & 0xFFFCu));
  if (rpl > cpl || (size == 4 && (popped_flags & kEflagsVm))) {
    return ExitWith(MakeInstructionStop(StopReason::kUnsupportedInstruction, insn,
                                        "iret to an outer privilege level or to virtual-8086 "
                                        "mode is not supported yet:"),
                    insn.eip);
  }
  GuestEvent nested;
  switch (LoadCodeSegment(static_cast<std::uint16_t>(cs), cpl, cause, nested)) {
    case Delivery::kDone: break;
    case Delivery::kNestedFault: return Raise(nested);
    case Delivery::kStop: return ExitWith(std::move(pending_stop_), insn.eip);
  }
  std::uint32_t changeable = kIretChangeable;
  const unsigned iopl = (eflags & kEflagsIopl) >> 12;
  if (cpl > 0) changeable &= ~kEflagsIopl;
  if (cpl > iopl) changeable &= ~kEflagsIf;
  if (size == 2) changeable &= 0xFFFF;
  // RF would only hold off an instruction breakpoint for one instruction,
  // after which the CPU clears it; libbt has no instruction breakpoints yet.
  state_->SetEflags(((eflags & ~changeable) | (popped_flags & changeable)) & ~kEflagsRf);
  state_->gpr[kEsp] = esp + 3 * size;
  return ExitWith(std::nullopt, size == 2 ? eip & 0xFFFF : eip);
}

}  // namespace bt::runtime
