// Instructions that 32-bit code may use but 64-bit mode cannot encode, done
// in C++ after the SDM's pseudocode (Vol. 2): BCD adjustment, salc, into,
// bound, arpl, far pointer loads, far call and far return. Rare in compiled
// code, so correctness beats speed here.
#include "runtime/vcpu.h"

#include <cstdio>

namespace bt::runtime {

using decoder::DecodedInstruction;
using translator::kCs;
using translator::kEax;
using translator::kEsp;
constexpr std::uint32_t kCf = translator::kEflagsCf, kPf = translator::kEflagsPf,
                        kAf = translator::kEflagsAf, kZf = translator::kEflagsZf,
                        kSf = translator::kEflagsSf, kOf = translator::kEflagsOf;

namespace {

std::int32_t SignExtend(std::uint32_t value, unsigned size) {
  return size == 2 ? static_cast<std::int16_t>(value) : static_cast<std::int32_t>(value);
}

}  // namespace

bool Vcpu::EmulateLegacy(const DecodedInstruction& insn) {
  const std::uint8_t* opcode = insn.bytes + insn.prefix_count;
  const unsigned size = insn.operand_size;
  std::uint64_t& flags = state_->host_flags;
  auto flag = [&](std::uint32_t bit) { return (flags & bit) != 0; };
  auto set_flag = [&](std::uint32_t bit, bool on) { flags = on ? flags | bit : flags & ~bit; };
  // SF, ZF and PF of an 8-bit result.
  auto set_result_flags = [&](std::uint8_t value) {
    set_flag(kZf, value == 0);
    set_flag(kSf, value & 0x80);
    set_flag(kPf, !(__builtin_popcount(value) & 1));
  };
  std::uint32_t& eax = state_->gpr[kEax];
  auto set_al = [&](std::uint32_t value) { eax = (eax & ~0xFFu) | (value & 0xFF); };
  const std::uint32_t al = eax & 0xFF;

  switch (opcode[0]) {
    case 0x27: {  // daa
      const bool old_cf = flag(kCf);
      std::uint32_t result = al;
      bool cf = false;
      if ((al & 0x0F) > 9 || flag(kAf)) {
        result = al + 6;
        cf = old_cf || result > 0xFF;
        set_flag(kAf, true);
      } else {
        set_flag(kAf, false);
      }
      if (al > 0x99 || old_cf) {
        result += 0x60;
        cf = true;
      } else {
        cf = false;
      }
      set_al(result);
      set_flag(kCf, cf);
      set_result_flags(static_cast<std::uint8_t>(result));
      return false;
    }
    case 0x2F: {  // das
      const bool old_cf = flag(kCf);
      std::uint32_t result = al;
      bool cf = false;
      if ((al & 0x0F) > 9 || flag(kAf)) {
        cf = old_cf || al < 6;
        result = al - 6;
        set_flag(kAf, true);
      } else {
        set_flag(kAf, false);
      }
      if (al > 0x99 || old_cf) {
        result -= 0x60;
        cf = true;
      }
      set_al(result);
      set_flag(kCf, cf);
      set_result_flags(static_cast<std::uint8_t>(result));
      return false;
    }
    case 0x37:    // aaa
    case 0x3F: {  // aas
      const bool adjust = (al & 0x0F) > 9 || flag(kAf);
      if (adjust) {
        const std::uint32_t ax =
            opcode[0] == 0x37 ? (eax & 0xFFFF) + 0x106 : ((eax & 0xFFFF) - 6) - 0x100;
        eax = (eax & ~0xFFFFu) | (ax & 0xFFFF);
      }
      set_al(eax & 0x0F);
      set_flag(kAf, adjust);
      set_flag(kCf, adjust);
      return false;
    }
    case 0xD4: {  // aam imm8
      const auto base = static_cast<std::uint8_t>(insn.immediate);
      if (base == 0) return RaiseFault(kDivideError, insn);
      eax = (eax & ~0xFFFFu) | (al / base) << 8 | (al % base);
      set_result_flags(static_cast<std::uint8_t>(al % base));
      return false;
    }
    case 0xD5: {  // aad imm8
      const auto base = static_cast<std::uint8_t>(insn.immediate);
      const std::uint8_t result = static_cast<std::uint8_t>(al + ((eax >> 8) & 0xFF) * base);
      eax = (eax & ~0xFFFFu) | result;
      set_result_flags(result);
      return false;
    }
    case 0xD6:  // salc
      set_al(flag(kCf) ? 0xFF : 0);
      return false;
    case 0xCE:  // into: a trap, reported after the instruction
      if (!flag(kOf)) return false;
      return Raise(
          {kOverflow, GuestEvent::Source::kSoftwareException, false, 0, insn.next_eip(), insn.eip});
    case 0x62: {  // bound
      std::uint32_t bounds[2] = {};
      if (!ReadOperand(state_->effective_address, &bounds[0], size) ||
          !ReadOperand(state_->effective_address + size, &bounds[1], size)) {
        break;
      }
      const std::int32_t index = SignExtend(state_->gpr[insn.reg_gpr], size);
      if (index < SignExtend(bounds[0], size) || index > SignExtend(bounds[1], size)) {
        return RaiseFault(kBoundRange, insn);
      }
      return false;
    }
    case 0x63: {  // arpl r/m16, r16
      std::uint16_t destination = 0;
      if (insn.has_memory) {
        if (!ReadOperand(state_->effective_address, &destination, 2)) break;
      } else {
        destination = static_cast<std::uint16_t>(state_->gpr[insn.rm_gpr]);
      }
      const auto source_rpl = static_cast<std::uint16_t>(state_->gpr[insn.reg_gpr] & 3);
      const bool raise = (destination & 3) < source_rpl;
      set_flag(kZf, raise);
      if (!raise) return false;
      destination = static_cast<std::uint16_t>((destination & ~3) | source_rpl);
      if (insn.has_memory) {
        if (!WriteOperand(state_->effective_address, &destination, 2)) break;
      } else {
        WriteRegister(insn.rm_gpr, 2, destination);
      }
      return false;
    }
    case 0xC4:    // les
    case 0xC5:    // lds
    case 0x0F: {  // lss, lfs, lgs
      unsigned segment = opcode[0] == 0xC4 ? translator::kEs : translator::kDs;
      if (opcode[0] == 0x0F) {
        segment = opcode[1] == 0xB2   ? translator::kSs
                  : opcode[1] == 0xB4 ? translator::kFs
                                      : translator::kGs;
      }
      std::uint32_t offset = 0;
      std::uint16_t selector = 0;
      if (!ReadOperand(state_->effective_address, &offset, size) ||
          !ReadOperand(state_->effective_address + size, &selector, 2)) {
        break;
      }
      if (!LoadSegment(segment, selector, insn)) return true;
      WriteRegister(insn.reg_gpr, size, offset);
      return AfterSegmentLoad(segment, insn.next_eip());
    }
    case 0x9A:    // call ptr16:32
    case 0xFF: {  // call m16:32
      std::uint32_t offset = static_cast<std::uint32_t>(insn.immediate);
      std::uint16_t selector = static_cast<std::uint16_t>(insn.immediate2);
      if (opcode[0] == 0xFF) {
        offset = 0;
        if (!ReadOperand(state_->effective_address, &offset, size) ||
            !ReadOperand(state_->effective_address + size, &selector, 2)) {
          break;
        }
      }
      return FarTransfer(insn, selector, offset, /*call=*/true);
    }
    case 0xCA:    // retf imm16
    case 0xCB: {  // retf
      const std::uint32_t esp = state_->gpr[kEsp];
      std::uint32_t eip = 0, selector = 0;
      const auto frame = StackAddress(esp, 2 * size, false);
      if (!frame) return RaiseFault(kStackFault, insn, 0);
      if (!ReadOperand(*frame, &eip, size) || !ReadOperand(*frame + size, &selector, size)) break;
      // The immediate releases parameters on both stacks (SDM Vol. 2B RET).
      const std::uint32_t release = opcode[0] == 0xCA ? insn.immediate & 0xFFFF : 0;
      ReturnTarget target;
      GuestEvent nested;
      if (Delivery checked =
              CheckReturn(static_cast<std::uint16_t>(selector), eip, esp + 2 * size + release, size,
                          InstructionCause(insn), target, nested);
          checked != Delivery::kDone) {
        return FailCheck(checked, nested, insn);
      }
      state_->gpr[kEsp] = (target.outer ? target.esp : esp + 2 * size) + release;
      LoadReturnSegments(target);
      return ExitWith(std::nullopt, eip);
    }
    default: break;
  }
  if (access_fault_) return RaiseAccessFault(insn);
  return ExitWith(
      MakeInstructionStop(StopReason::kUnsupportedInstruction, insn, "unsupported instruction"),
      insn.eip);
}

}  // namespace bt::runtime
