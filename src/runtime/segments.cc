// Descriptor lookups in the GDT and the LDT, and segment-register loads with
// the checks of MOV Sreg, POP Sreg, far JMP and CALL to a code segment (SDM
// Vol. 2) and of a task switch (SDM Vol. 3A table 7-1). ES, SS, DS, FS and
// GS may hold any data segment (segment_access.cc), CS any 32-bit code
// segment (code_segment.cc); SS must be a 32-bit one: anything else stops
// the run rather than run wrongly.
#include "runtime/descriptor.h"
#include "runtime/vcpu.h"

#include <cstdio>

namespace bt::runtime {

using translator::kCs;
using translator::kSs;

bool Vcpu::DescriptorAddress(std::uint16_t selector, std::uint32_t& address) const {
  const std::uint32_t offset = selector & ~7u;
  if (selector & 4) {
    // A null LDTR makes every LDT selector unusable (SDM Vol. 3A 3.5.1).
    if ((state_->ldtr.selector & ~3u) == 0 || offset + 7 > state_->ldtr.limit) return false;
    address = state_->ldtr.base + offset;
    return true;
  }
  if (offset + 7 > state_->gdt_limit) return false;
  address = state_->gdt_base + offset;
  return true;
}

Vcpu::Delivery Vcpu::ReadDescriptor(std::uint16_t selector, const GuestEvent& cause,
                                    Descriptor& descriptor, GuestEvent& nested,
                                    std::uint8_t vector) {
  std::uint32_t address = 0;
  if (!DescriptorAddress(selector, address)) {
    nested = FaultDuring(cause, vector, selector & 0xFFFCu);
    return Delivery::kNestedFault;
  }
  if (!ReadGuest(address, descriptor.bytes, 8)) {
    return AccessFailedDuring(cause, "a descriptor table lies outside RAM", nested);
  }
  return Delivery::kDone;
}

Vcpu::Delivery Vcpu::LoadSegmentRegister(unsigned index, std::uint16_t selector, unsigned cpl,
                                         std::uint8_t invalid, const GuestEvent& cause,
                                         GuestEvent& nested) {
  auto fault = [&](std::uint8_t vector) {
    nested = FaultDuring(cause, vector, selector & 0xFFFCu);
    return Delivery::kNestedFault;
  };
  if ((selector & ~3u) == 0) {
    if (index == kCs || index == kSs) return fault(invalid);
    state_->segment[index] = {selector, 0, 0, 0};  // null selector: usable until referenced
    return Delivery::kDone;
  }
  Descriptor descriptor;
  if (Delivery read = ReadDescriptor(selector, cause, descriptor, nested, invalid);
      read != Delivery::kDone) {
    return read;
  }
  const unsigned dpl = descriptor.dpl(), rpl = selector & 3;
  const bool user_segment = !descriptor.system(), code = descriptor.code();
  const bool conforming = descriptor.conforming();
  const bool readable_or_writable = descriptor.readable_or_writable();
  bool allowed = false;
  switch (index) {
    case kSs:
      allowed = user_segment && !code && readable_or_writable && rpl == cpl && dpl == cpl;
      break;
    case kCs:
      allowed = user_segment && code && (conforming ? dpl <= cpl : dpl == cpl && rpl <= cpl);
      break;
    default:
      allowed = user_segment && (!code || readable_or_writable) &&
                (conforming || (rpl <= dpl && cpl <= dpl));
      break;
  }
  if (!allowed) return fault(invalid);
  if (!descriptor.present()) return fault(index == kSs ? kStackFault : kSegmentNotPresent);
  const std::uint32_t base = descriptor.base(), limit = descriptor.limit();
  const char* unsupported = nullptr;
  if (index == kCs && !descriptor.big()) {
    unsupported = "CS: 16-bit code segments (D clear)";
  } else if (index == kSs && !descriptor.big()) {
    unsupported = "SS: 16-bit stacks (B clear)";
  }
  if (unsupported) {
    char text[192];
    std::snprintf(text, sizeof(text),
                  "segment selector 0x%04x (base 0x%08x, limit 0x%08x) is not supported yet in %s",
                  selector, base, limit, unsupported);
    pending_stop_ = MakeStop(StopReason::kUnsupportedInstruction, text);
    return Delivery::kStop;
  }
  // The processor marks the descriptor accessed.
  if (!(descriptor.bytes[5] & 1)) {
    descriptor.bytes[5] |= 1;
    std::uint32_t address = 0;
    DescriptorAddress(selector, address);
    WriteGuest(address + 5, &descriptor.bytes[5], 1);
  }
  state_->segment[index] = descriptor.Cached(
      static_cast<std::uint16_t>(index == kCs ? (selector & ~3u) | cpl : selector));
  return Delivery::kDone;
}

bool Vcpu::LoadSegment(unsigned index, std::uint16_t selector,
                       const decoder::DecodedInstruction& insn) {
  GuestEvent nested;
  const Delivery loaded = LoadSegmentRegister(index, selector, state_->Cpl(), kGeneralProtection,
                                              InstructionCause(insn), nested);
  if (loaded == Delivery::kDone) return true;
  FailCheck(loaded, nested, insn);
  return false;
}

}  // namespace bt::runtime
