// Private to the instruction-form sources (forms.cc, form_cases.cc,
// machine_state.cc): the Zydis decoding they share, the guest register
// numbers, little-endian access to a test case's data pages, and the value
// helpers that case generation borrows from the initial-state code.
#pragma once

#include "forms.h"

#include <Zydis/Zydis.h>

#include <algorithm>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <span>
#include <string>
#include <vector>

namespace bt::conformance {

enum : int { kEax, kEcx, kEdx, kEbx, kEsp, kEbp, kEsi, kEdi };
constexpr std::uint32_t kDirectionFlag = 0x400;

struct Decoded {
  ZydisDecodedInstruction instruction;
  ZydisDecodedOperand operands[ZYDIS_MAX_OPERAND_COUNT];

  std::span<const ZydisDecodedOperand> Operands() const {
    return {operands, instruction.operand_count};
  }
  // The operand ModRM.rm encodes, or nullptr.
  const ZydisDecodedOperand* RmOperand() const {
    for (const auto& op : Operands()) {
      if (op.encoding == ZYDIS_OPERAND_ENCODING_MODRM_RM) return &op;
    }
    return nullptr;
  }
  const ZydisDecodedOperand* ExplicitMemory() const {
    for (const auto& op : Operands()) {
      if (op.type == ZYDIS_OPERAND_TYPE_MEMORY && op.visibility != ZYDIS_OPERAND_VISIBILITY_HIDDEN)
        return &op;
    }
    return nullptr;
  }
};

inline bool Decode(std::span<const std::uint8_t> bytes, Decoded& out) {
  static const ZydisDecoder decoder = [] {
    ZydisDecoder d;
    ZydisDecoderInit(&d, ZYDIS_MACHINE_MODE_LEGACY_32, ZYDIS_STACK_WIDTH_32);
    return d;
  }();
  return ZYAN_SUCCESS(
      ZydisDecoderDecodeFull(&decoder, bytes.data(), bytes.size(), &out.instruction, out.operands));
}

// Register number (EAX=0 .. EDI=7) of a general register of any width, or -1.
inline int GprNumber(ZydisRegister reg) {
  switch (ZydisRegisterGetClass(reg)) {
    case ZYDIS_REGCLASS_GPR8: return ZydisRegisterGetId(reg) & 3;
    case ZYDIS_REGCLASS_GPR16:
    case ZYDIS_REGCLASS_GPR32: return ZydisRegisterGetId(reg);
    default: return -1;
  }
}

inline bool IsControlTransfer(const Decoded& d) {
  switch (d.instruction.meta.category) {
    case ZYDIS_CATEGORY_COND_BR:
    case ZYDIS_CATEGORY_UNCOND_BR:
    case ZYDIS_CATEGORY_CALL:
    case ZYDIS_CATEGORY_RET: return true;
    default: return false;
  }
}

inline bool IsShiftOrRotate(ZydisMnemonic m) {
  static constexpr ZydisMnemonic kShifts[] = {
      ZYDIS_MNEMONIC_SHL, ZYDIS_MNEMONIC_SHR,  ZYDIS_MNEMONIC_SAR,
      ZYDIS_MNEMONIC_ROL, ZYDIS_MNEMONIC_ROR,  ZYDIS_MNEMONIC_RCL,
      ZYDIS_MNEMONIC_RCR, ZYDIS_MNEMONIC_SHLD, ZYDIS_MNEMONIC_SHRD};
  return std::find(std::begin(kShifts), std::end(kShifts), m) != std::end(kShifts);
}

inline bool IsDoubleShift(ZydisMnemonic m) {
  return m == ZYDIS_MNEMONIC_SHLD || m == ZYDIS_MNEMONIC_SHRD;
}

inline std::string Hex(std::span<const std::uint8_t> bytes) {
  static constexpr char kDigits[] = "0123456789ABCDEF";
  std::string out;
  for (std::uint8_t b : bytes) {
    if (!out.empty()) out += ' ';
    out += kDigits[b >> 4];
    out += kDigits[b & 15];
  }
  return out;
}

template <typename T, std::size_t N>
const T& Pick(RandomSource& random, const T (&items)[N]) {
  return items[random.Below(N)];
}

inline void PutLittleEndian(std::uint8_t* out, std::uint64_t value, unsigned bytes) {
  for (unsigned i = 0; i < bytes; ++i) out[i] = static_cast<std::uint8_t>(value >> (8 * i));
}

inline std::uint64_t GetLittleEndian(const std::uint8_t* in, unsigned bytes) {
  std::uint64_t value = 0;
  for (unsigned i = 0; i < bytes; ++i) value |= std::uint64_t{in[i]} << (8 * i);
  return value;
}

inline std::uint8_t* DataAt(TestCase& test, std::uint32_t linear, unsigned bytes) {
  assert(linear >= CONF_DATA_ADDRESS && linear - CONF_DATA_ADDRESS + bytes <= CONF_DATA_BYTES);
  (void)bytes;
  return &test.data[linear - CONF_DATA_ADDRESS];
}

// Every kept form, in opcode-map order: what EnumerateForms() copies (forms.cc).
const std::vector<InstructionForm>& EnumeratedForms();

// Initial values that case generation also writes (machine_state.cc).
std::uint32_t RandomMxcsr(RandomSource& random);
std::uint16_t RandomFpuControlWord(RandomSource& random);
// An edge value of the operand's type at `linear`.
void WriteOperandValue(TestCase& test, std::uint32_t linear, const ZydisDecodedOperand& op,
                       RandomSource& random);

}  // namespace bt::conformance
