// System instructions that read or load the descriptor-table registers, the
// machine status word and system segments, and that check selectors (SDM
// Vol. 2): sgdt, sidt, sldt, str, smsw, lmsw, clts, lldt, ltr, lar, lsl,
// verr, verw, and mov to/from the debug registers. CPUID reports no UMIP, so
// the stores work at any CPL.
#include "runtime/descriptor.h"
#include "runtime/vcpu.h"

#include <cstring>

namespace bt::runtime {

using decoder::DecodedInstruction;
using decoder::Kind;
using translator::kCr0Pe;
using translator::kCr0Ts;
using translator::kCr4De;
using translator::kCs;

namespace {

constexpr std::uint16_t TypeBit(unsigned type) { return static_cast<std::uint16_t>(1u << type); }
// Which system types lar and lsl accept: TSSs (available or busy) and LDTs
// for both; call and task gates for lar only.
constexpr std::uint16_t kLslSystemTypes =
    TypeBit(1) | TypeBit(2) | TypeBit(3) | TypeBit(9) | TypeBit(0xB);
constexpr std::uint16_t kLarSystemTypes = kLslSystemTypes | TypeBit(4) | TypeBit(5) | TypeBit(0xC);

bool NullSelector(std::uint16_t selector) { return (selector & 0xFFFC) == 0; }

}  // namespace

bool Vcpu::ReadSelectorOperand(const DecodedInstruction& insn, std::uint16_t& selector) {
  if (insn.has_memory) return ReadOperand(state_->effective_address, &selector, 2);
  selector = static_cast<std::uint16_t>(state_->gpr[insn.rm_gpr]);
  return true;
}

bool Vcpu::OperandOutsideRam(const DecodedInstruction& insn) {
  if (access_fault_) return RaiseAccessFault(insn);
  return ExitWith(MakeInstructionStop(StopReason::kUnsupportedInstruction, insn,
                                      "a memory operand outside RAM (MMIO is not emulated yet):"),
                  insn.eip);
}

bool Vcpu::StoreSystemRegister(const DecodedInstruction& insn) {
  const bool protected_mode = state_->cr0 & kCr0Pe;
  std::uint32_t value = 0;
  switch (insn.kind) {
    case Kind::kSgdt:
    case Kind::kSidt: {
      // Limit, then the full 32-bit base whatever the operand size, as the
      // current SDM's SGDT pseudocode has it (older editions, and QEMU,
      // store 24 bits and a zero byte with a 16-bit operand size).
      if (!insn.has_memory) return RaiseFault(kInvalidOpcode, insn);
      const bool gdt = insn.kind == Kind::kSgdt;
      const std::uint16_t limit = gdt ? state_->gdt_limit : state_->idt_limit;
      const std::uint32_t base = gdt ? state_->gdt_base : state_->idt_base;
      std::uint8_t operand[6];
      std::memcpy(operand, &limit, 2);
      std::memcpy(operand + 2, &base, 4);
      if (!WriteOperand(state_->effective_address, operand, sizeof(operand))) {
        return OperandOutsideRam(insn);
      }
      return false;
    }
    case Kind::kSldt:
      if (!protected_mode) return RaiseFault(kInvalidOpcode, insn);
      value = state_->ldtr.selector;
      break;
    case Kind::kStr:
      if (!protected_mode) return RaiseFault(kInvalidOpcode, insn);
      value = state_->tr.selector;
      break;
    case Kind::kSmsw: value = state_->cr0; break;
    default: return false;
  }
  if (insn.has_memory) {
    // Memory destinations are 16 bits whatever the operand size.
    const auto word = static_cast<std::uint16_t>(value);
    if (!WriteOperand(state_->effective_address, &word, 2)) return OperandOutsideRam(insn);
    return false;
  }
  // A 32-bit register gets the selector zero-extended (P6 and later), and
  // smsw all of CR0 (the SDM leaves bits 31:16 undefined; P6 and later and
  // QEMU store CR0[31:16]).
  WriteRegister(insn.rm_gpr, insn.operand_size, value);
  return false;
}

bool Vcpu::LoadMachineStatusWord(const DecodedInstruction& insn) {
  const std::uint32_t old_cr0 = state_->cr0;
  if (insn.kind == Kind::kClts) {
    state_->cr0 &= ~kCr0Ts;
  } else {
    std::uint16_t source = 0;
    if (insn.has_memory) {
      if (!ReadOperand(state_->effective_address, &source, 2)) return OperandOutsideRam(insn);
    } else {
      source = static_cast<std::uint16_t>(state_->gpr[insn.rm_gpr]);
    }
    // lmsw loads PE, MP, EM and TS, and can set PE but not clear it (SDM
    // Vol. 2A LMSW).
    state_->cr0 = (old_cr0 & ~0xFu) | (source & 0xFu) | (old_cr0 & kCr0Pe);
  }
  OnCr0Changed(old_cr0);
  return ExitWith(std::nullopt, insn.next_eip());
}

// lldt and ltr (SDM Vol. 2A): a GDT descriptor of an LDT or an available
// TSS (16- or 32-bit, as the SDM allows both), with #GP(selector) for any
// other, #NP(selector) if not present; ltr marks the TSS busy.
bool Vcpu::LoadSystemSegment(const DecodedInstruction& insn) {
  if (!(state_->cr0 & kCr0Pe)) return RaiseFault(kInvalidOpcode, insn);
  std::uint16_t selector = 0;
  if (!ReadSelectorOperand(insn, selector)) return OperandOutsideRam(insn);
  const bool ltr = insn.kind == Kind::kLtr;
  const std::uint32_t error_code = selector & 0xFFFCu;
  if (NullSelector(selector)) {
    if (ltr) return RaiseFault(kGeneralProtection, insn, 0);
    state_->ldtr = {selector, 0, 0, 0};  // LDTR marked invalid
    return false;
  }
  const std::uint32_t offset = selector & ~7u;
  if ((selector & 4) || offset + 7 > state_->gdt_limit) {
    return RaiseFault(kGeneralProtection, insn, error_code);
  }
  Descriptor descriptor;
  if (!ReadGuest(state_->gdt_base + offset, descriptor.bytes, 8)) {
    return OperandOutsideRam(insn);
  }
  const bool type_ok = descriptor.system() && (ltr ? descriptor.type() == kTss16Available ||
                                                         descriptor.type() == kTss32Available
                                                   : descriptor.type() == kLdtType);
  if (!type_ok) return RaiseFault(kGeneralProtection, insn, error_code);
  if (!descriptor.present()) return RaiseFault(kSegmentNotPresent, insn, error_code);
  if (ltr) {
    descriptor.bytes[5] |= 2;  // busy
    WriteGuest(state_->gdt_base + offset + 5, &descriptor.bytes[5], 1);
    state_->tr = descriptor.Cached(selector);
  } else {
    state_->ldtr = descriptor.Cached(selector);
  }
  return false;
}

// lar, lsl, verr and verw (SDM Vol. 2A/2B): they set ZF when the selector
// names a descriptor of a type they accept that the CPL and RPL may use, and
// clear it otherwise; they change no other flag and never fault on the
// selector. Selectors with TI set are looked up in the LDT that lldt loaded.
bool Vcpu::CheckSegment(const DecodedInstruction& insn) {
  if (!(state_->cr0 & kCr0Pe)) return RaiseFault(kInvalidOpcode, insn);
  std::uint16_t selector = 0;
  if (!ReadSelectorOperand(insn, selector)) return OperandOutsideRam(insn);
  // LDT entry 0 is usable: only a GDT selector can be null.
  std::uint32_t address = 0;
  bool usable = ((selector & 4) || !NullSelector(selector)) && DescriptorAddress(selector, address);
  Descriptor descriptor;
  if (usable && !ReadGuest(address, descriptor.bytes, 8)) {
    return OperandOutsideRam(insn);
  }
  if (usable && !descriptor.conforming()) {
    const unsigned cpl = state_->Cpl(), rpl = selector & 3;
    usable = descriptor.dpl() >= cpl && descriptor.dpl() >= rpl;
  }
  const unsigned type = descriptor.type();
  const bool readable = descriptor.code() ? (type & 2) != 0 : true;
  const bool writable = !descriptor.code() && (type & 2) != 0;
  switch (insn.kind) {
    case Kind::kLar:
      usable = usable && (!descriptor.system() || (kLarSystemTypes & TypeBit(type)));
      if (usable) {
        // Type, S, DPL, P and AVL, L, D/B, G; bits 15:8 only for 16 bits.
        const std::uint32_t mask = insn.operand_size == 2 ? 0xFF00u : 0x00F0FF00u;
        WriteRegister(insn.reg_gpr, insn.operand_size, descriptor.high() & mask);
      }
      break;
    case Kind::kLsl:
      usable = usable && (!descriptor.system() || (kLslSystemTypes & TypeBit(type)));
      if (usable) WriteRegister(insn.reg_gpr, insn.operand_size, descriptor.limit());
      break;
    case Kind::kVerr: usable = usable && !descriptor.system() && readable; break;
    case Kind::kVerw: usable = usable && !descriptor.system() && writable; break;
    default: break;
  }
  std::uint64_t& flags = state_->host_flags;
  flags = usable ? flags | translator::kEflagsZf : flags & ~std::uint64_t{translator::kEflagsZf};
  return false;
}

// mov to and from DR0-DR7 (SDM Vol. 2B MOV-Move to/from Debug Registers;
// Vol. 3A 17.2). The values are kept with their fixed bits, so kernels that
// save, clear and restore them at boot and on task switches work; the
// breakpoints they describe do not fire. DR4 and DR5 are DR6 and DR7 unless
// CR4.DE makes them #UD.
bool Vcpu::MoveDebugRegister(const DecodedInstruction& insn) {
  unsigned index = insn.special_register;
  if (index == 4 || index == 5) {
    if (state_->cr4 & kCr4De) return RaiseFault(kInvalidOpcode, insn);
    index += 2;
  }
  if (insn.kind == Kind::kMovFromDr) {
    state_->gpr[insn.rm_gpr] = state_->dr[index];
    return false;
  }
  const std::uint32_t value = state_->gpr[insn.rm_gpr];
  switch (index) {
    case 6: state_->dr[6] = (value & 0x0000E00Fu) | 0xFFFF0FF0u; break;
    case 7: state_->dr[7] = (value & ~0x0000D800u) | 0x400u; break;
    default: state_->dr[index] = value; break;
  }
  return false;
}

}  // namespace bt::runtime
