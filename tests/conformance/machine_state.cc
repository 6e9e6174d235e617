// The machine state around one instruction: InitializeState fills a test
// case's registers, flags, x87/SSE state and data pages from pools of edge
// values (integers, float32/64/80, MXCSR and x87 control words), and Analyze
// says what an instruction does to that state - registers read and written,
// stack and memory operands, flags tested, defined and left undefined.
#include "forms_internal.h"

#include <Zydis/Zydis.h>

#include <algorithm>
#include <optional>
#include <span>
#include <vector>

namespace bt::conformance {
namespace {

constexpr std::uint32_t kEdgeValues[] = {0,          1,          0xFFFFFFFF, 0x7F,      0x80,
                                         0xFF,       0x7FFF,     0x8000,     0xFFFF,    0x7FFFFFFF,
                                         0x80000000, 2,          0xFFFFFFFE, 0x100,     0x10000,
                                         0xFFFFFF80, 0xFFFF8000, 0x55555555, 0xAAAAAAAA};
// ±0, ±1, ±inf, ±QNaN, SNaN, denormals, min and max normal, pi, 0.5, ±2^31, 2^23.
constexpr std::uint32_t kFloat32Edges[] = {
    0x00000000, 0x80000000, 0x3F800000, 0xBF800000, 0x7F800000, 0xFF800000,
    0x7FC00000, 0xFFC00000, 0x7FA00000, 0x00000001, 0x807FFFFF, 0x00800000,
    0x7F7FFFFF, 0x40490FDB, 0x3F000000, 0x4F000000, 0xCF000000, 0x4B000000};
constexpr std::uint64_t kFloat64Edges[] = {
    0x0000000000000000, 0x8000000000000000, 0x3FF0000000000000, 0xBFF0000000000000,
    0x7FF0000000000000, 0xFFF0000000000000, 0x7FF8000000000000, 0xFFF8000000000000,
    0x7FF4000000000000, 0x0000000000000001, 0x800FFFFFFFFFFFFF, 0x0010000000000000,
    0x7FEFFFFFFFFFFFFF, 0x400921FB54442D18, 0x3FE0000000000000, 0x41E0000000000000,
    0xC1E0000000000000, 0x43E0000000000000};
struct Float80 {
  std::uint64_t mantissa;
  std::uint16_t sign_exponent;
};
constexpr std::uint64_t kJ = std::uint64_t{1} << 63;  // the explicit integer bit
constexpr Float80 kFloat80Edges[] = {{0, 0},
                                     {0, 0x8000},
                                     {kJ, 0x3FFF},
                                     {kJ, 0xBFFF},
                                     {kJ, 0x7FFF},
                                     {kJ, 0xFFFF},
                                     {0xC000000000000000, 0x7FFF},
                                     {0xC000000000000000, 0xFFFF},
                                     {0xA000000000000000, 0x7FFF},
                                     {1, 0},
                                     {0x7FFFFFFFFFFFFFFF, 0x8000},
                                     {~std::uint64_t{0}, 0x7FFE},
                                     {kJ, 0x0001},
                                     {0xC90FDAA22168C235, 0x4000},
                                     {kJ, 0x4000},
                                     {0xA000000000000000, 0x4002},
                                     {kJ, 0x3FFE},
                                     {kJ, 0x403E},
                                     {kJ, 0xC01E}};

Float80 RandomFloat80(RandomSource& random) {
  switch (random.Below(4)) {
    case 0:
    case 1: return Pick(random, kFloat80Edges);
    case 2: {  // a finite normal number near 1
      const auto exponent = static_cast<std::uint16_t>(0x3FFF - 64 + random.Below(129));
      return {random.Below(0) | kJ, static_cast<std::uint16_t>(exponent | (random.Below(2) << 15))};
    }
    default: return {random.Below(0), 0xFFFF};  // what an MMX write leaves
  }
}

void FillFxsave(std::uint8_t* image, RandomSource& random) {
  std::fill(image, image + 512, std::uint8_t{0});
  PutLittleEndian(image, RandomFpuControlWord(random), 2);
  const unsigned top = static_cast<unsigned>(random.Below(8));
  const unsigned depth = static_cast<unsigned>(random.Below(9));
  // TOP and random condition codes C0-C3; no pending exceptions.
  PutLittleEndian(image + 2, top << 11 | (random.Bits32() & 0x4700), 2);
  std::uint8_t tags = 0;  // abridged: one bit per physical register, 1 = valid
  for (unsigned i = 0; i < depth; ++i) {
    tags |= static_cast<std::uint8_t>(1u << ((top + i) & 7));
    const Float80 value = RandomFloat80(random);
    PutLittleEndian(image + 32 + 16 * i, value.mantissa, 8);
    PutLittleEndian(image + 40 + 16 * i, value.sign_exponent, 2);
  }
  image[4] = tags;
  PutLittleEndian(image + 24, RandomMxcsr(random), 4);
  for (unsigned i = 0; i < 8; ++i) {
    std::uint8_t* xmm = image + 160 + 16 * i;
    switch (random.Below(4)) {
      case 0:
        for (unsigned lane = 0; lane < 4; ++lane)
          PutLittleEndian(xmm + 4 * lane, Pick(random, kFloat32Edges), 4);
        break;
      case 1:
        for (unsigned lane = 0; lane < 2; ++lane)
          PutLittleEndian(xmm + 8 * lane, Pick(random, kFloat64Edges), 8);
        break;
      case 2:
        for (unsigned lane = 0; lane < 4; ++lane)
          PutLittleEndian(xmm + 4 * lane, EdgeValue32(random), 4);
        break;
      default:
        for (unsigned lane = 0; lane < 4; ++lane)
          PutLittleEndian(xmm + 4 * lane, random.Bits32(), 4);
        break;
    }
  }
}

void FillData(std::vector<std::uint8_t>& data, RandomSource& random) {
  for (std::size_t block = 0; block < data.size(); block += 16) {
    std::uint8_t* p = &data[block];
    switch (random.Below(8)) {
      case 0:
      case 1:
      case 2:
        for (unsigned i = 0; i < 4; ++i) PutLittleEndian(p + 4 * i, random.Bits32(), 4);
        break;
      case 3:
      case 4:
        for (unsigned i = 0; i < 4; ++i) PutLittleEndian(p + 4 * i, EdgeValue32(random), 4);
        break;
      case 5:
        for (unsigned i = 0; i < 4; ++i) PutLittleEndian(p + 4 * i, Pick(random, kFloat32Edges), 4);
        break;
      case 6:
        for (unsigned i = 0; i < 2; ++i) PutLittleEndian(p + 8 * i, Pick(random, kFloat64Edges), 8);
        break;
      default: {
        const Float80 value = RandomFloat80(random);
        PutLittleEndian(p, value.mantissa, 8);
        PutLittleEndian(p + 8, value.sign_exponent, 2);
        PutLittleEndian(p + 10, random.Below(0), 6);
        break;
      }
    }
  }
}

}  // namespace

std::uint32_t RandomMxcsr(RandomSource& random) {
  std::uint32_t mxcsr = 0x1F80 | static_cast<std::uint32_t>(random.Below(4)) << 13;
  if (random.OneIn(4)) mxcsr |= 0x8000;  // FTZ
  if (random.OneIn(4)) mxcsr |= 0x0040;  // DAZ
  if (random.OneIn(4)) {                 // unmask some exceptions: #XM when they occur
    mxcsr &= ~((static_cast<std::uint32_t>(random.Below(64)) | 1u << random.Below(6)) << 7);
  }
  return mxcsr;
}

std::uint16_t RandomFpuControlWord(RandomSource& random) {
  static constexpr std::uint16_t kPrecision[] = {0, 2, 3};  // single, double, extended
  std::uint16_t fcw = 0x40 | 0x3F | Pick(random, kPrecision) << 8 |
                      static_cast<std::uint16_t>(random.Below(4) << 10);
  if (random.OneIn(4)) {  // unmask some exceptions: #MF at the next waiting x87 instruction
    fcw &= static_cast<std::uint16_t>(~(random.Below(64) | 1u << random.Below(6)));
  }
  return fcw;
}

// An edge value of the operand's type at `linear`.
void WriteOperandValue(TestCase& test, std::uint32_t linear, const ZydisDecodedOperand& op,
                       RandomSource& random) {
  const unsigned bytes = op.size / 8;
  if (bytes == 0) return;
  std::uint8_t* p = DataAt(test, linear, bytes);
  switch (op.element_type) {
    case ZYDIS_ELEMENT_TYPE_FLOAT32:
      for (unsigned i = 0; i + 4 <= bytes; i += 4)
        PutLittleEndian(p + i, Pick(random, kFloat32Edges), 4);
      return;
    case ZYDIS_ELEMENT_TYPE_FLOAT64:
      for (unsigned i = 0; i + 8 <= bytes; i += 8)
        PutLittleEndian(p + i, Pick(random, kFloat64Edges), 8);
      return;
    case ZYDIS_ELEMENT_TYPE_FLOAT80:
      if (bytes == 10) {
        const Float80 value = RandomFloat80(random);
        PutLittleEndian(p, value.mantissa, 8);
        PutLittleEndian(p + 8, value.sign_exponent, 2);
      }
      return;
    case ZYDIS_ELEMENT_TYPE_LONGBCD:
      for (unsigned i = 0; i + 1 < bytes; ++i) {
        p[i] = static_cast<std::uint8_t>(random.Below(10) << 4 | random.Below(10));
      }
      p[bytes - 1] = random.OneIn(2) ? 0x80 : 0x00;
      return;
    default:
      for (unsigned i = 0; i < bytes; i += 4)
        PutLittleEndian(p + i, EdgeValue32(random), std::min(4u, bytes - i));
      return;
  }
}

InstructionEffects Analyze(std::span<const std::uint8_t> code, std::optional<std::uint32_t> count) {
  InstructionEffects e;
  Decoded d;
  if (!Decode(code, d)) return e;
  const ZydisDecodedInstruction& in = d.instruction;
  e.valid = true;
  e.length = in.length;
  e.mnemonic = ZydisMnemonicGetString(in.mnemonic);
  e.operand_bits = in.operand_width;
  for (const auto& op : d.Operands()) {
    if (op.type == ZYDIS_OPERAND_TYPE_REGISTER) {
      const int n = GprNumber(op.reg.value);
      if (n < 0) continue;
      if (op.actions & ZYDIS_OPERAND_ACTION_MASK_READ)
        e.gprs_read |= static_cast<std::uint8_t>(1u << n);
      if (op.actions & ZYDIS_OPERAND_ACTION_MASK_WRITE) {
        e.gprs_written |= static_cast<std::uint8_t>(1u << n);
        if (op.visibility != ZYDIS_OPERAND_VISIBILITY_HIDDEN)
          e.gprs_written_explicitly |= static_cast<std::uint8_t>(1u << n);
      }
    } else if (op.type == ZYDIS_OPERAND_TYPE_MEMORY) {
      const int base = GprNumber(op.mem.base), index = GprNumber(op.mem.index);
      if (base >= 0) e.gprs_read |= static_cast<std::uint8_t>(1u << base);
      if (index >= 0) e.gprs_read |= static_cast<std::uint8_t>(1u << index);
      if (op.encoding == ZYDIS_OPERAND_ENCODING_MODRM_RM) {
        e.has_modrm_memory = true;
        e.modrm_memory_bytes = op.mem.type == ZYDIS_MEMOP_TYPE_AGEN ? 0 : op.size / 8;
      } else if (base == kEsp) {
        e.uses_stack = true;
        e.stack_bytes = op.size / 8;
      } else if (base >= 0) {
        e.implicit_memory_bases |= static_cast<std::uint8_t>(1u << base);
      }
    }
  }
  e.branches = IsControlTransfer(d);
  e.string_operation = in.meta.category == ZYDIS_CATEGORY_STRINGOP;
  e.repeated =
      in.attributes & (ZYDIS_ATTRIB_HAS_REP | ZYDIS_ATTRIB_HAS_REPE | ZYDIS_ATTRIB_HAS_REPNE);
  if (in.cpu_flags) {
    const ZydisAccessedFlags& f = *in.cpu_flags;
    e.flags_tested = f.tested & kArithmeticFlags;
    e.flags_undefined = f.undefined & kArithmeticFlags;
    e.flags_defined = (f.modified | f.set_0 | f.set_1) & kArithmeticFlags & ~e.flags_undefined;
  }
  if (e.string_operation && e.repeated) e.flags_defined = 0;  // ECX=0 writes nothing
  const ZydisMnemonic m = in.mnemonic;
  if (IsShiftOrRotate(m)) {
    // SDM Vol. 2: a masked count of 0 changes no flag; SHL/SHR leave CF
    // undefined for counts of at least the operand size, SHLD/SHRD leave
    // everything undefined for counts above it. Zydis already has OF and AF.
    const ZydisDecodedOperand& count_operand = d.operands[IsDoubleShift(m) ? 2 : 1];
    if (count_operand.type == ZYDIS_OPERAND_TYPE_IMMEDIATE)
      count = static_cast<std::uint32_t>(count_operand.imm.value.u);
    const unsigned bits = d.operands[0].size;
    const bool plain_shift = m == ZYDIS_MNEMONIC_SHL || m == ZYDIS_MNEMONIC_SHR;
    if (!count) {
      e.flags_defined = 0;
      if (plain_shift && bits < 32) e.flags_undefined |= 0x001;
      if (IsDoubleShift(m) && bits == 16) e.flags_undefined = kArithmeticFlags;
    } else if ((*count & 0x1F) == 0) {
      e.flags_defined = e.flags_undefined = 0;
    } else {
      const unsigned masked = *count & 0x1F;
      // Zydis calls OF undefined for every count; the SDM defines it for 1.
      if (masked == 1) e.flags_undefined &= ~0x800u;
      if (plain_shift && masked >= bits) e.flags_undefined |= 0x001;
      if (IsDoubleShift(m) && masked > bits) e.flags_undefined = kArithmeticFlags;
      e.flags_defined &= ~e.flags_undefined;
      if (masked == 1) e.flags_defined |= 0x800;
    }
  }
  return e;
}

std::uint32_t EdgeValue32(RandomSource& random) {
  switch (random.Below(8)) {
    case 0:
    case 1:
    case 2: return Pick(random, kEdgeValues);
    case 3: return random.Bits32();
    case 4: return static_cast<std::uint32_t>(random.Below(64));
    case 5:
      return (Pick(random, kEdgeValues) & 0xFF) << (8 * random.Below(4)) | (random.Bits32() & 0xFF);
    case 6: return (random.Bits32() & 0xFFFF0000) | (Pick(random, kEdgeValues) & 0xFFFF);
    default: return (random.Bits32() & 0xFFFFFF00) | (Pick(random, kEdgeValues) & 0xFF);
  }
}

void InitializeState(TestCase& test, RandomSource& random) {
  for (std::uint32_t& gpr : test.initial.gpr) gpr = EdgeValue32(random);
  test.initial.gpr[kEsp] = kStackTop;
  test.initial.eflags = 0x202 | (random.Bits32() & (kArithmeticFlags | kDirectionFlag));
  FillFxsave(test.initial.fxsave, random);
  test.data.assign(CONF_DATA_BYTES, 0);
  FillData(test.data, random);
}

}  // namespace bt::conformance
