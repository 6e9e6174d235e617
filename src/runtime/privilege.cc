// Privilege levels (SDM Vol. 3A chapter 5): the segment checks of transfers
// between them (interrupt and call gates, iret, far ret), what the CPL and
// IOPL allow (EFLAGS.IF and IOPL, I/O ports).
#include "runtime/descriptor.h"
#include "runtime/vcpu.h"

#include <cstdio>
#include <cstring>

namespace bt::runtime {

using translator::kCs;
using translator::kEflagsIf;
using translator::kEflagsIopl;

namespace {

// The data segment registers a return to an outer level checks.
constexpr unsigned kDataSegments[] = {translator::kEs, translator::kDs, translator::kFs,
                                      translator::kGs};
// Where a 32-bit TSS holds the I/O map base.
constexpr std::uint32_t kIoMapBaseOffset = 0x66;

unsigned TssType(const translator::SegmentState& tr) { return tr.attributes & 0xF; }

}  // namespace

Vcpu::Delivery Vcpu::UnsupportedSegment(std::uint16_t selector, const Descriptor& descriptor) {
  char text[192];
  std::snprintf(
      text, sizeof(text), "segment 0x%04x (base 0x%08x, limit 0x%08x) is not supported yet in %s",
      selector, descriptor.base(), descriptor.limit(),
      descriptor.code() ? "CS: 16-bit code segments (D clear)" : "SS: 16-bit stacks (B clear)");
  pending_stop_ = MakeStop(StopReason::kUnsupportedInstruction, text);
  return Delivery::kStop;
}

Vcpu::Delivery Vcpu::ReadCodeSegment(std::uint16_t selector, const GuestEvent& cause,
                                     Descriptor& code, GuestEvent& nested) {
  if ((selector & ~3u) == 0) {
    nested = FaultDuring(cause, kGeneralProtection, 0);
    return Delivery::kNestedFault;
  }
  return ReadDescriptor(selector, cause, code, nested);
}

Vcpu::Delivery Vcpu::CheckCodeSegment(const Descriptor& code, std::uint16_t selector, unsigned cpl,
                                      const GuestEvent& cause, GuestEvent& nested) {
  const std::uint32_t error_code = selector & 0xFFFCu;
  if (!code.code() || (code.conforming() ? code.dpl() > cpl : code.dpl() != cpl)) {
    nested = FaultDuring(cause, kGeneralProtection, error_code);
    return Delivery::kNestedFault;
  }
  if (!code.present()) {
    nested = FaultDuring(cause, kSegmentNotPresent, error_code);
    return Delivery::kNestedFault;
  }
  if (!code.big()) return UnsupportedSegment(selector, code);
  return Delivery::kDone;
}

Vcpu::Delivery Vcpu::CheckStackSegment(std::uint16_t selector, unsigned cpl, std::uint8_t vector,
                                       const GuestEvent& cause, Descriptor& stack,
                                       GuestEvent& nested) {
  const std::uint32_t error_code = selector & 0xFFFCu;
  auto fault = [&](std::uint8_t fault_vector, std::uint32_t code) {
    nested = FaultDuring(cause, fault_vector, code);
    return Delivery::kNestedFault;
  };
  if (error_code == 0) return fault(vector, 0);
  if ((selector & 3) != cpl) return fault(vector, error_code);
  if (Delivery read = ReadDescriptor(selector, cause, stack, nested, vector);
      read != Delivery::kDone) {
    return read;
  }
  if (stack.system() || stack.code() || !stack.readable_or_writable() || stack.dpl() != cpl) {
    return fault(vector, error_code);
  }
  if (!stack.present()) return fault(kStackFault, error_code);
  if (!stack.big()) return UnsupportedSegment(selector, stack);
  return Delivery::kDone;
}

Vcpu::Delivery Vcpu::ReadTssStack(unsigned cpl, const GuestEvent& cause, std::uint16_t& ss,
                                  std::uint32_t& esp, GuestEvent& nested) {
  const translator::SegmentState& tr = state_->tr;
  if (TssType(tr) == kTss16Available || TssType(tr) == kTss16Busy) {
    pending_stop_ = MakeStop(StopReason::kUnsupportedInstruction,
                             "a stack switch through a 16-bit TSS is not supported yet");
    return Delivery::kStop;
  }
  // ESPn and SSn of a 32-bit TSS (SDM Vol. 3A figure 7-2).
  const std::uint32_t offset = cpl * 8 + 4;
  if (offset + 5 > tr.limit) {
    nested = FaultDuring(cause, kInvalidTss, tr.selector & 0xFFFCu);
    return Delivery::kNestedFault;
  }
  std::uint8_t bytes[6];
  if (!ReadGuest(tr.base + offset, bytes, sizeof(bytes))) {
    return AccessFailedDuring(cause, "the TSS lies outside RAM", nested);
  }
  std::memcpy(&esp, bytes, 4);
  std::memcpy(&ss, bytes + 4, 2);
  return Delivery::kDone;
}

Vcpu::Delivery Vcpu::CheckReturn(std::uint16_t cs, std::uint32_t eip, std::uint32_t stack,
                                 unsigned size, const GuestEvent& cause, ReturnTarget& target,
                                 GuestEvent& nested) {
  Descriptor code;
  if (Delivery read = ReadCodeSegment(cs, cause, code, nested); read != Delivery::kDone) {
    return read;
  }
  const unsigned cpl = state_->Cpl(), rpl = cs & 3;
  if (rpl < cpl) {
    nested = FaultDuring(cause, kGeneralProtection, cs & 0xFFFCu);
    return Delivery::kNestedFault;
  }
  if (Delivery checked = CheckCodeSegment(code, cs, rpl, cause, nested);
      checked != Delivery::kDone) {
    return checked;
  }
  target.cs = code.Cached(cs);
  target.outer = rpl > cpl;
  auto within_limit = [&] {
    if (eip <= code.limit()) return Delivery::kDone;
    nested = FaultDuring(cause, kGeneralProtection, 0);
    return Delivery::kNestedFault;
  };
  if (!target.outer) return within_limit();
  std::uint32_t esp = 0, ss = 0;
  const auto at = StackAddress(stack, 2 * size, false);
  if (!at) {
    nested = FaultDuring(cause, kStackFault, 0);
    return Delivery::kNestedFault;
  }
  if (!ReadGuest(*at, &esp, size) || !ReadGuest(*at + size, &ss, size)) {
    return AccessFailedDuring(cause, "the stack lies outside RAM", nested);
  }
  Descriptor stack_segment;
  if (Delivery checked = CheckStackSegment(static_cast<std::uint16_t>(ss), rpl, kGeneralProtection,
                                           cause, stack_segment, nested);
      checked != Delivery::kDone) {
    return checked;
  }
  target.ss = stack_segment.Cached(static_cast<std::uint16_t>(ss));
  target.esp = esp;
  return within_limit();
}

void Vcpu::LoadReturnSegments(const ReturnTarget& target) {
  state_->segment[kCs] = target.cs;
  if (!target.outer) return;
  state_->segment[translator::kSs] = target.ss;
  // Segments the outer level could not load itself become null, so that it
  // cannot use data of the level it returned from (SDM Vol. 2A IRET).
  const unsigned cpl = state_->Cpl();
  for (unsigned index : kDataSegments) {
    translator::SegmentState& segment = state_->segment[index];
    const unsigned dpl = segment.attributes >> 5 & 3;
    const bool code = segment.attributes & 0x08, conforming = segment.attributes & 0x04;
    if (dpl < cpl && (!code || !conforming)) segment = {0, 0, 0, 0};
  }
  OnPrivilegeChanged();
}

bool Vcpu::FailCheck(Delivery result, const GuestEvent& nested,
                     const decoder::DecodedInstruction& insn) {
  if (result == Delivery::kNestedFault) return Raise(nested);
  pending_stop_->eip = insn.eip;
  return ExitWith(std::move(pending_stop_), insn.eip);
}

std::uint32_t Vcpu::ChangeableFlags(std::uint32_t mask) const {
  const unsigned cpl = state_->Cpl();
  if (cpl > 0) mask &= ~kEflagsIopl;
  if (cpl > state_->Iopl()) mask &= ~kEflagsIf;
  return mask;
}

bool Vcpu::IoPermitted(std::uint16_t port, unsigned bytes) {
  if (state_->Cpl() <= state_->Iopl()) return true;
  // Only a 32-bit TSS has a bitmap. The processor reads two bytes of it
  // for any access, so both must lie within the TSS limit (SDM Vol. 1,
  // 19.5.2).
  const translator::SegmentState& tr = state_->tr;
  if ((TssType(tr) & 0x8) == 0 || tr.limit < kTss32MinimumLimit) return false;
  std::uint16_t map_base = 0, map = 0;
  if (!ReadGuest(tr.base + kIoMapBaseOffset, &map_base, 2)) return false;
  const std::uint32_t offset = map_base + port / 8u;
  if (offset + 1 > tr.limit || !ReadGuest(tr.base + offset, &map, 2)) return false;
  return (map >> (port % 8) & ((1u << bytes) - 1)) == 0;
}

}  // namespace bt::runtime
