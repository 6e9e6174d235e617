// Hardware task switches between 32-bit TSSs (SDM Vol. 3A chapter 7; Vol. 2
// JMP, CALL, IRET and INT n): far jmp and call to a TSS or through a task
// gate, exceptions and interrupts through task gates in the IDT, and iret
// with EFLAGS.NT back to the task in the back link. 16-bit TSSs and switches
// into virtual-8086 mode stop the run as unsupported.
#include "runtime/descriptor.h"
#include "runtime/vcpu.h"

#include <cstddef>
#include <cstring>

namespace bt::runtime {

using decoder::DecodedInstruction;
using translator::kCr0Pg;
using translator::kCr0Ts;
using translator::kEflagsNt;
using translator::kEflagsRf;
using translator::kEflagsVm;

namespace {

// A 32-bit TSS up to the I/O map base (SDM Vol. 3A figure 7-2). Selectors
// sit in the low half of their slots.
struct Tss32 {
  std::uint32_t link;
  std::uint32_t stacks[6];  // ESP0, SS0, ESP1, SS1, ESP2, SS2
  std::uint32_t cr3, eip, eflags;
  std::uint32_t gpr[8];      // in CpuState::gpr's order
  std::uint32_t segment[6];  // in CpuState::segment's order
  std::uint32_t ldt;
  std::uint32_t trap_and_io_map;
};
static_assert(sizeof(Tss32) == kTss32MinimumLimit + 1);

// What a switch saves in the old task's TSS: EIP up to GS (SDM Vol. 3A 7.3
// step 8); CR3 and the LDT selector are never written back.
constexpr std::size_t kSavedBegin = offsetof(Tss32, eip), kSavedEnd = offsetof(Tss32, ldt);

// The EFLAGS bits that exist: CF PF AF ZF SF TF IF DF OF IOPL NT RF VM AC
// VIF VIP ID.
constexpr std::uint32_t kEflagsDefined = 0x003F7FD5;

// The order a switch loads the segment registers in after LDTR. The SDM
// fixes none; this is QEMU's, so that a TSS with two bad selectors faults
// on the same one under both.
constexpr unsigned kLoadOrder[] = {translator::kCs, translator::kSs, translator::kEs,
                                   translator::kDs, translator::kFs, translator::kGs};

constexpr const char* kTssOutsideRam = "a TSS lies outside RAM";

// A present, writable 32-bit data segment of DPL 0 (access byte 0x93, G and
// D/B): what a segment register holds during a task switch until its own
// descriptor is loaded.
constexpr std::uint16_t kUnloadedAttributes = 0xC093;

}  // namespace

GuestEvent Vcpu::InCurrentTask(const GuestEvent& cause) const {
  GuestEvent event = cause;
  event.fault_eip = event.return_eip = state_->eip;
  return event;
}

bool Vcpu::MarkTssBusy(std::uint16_t selector, bool busy) {
  // TR is null until ltr: there is no descriptor to mark.
  if ((selector & ~3u) == 0) return true;
  std::uint32_t address = 0;
  std::uint8_t access = 0;
  if (!DescriptorAddress(selector, address) || !ReadGuest(address + 5, &access, 1)) return false;
  access = static_cast<std::uint8_t>(busy ? access | kTssBusy : access & ~kTssBusy);
  return WriteGuest(address + 5, &access, 1);
}

Vcpu::Delivery Vcpu::ReadTssDescriptor(std::uint16_t selector, TaskSwitch source,
                                       const GuestEvent& cause, Descriptor& tss,
                                       GuestEvent& nested) {
  const bool iret = source == TaskSwitch::kIret;
  const std::uint8_t invalid = iret ? kInvalidTss : kGeneralProtection;
  auto fault = [&](std::uint8_t vector) {
    nested = FaultDuring(cause, vector, selector & 0xFFFCu);
    return Delivery::kNestedFault;
  };
  // TSS descriptors live in the GDT only (SDM Vol. 3A 7.2.2).
  if (selector & 4) return fault(invalid);
  if (Delivery read = ReadDescriptor(selector, cause, tss, nested, invalid);
      read != Delivery::kDone) {
    return read;
  }
  const unsigned type = tss.type();
  const bool is_tss = tss.system() && (type & ~(kTssBusy | 8u)) == kTss16Available;
  if (!is_tss || ((type & kTssBusy) != 0) != iret) return fault(invalid);
  if (!tss.present()) return fault(kSegmentNotPresent);
  if (type == kTss16Available || type == kTss16Busy) {
    pending_stop_ = MakeStop(StopReason::kUnsupportedInstruction,
                             "a task switch to a 16-bit TSS is not supported yet");
    return Delivery::kStop;
  }
  return Delivery::kDone;
}

Vcpu::Delivery Vcpu::SwitchTask(std::uint16_t selector, const Descriptor& tss, TaskSwitch source,
                                std::uint32_t return_eip, const GuestEvent& cause,
                                GuestEvent& nested) {
  if (tss.limit() < kTss32MinimumLimit) {
    nested = FaultDuring(cause, kInvalidTss, selector & 0xFFFCu);
    return Delivery::kNestedFault;
  }
  const translator::SegmentState old_tr = state_->tr;
  const unsigned old_type = old_tr.attributes & 0xF;
  if (old_type == kTss16Available || old_type == kTss16Busy) {
    pending_stop_ = MakeStop(StopReason::kUnsupportedInstruction,
                             "a task switch from a 16-bit TSS is not supported yet");
    return Delivery::kStop;
  }

  // Save the old task. Only an iret clears NT in the image: the task it
  // leaves is no longer nested (SDM Vol. 3A 7.3 step 7).
  Tss32 old{};
  auto* old_bytes = reinterpret_cast<std::uint8_t*>(&old);
  if (!ReadGuest(old_tr.base + kSavedBegin, old_bytes + kSavedBegin, kSavedEnd - kSavedBegin)) {
    return AccessFailedDuring(cause, kTssOutsideRam, nested);
  }
  const bool nesting = source == TaskSwitch::kCall || source == TaskSwitch::kInterrupt;
  old.eip = return_eip;
  old.eflags = source == TaskSwitch::kIret ? state_->Eflags() & ~kEflagsNt : state_->Eflags();
  std::memcpy(old.gpr, state_->gpr, sizeof(old.gpr));
  for (unsigned i = 0; i < 6; ++i) {
    old.segment[i] = (old.segment[i] & 0xFFFF0000u) | state_->segment[i].selector;
  }
  if (!WriteGuest(old_tr.base + kSavedBegin, old_bytes + kSavedBegin, kSavedEnd - kSavedBegin)) {
    return AccessFailedDuring(cause, kTssOutsideRam, nested);
  }
  // Read after the save: an iret may return to the task it leaves.
  Tss32 next;
  if (!ReadGuest(tss.base(), &next, sizeof(next))) {
    return AccessFailedDuring(cause, kTssOutsideRam, nested);
  }
  if (next.eflags & kEflagsVm) {
    pending_stop_ = MakeStop(StopReason::kUnsupportedInstruction,
                             "a task switch into virtual-8086 mode is not supported yet");
    return Delivery::kStop;
  }
  if (nesting && !WriteGuest(tss.base(), &old_tr.selector, 2)) {
    return AccessFailedDuring(cause, kTssOutsideRam, nested);
  }
  // A task that is left for good becomes available; one left nested stays
  // busy, and so does the task an iret returns to (SDM Vol. 3A table 7-2).
  const bool leaves = source == TaskSwitch::kJmp || source == TaskSwitch::kIret;
  if ((leaves && !MarkTssBusy(old_tr.selector, false)) ||
      (source != TaskSwitch::kIret && !MarkTssBusy(selector, true))) {
    return AccessFailedDuring(cause, "the GDT lies outside RAM", nested);
  }

  // The commit point: the new task's state is loaded, and what fails from
  // here on faults in the new task (SDM Vol. 3A 7.3 steps 10-12).
  state_->tr = tss.Cached(selector);
  state_->tr.attributes |= kTssBusy;
  if (state_->cr0 & kCr0Pg) LoadCr3(next.cr3);
  // RF would only hold off an instruction breakpoint, which libbt does not
  // have (as in Iret).
  std::uint32_t eflags = next.eflags & kEflagsDefined & ~kEflagsRf;
  if (nesting) eflags |= kEflagsNt;
  state_->SetEflags(eflags);
  state_->eip = next.eip;
  std::memcpy(state_->gpr, next.gpr, sizeof(state_->gpr));
  const std::uint32_t old_cr0 = state_->cr0;
  state_->cr0 |= kCr0Ts;
  OnCr0Changed(old_cr0);
  // The selectors come first, without their descriptors, so that a fault
  // in the checks below finds the new CPL (the RPL of CS). Until its
  // descriptor loads, a register acts flat, as under QEMU, which checks no
  // data segment limits: a fault here is delivered on the new task's stack
  // (SDM Vol. 3A 7.3), and its handler may have to use DS before it can
  // reload it.
  for (unsigned i = 0; i < 6; ++i) {
    state_->segment[i] = {static_cast<std::uint16_t>(next.segment[i]), 0, 0xFFFFFFFF,
                          kUnloadedAttributes};
  }
  OnPrivilegeChanged();
  const GuestEvent in_new_task = InCurrentTask(cause);

  const auto ldt = static_cast<std::uint16_t>(next.ldt);
  state_->ldtr = {ldt, 0, 0, 0};
  if ((ldt & ~3u) != 0) {
    auto invalid_ldt = [&] {
      nested = FaultDuring(in_new_task, kInvalidTss, ldt & 0xFFFCu);
      return Delivery::kNestedFault;
    };
    if (ldt & 4) return invalid_ldt();
    Descriptor table;
    if (Delivery read = ReadDescriptor(ldt, in_new_task, table, nested, kInvalidTss);
        read != Delivery::kDone) {
      return read;
    }
    if (!table.system() || table.type() != kLdtType || !table.present()) return invalid_ldt();
    state_->ldtr = table.Cached(ldt);
  }
  const unsigned cpl = state_->Cpl();
  for (unsigned index : kLoadOrder) {
    if (Delivery loaded = LoadSegmentRegister(index, state_->segment[index].selector, cpl,
                                              kInvalidTss, in_new_task, nested);
        loaded != Delivery::kDone) {
      return loaded;
    }
  }
  if (state_->eip > state_->segment[translator::kCs].limit) {
    nested = FaultDuring(in_new_task, kGeneralProtection, 0);
    return Delivery::kNestedFault;
  }
  return Delivery::kDone;
}

bool Vcpu::TransferToTask(const DecodedInstruction& insn, std::uint16_t selector,
                          const Descriptor& descriptor, bool call) {
  const std::uint32_t error_code = selector & 0xFFFCu;
  // The DPL of the TSS or task gate must admit the CPL and the RPL; through
  // a gate, the TSS's own DPL does not matter (SDM Vol. 3A 7.2.5).
  if (descriptor.dpl() < state_->Cpl() || descriptor.dpl() < (selector & 3u)) {
    return RaiseFault(kGeneralProtection, insn, error_code);
  }
  std::uint16_t tss_selector = selector;
  if (descriptor.type() == kTaskGate) {
    if (!descriptor.present()) return RaiseFault(kSegmentNotPresent, insn, error_code);
    tss_selector = descriptor.gate_selector();
  }
  const TaskSwitch source = call ? TaskSwitch::kCall : TaskSwitch::kJmp;
  const GuestEvent cause = InstructionCause(insn);
  Descriptor tss;
  GuestEvent nested;
  Delivery result = ReadTssDescriptor(tss_selector, source, cause, tss, nested);
  if (result == Delivery::kDone) {
    result = SwitchTask(tss_selector, tss, source, insn.next_eip(), cause, nested);
  }
  if (result != Delivery::kDone) return FailCheck(result, nested, insn);
  return ExitWith(std::nullopt, state_->eip);
}

bool Vcpu::ReturnToPreviousTask(const DecodedInstruction& insn) {
  const GuestEvent cause = InstructionCause(insn);
  std::uint16_t link = 0;
  Descriptor tss;
  GuestEvent nested;
  Delivery result = ReadGuest(state_->tr.base, &link, 2)
                        ? ReadTssDescriptor(link, TaskSwitch::kIret, cause, tss, nested)
                        : AccessFailedDuring(cause, kTssOutsideRam, nested);
  if (result == Delivery::kDone) {
    result = SwitchTask(link, tss, TaskSwitch::kIret, insn.next_eip(), cause, nested);
  }
  if (result != Delivery::kDone) return FailCheck(result, nested, insn);
  return ExitWith(std::nullopt, state_->eip);
}

Vcpu::Delivery Vcpu::DeliverThroughTaskGate(const GuestEvent& event, const Descriptor& gate,
                                            GuestEvent& nested) {
  const std::uint16_t selector = gate.gate_selector();
  Descriptor tss;
  if (Delivery read = ReadTssDescriptor(selector, TaskSwitch::kInterrupt, event, tss, nested);
      read != Delivery::kDone) {
    return read;
  }
  if (Delivery switched =
          SwitchTask(selector, tss, TaskSwitch::kInterrupt, event.return_eip, event, nested);
      switched != Delivery::kDone) {
    return switched;
  }
  if (!event.has_error_code) return Delivery::kDone;
  // The error code goes on the new task's stack, 32 bits for a 32-bit TSS
  // (SDM Vol. 3A 6.12.2).
  const std::uint32_t esp = state_->gpr[translator::kEsp] - 4;
  const auto at = StackAddress(esp, 4, true);
  if (!at) {
    nested = FaultDuring(InCurrentTask(event), kStackFault, 0);
    return Delivery::kNestedFault;
  }
  if (!WriteGuest(*at, &event.error_code, 4)) {
    return AccessFailedDuring(InCurrentTask(event), "the new task's stack lies outside RAM",
                              nested);
  }
  state_->gpr[translator::kEsp] = esp;
  return Delivery::kDone;
}

}  // namespace bt::runtime
