// Test cases for the instruction forms: GenerateCases picks the operands,
// addresses, immediates and segment bases of each instance, solves register
// values so that memory operands, stack and string ranges and branch targets
// land in the data and code pages, and steers values towards interesting
// outcomes (no #DE, cmpxchg matches, repe runs); GenerateAddressingCases
// covers every ModRM/SIB addressing form. Encode writes an instance's bytes.
#include "forms_internal.h"

#include <Zydis/Zydis.h>

#include <algorithm>
#include <array>
#include <cassert>
#include <optional>
#include <string>
#include <vector>

namespace bt::conformance {
namespace {

constexpr std::uint32_t kCodeEnd = CONF_CODE_ADDRESS + CONF_CODE_BYTES;

std::uint32_t ReadGpr(const std::uint32_t (&gpr)[8], ZydisRegister reg) {
  const int id = ZydisRegisterGetId(reg);
  switch (ZydisRegisterGetClass(reg)) {
    case ZYDIS_REGCLASS_GPR8: return id < 4 ? gpr[id] & 0xFF : (gpr[id - 4] >> 8) & 0xFF;
    case ZYDIS_REGCLASS_GPR16: return gpr[id] & 0xFFFF;
    default: return gpr[id];
  }
}

bool IsBitTest(ZydisMnemonic m) {
  return m == ZYDIS_MNEMONIC_BT || m == ZYDIS_MNEMONIC_BTS || m == ZYDIS_MNEMONIC_BTR ||
         m == ZYDIS_MNEMONIC_BTC;
}

bool IsLoop(ZydisMnemonic m) {
  return m == ZYDIS_MNEMONIC_LOOP || m == ZYDIS_MNEMONIC_LOOPE || m == ZYDIS_MNEMONIC_LOOPNE ||
         m == ZYDIS_MNEMONIC_JCXZ || m == ZYDIS_MNEMONIC_JECXZ;
}

// Shift and rotate counts around the operand sizes and the 5-bit mask.
constexpr std::uint32_t kCounts[] = {0, 1, 7, 8, 15, 16, 31, 32, 33, 63, 255};
// shld/shrd r/m16 leave the result undefined for masked counts above 16.
constexpr std::uint32_t kCounts16DoubleShift[] = {0, 1, 7, 8, 15, 16, 32, 33, 39, 48};

// A base for FS or GS under which `linear` has a valid offset: small, or
// large enough that base + offset wraps around 4 GiB.
std::uint32_t ChooseSegmentBase(std::uint32_t linear, unsigned bytes, RandomSource& random) {
  for (;;) {
    std::uint32_t base = 0;
    switch (random.Below(4)) {
      case 0: base = 1 + static_cast<std::uint32_t>(random.Below(linear)); break;
      case 1: base = linear - static_cast<std::uint32_t>(random.Below(0x100)); break;
      case 2: base = 0xFFFFF000 + static_cast<std::uint32_t>(random.Below(0x1000)); break;
      default: base = random.Bits32(); break;
    }
    const std::uint32_t offset = linear - base;
    // The segment is expand-up with a 4 GiB limit: the access must not pass it.
    if (base != 0 && offset <= 0xFFFFFFFFu - bytes) return base;
  }
}

void SetSegmentBase(TestCase& test, ZydisRegister segment, std::uint32_t base) {
  if (segment == ZYDIS_REGISTER_FS) test.fs_base = base;
  if (segment == ZYDIS_REGISTER_GS) test.gs_base = base;
}

// Builds one test case of a form.
class CaseBuilder {
 public:
  CaseBuilder(const InstructionForm& form, RandomSource& random) : form_(form), random_(random) {
    [[maybe_unused]] const bool decoded = Decode(form_.encoding, template_);
    assert(decoded);
    test_.instruction_class = form_.instruction_class;
    test_.form = form_.key;
    InitializeState(test_, random_);
  }

  TestCase Build(bool memory) {
    instance_.memory = memory;
    ChooseOperands();
    FixImplicitRegisters();
    if (memory) instance_.address = ChooseAddress();
    Finish();
    return std::move(test_);
  }

  // The addressing coverage: a given ModRM/SIB form and no stack.
  TestCase BuildWithAddress(const ModRmAddress& address, std::string form) {
    instance_.memory = true;
    instance_.reg = static_cast<std::uint8_t>(random_.Below(8));
    instance_.address = address;
    if (address.address16) instance_.segment_prefix = random_.OneIn(2) ? 0x64 : 0x65;
    test_.instruction_class = "addressing";
    test_.form = std::move(form);
    Finish();
    return std::move(test_);
  }

 private:
  void Finish() {
    test_.code = Encode(form_, instance_);
    [[maybe_unused]] const bool decoded = Decode(test_.code, decoded_);
    assert(decoded);
    // ESP as a plain operand may hold anything: nothing uses the stack.
    if (!UsesStack() && !instance_.memory && NamesEsp())
      test_.initial.gpr[kEsp] = EdgeValue32(random_);
    if (instance_.memory || form_.moffs_bytes) PlaceMemoryOperand();
    SetBranchTarget();
    AdjustValues();
    test_.code = Encode(form_, instance_);
    std::optional<std::uint32_t> count;
    for (const auto& op : decoded_.Operands()) {
      if (op.type == ZYDIS_OPERAND_TYPE_REGISTER && op.reg.value == ZYDIS_REGISTER_CL) {
        count = Gpr(kEcx) & 0xFF;
      }
    }
    test_.undefined_flags = Analyze(test_.code, count).flags_undefined;
  }

  std::uint32_t Gpr(int number) const { return test_.initial.gpr[number]; }
  bool Fixed(int number) const { return fixed_[number]; }
  void SetRegister(int number, std::uint32_t value) {
    fixed_[number] = true;
    test_.initial.gpr[number] = value;
  }
  ZydisMnemonic Mnemonic() const { return template_.instruction.mnemonic; }
  bool UsesStack() const {
    for (const auto& op : template_.Operands()) {
      if (op.type == ZYDIS_OPERAND_TYPE_MEMORY && op.encoding == ZYDIS_OPERAND_ENCODING_NONE &&
          op.mem.base == ZYDIS_REGISTER_ESP)
        return true;
    }
    return false;
  }
  bool NamesEsp() const {
    for (const auto& op : decoded_.Operands()) {
      if (op.type == ZYDIS_OPERAND_TYPE_REGISTER &&
          op.visibility != ZYDIS_OPERAND_VISIBILITY_HIDDEN && GprNumber(op.reg.value) == kEsp &&
          ZydisRegisterGetClass(op.reg.value) != ZYDIS_REGCLASS_GPR8)
        return true;
    }
    return false;
  }
  bool IsString() const { return template_.instruction.meta.category == ZYDIS_CATEGORY_STRINGOP; }

  void ChooseOperands() {
    if (form_.reg_is_operand) instance_.reg = static_cast<std::uint8_t>(random_.Below(8));
    if (form_.rm_is_operand) instance_.rm = static_cast<std::uint8_t>(random_.Below(8));
    if (form_.opcode_has_register)
      instance_.opcode_register = static_cast<std::uint8_t>(random_.Below(8));
    // call esp would push its return address onto its own target.
    if (IsControlTransfer(template_) && instance_.rm == kEsp) instance_.rm = kEax;
    instance_.immediates = ChooseImmediates(form_, random_);
    static constexpr std::uint8_t kOverrides[] = {0x64, 0x65, 0x3E, 0x26, 0x36};
    bool source_string = false;
    for (const auto& op : template_.Operands()) {
      source_string |=
          IsString() && op.type == ZYDIS_OPERAND_TYPE_MEMORY && op.mem.base == ZYDIS_REGISTER_ESI;
    }
    if (instance_.memory || form_.moffs_bytes || source_string) {
      const std::uint64_t choice = random_.Below(2 * std::size(kOverrides) + 2);
      if (choice < std::size(kOverrides)) instance_.segment_prefix = kOverrides[choice];
    }
  }

  void FixImplicitRegisters() {
    const ZydisMnemonic m = Mnemonic();
    if (UsesStack() || instance_.memory)
      SetRegister(kEsp, kStackTop - 4 * static_cast<std::uint32_t>(random_.Below(8)));
    if (IsString()) {
      SetUpString();
    } else {
      for (const auto& op : template_.Operands()) {  // xlat [ebx+al], maskmovq [edi]
        const int base = GprNumber(op.mem.base);
        if (op.type == ZYDIS_OPERAND_TYPE_MEMORY && op.encoding == ZYDIS_OPERAND_ENCODING_NONE &&
            base >= 0 && base != kEsp) {
          SetRegister(base, CONF_DATA_ADDRESS +
                                static_cast<std::uint32_t>(random_.Below(CONF_DATA_BYTES - 256)));
        }
      }
    }
    if (IsShiftOrRotate(m)) {
      for (const auto& op : template_.Operands().subspan(1)) {
        if (op.type == ZYDIS_OPERAND_TYPE_REGISTER && op.reg.value == ZYDIS_REGISTER_CL) {
          const std::uint32_t count = IsDoubleShift(m) && template_.instruction.operand_width == 16
                                          ? Pick(random_, kCounts16DoubleShift)
                                          : Pick(random_, kCounts);
          SetRegister(kEcx, (random_.Bits32() & ~0xFFu) | count);
        }
      }
    }
    if (m == ZYDIS_MNEMONIC_ENTER) {  // nesting levels copy frame pointers from below EBP
      SetRegister(kEbp,
                  CONF_DATA_ADDRESS + 0x200 + 4 * static_cast<std::uint32_t>(random_.Below(0x400)));
    }
    if (m == ZYDIS_MNEMONIC_LEAVE)
      SetRegister(kEbp, kStackTop - 4 * static_cast<std::uint32_t>(random_.Below(32)));
    if (IsLoop(m)) {
      const std::uint32_t counts[] = {0, 1, 2, 0x10000, random_.Bits32()};
      SetRegister(kEcx, Pick(random_, counts));
    }
    if (IsBitTest(m) && instance_.memory && form_.reg_is_operand) {
      // The register bit offset reaches beyond the operand: keep it small.
      while (Fixed(instance_.reg)) instance_.reg = static_cast<std::uint8_t>(random_.Below(8));
      const std::uint32_t offsets[] = {
          0,          1,
          7,          31,
          32,         0xFFFFFFFF,
          0xFFFFFFE0, 255,
          0xFFFFFF00, static_cast<std::uint32_t>(random_.Below(4096)) - 2048};
      SetRegister(instance_.reg, Pick(random_, offsets));
      region_begin_ = CONF_DATA_ADDRESS + 0x200;
      region_end_ = kDataEnd - 0x200;
    }
  }

  void SetUpString() {
    const bool repeated = template_.instruction.attributes &
                          (ZYDIS_ATTRIB_HAS_REP | ZYDIS_ATTRIB_HAS_REPE | ZYDIS_ATTRIB_HAS_REPNE);
    const std::uint32_t count = repeated ? static_cast<std::uint32_t>(random_.Below(41)) : 1;
    if (repeated) SetRegister(kEcx, count);
    const bool down = test_.initial.eflags & kDirectionFlag;
    for (const auto& op : template_.Operands()) {
      if (op.type != ZYDIS_OPERAND_TYPE_MEMORY) continue;
      const std::uint32_t size = op.size / 8;
      const std::uint32_t span = std::max(count, 1u) * size;
      const std::uint32_t lowest =
          CONF_DATA_ADDRESS + static_cast<std::uint32_t>(random_.Below(CONF_DATA_BYTES - span + 1));
      const std::uint32_t start = down ? lowest + span - size : lowest;
      std::uint32_t offset = start;
      if (op.mem.base == ZYDIS_REGISTER_ESI &&
          (instance_.segment_prefix == 0x64 || instance_.segment_prefix == 0x65)) {
        const std::uint32_t base = ChooseSegmentBase(lowest, span, random_);
        SetSegmentBase(
            test_, instance_.segment_prefix == 0x64 ? ZYDIS_REGISTER_FS : ZYDIS_REGISTER_GS, base);
        offset = start - base;
      }
      SetRegister(GprNumber(op.mem.base), offset);
      string_ranges_.push_back({op.mem.base, lowest, repeated ? count * size : size});
    }
  }

  ModRmAddress ChooseAddress() {
    int base = static_cast<int>(random_.Below(8));
    // pop [esp+x] computes the address after incrementing ESP.
    if (base == kEsp && UsesStack()) base = kEbx;
    int index = static_cast<int>(random_.Below(7));
    if (index >= kEsp) ++index;
    const unsigned scale = 1u << random_.Below(4);
    unsigned displacement = 0;
    bool has_base = true, has_index = false;
    switch (random_.Below(8)) {
      case 0:
        has_base = false;
        displacement = 4;
        break;
      case 1:
      case 2: break;
      case 3: displacement = 1; break;
      case 4: displacement = 4; break;
      case 5:
      case 6:
        has_index = true;
        displacement = random_.OneIn(2) ? 1 : 0;
        break;
      default:
        has_index = true;
        has_base = random_.OneIn(2);
        displacement = 4;
        break;
    }
    if (has_base && Fixed(base)) displacement = 4;  // the displacement absorbs the fixed value
    return ModRmAddress::Make(has_base ? base : -1, has_index ? index : -1, scale, displacement);
  }

  // A linear address for `bytes` inside the region: mostly naturally
  // aligned, sometimes misaligned or straddling a page boundary.
  std::uint32_t ChooseTarget(unsigned bytes) {
    const std::uint32_t begin = region_begin_ + 16, end = region_end_;
    if (bytes > 1 && random_.OneIn(8)) {
      std::vector<std::uint32_t> pages;
      for (std::uint32_t page = CONF_DATA_ADDRESS + 0x1000; page < kDataEnd; page += 0x1000) {
        if (page - bytes >= begin && page + bytes <= end) pages.push_back(page);
      }
      if (!pages.empty()) {
        return pages[random_.Below(pages.size())] - 1 -
               static_cast<std::uint32_t>(random_.Below(bytes - 1));
      }
    }
    std::uint32_t align = 1;
    while (align * 2 <= bytes && align < 16) align *= 2;
    const std::uint32_t first = (begin + align - 1) & ~(align - 1);
    std::uint32_t target = first + align * static_cast<std::uint32_t>(
                                               random_.Below((end - bytes - first) / align + 1));
    if (align > 1 && random_.OneIn(bytes >= 16 ? 6 : 4)) {
      const std::uint32_t misaligned =
          target + 1 + static_cast<std::uint32_t>(random_.Below(align - 1));
      if (misaligned + bytes <= end) target = misaligned;
    }
    return target;
  }

  void PlaceMemoryOperand() {
    const ZydisDecodedOperand* op = decoded_.ExplicitMemory();
    assert(op);
    memory_bytes_ = std::max(1u, op->size / 8u);
    memory_linear_ = ChooseTarget(memory_bytes_);
    std::uint32_t segment_base = 0;
    if (op->mem.segment == ZYDIS_REGISTER_FS || op->mem.segment == ZYDIS_REGISTER_GS) {
      segment_base = ChooseSegmentBase(memory_linear_, memory_bytes_, random_);
      SetSegmentBase(test_, op->mem.segment, segment_base);
    }
    std::uint32_t offset = memory_linear_ - segment_base;
    if (form_.moffs_bytes) {
      instance_.moffs = offset;
    } else if (instance_.address.address16) {
      offset = SolveAddress16();
      const std::uint32_t segment = memory_linear_ - offset;
      SetSegmentBase(test_, op->mem.segment, segment);
    } else {
      SolveAddress(offset);
      memory_linear_ = offset + segment_base;
    }
  }

  // Register values (and the displacement) that make the address `offset`;
  // the offset may move down a little when base and index are one register.
  void SolveAddress(std::uint32_t& offset) {
    ModRmAddress& a = instance_.address;
    const int base = a.Base(), index = a.Index();
    const std::uint32_t scale = a.Scale();
    const unsigned displacement_bytes = a.DisplacementBytes();
    auto random_displacement = [&]() -> std::int32_t {
      if (displacement_bytes == 1) return static_cast<std::int8_t>(random_.Below(256));
      if (displacement_bytes == 4) return static_cast<std::int32_t>(random_.Below(0x200)) - 0x100;
      return 0;
    };
    if (index >= 0 && index != base && !Fixed(index)) {
      const std::uint32_t values[] = {
          0,          1,          2,      static_cast<std::uint32_t>(random_.Below(0x100)),
          0xFFFFFFFF, 0xFFFFFFF0, 0x10000};
      SetRegister(index, Pick(random_, values));
    }
    if (base >= 0 && base != index && !Fixed(base)) {
      a.displacement = random_displacement();
      const std::uint32_t index_part = index >= 0 ? Gpr(index) * scale : 0;
      SetRegister(base, offset - index_part - static_cast<std::uint32_t>(a.displacement));
    } else if (base >= 0 && base == index && !Fixed(base)) {
      a.displacement = random_displacement();
      std::uint32_t rest = offset - static_cast<std::uint32_t>(a.displacement);
      const std::uint32_t remainder = rest % (scale + 1);
      offset -= remainder;
      rest -= remainder;
      SetRegister(base, rest / (scale + 1));
    } else {
      assert(displacement_bytes == 4);
      const std::uint32_t base_part = base >= 0 ? Gpr(base) : 0;
      const std::uint32_t index_part = index >= 0 ? Gpr(index) * scale : 0;
      a.displacement = static_cast<std::int32_t>(offset - base_part - index_part);
    }
  }

  // 16-bit addressing: registers for a random 16-bit offset; the caller puts
  // the segment base where it reaches the target.
  std::uint32_t SolveAddress16() {
    static constexpr int kRegisters[8][2] = {{kEbx, kEsi}, {kEbx, kEdi}, {kEbp, kEsi}, {kEbp, kEdi},
                                             {kEsi, -1},   {kEdi, -1},   {kEbp, -1},   {kEbx, -1}};
    ModRmAddress& a = instance_.address;
    const std::uint32_t offset = static_cast<std::uint32_t>(random_.Below(0x10000 - memory_bytes_));
    if (a.mod == 0 && a.rm == 6) {
      a.displacement = static_cast<std::int32_t>(offset);
      return offset;
    }
    a.displacement = a.mod == 1   ? static_cast<std::int8_t>(random_.Below(256))
                     : a.mod == 2 ? static_cast<std::int32_t>(random_.Below(0x10000))
                                  : 0;
    const int first = kRegisters[a.rm][0], second = kRegisters[a.rm][1];
    std::uint32_t rest = offset - static_cast<std::uint32_t>(a.displacement);
    if (second >= 0) {
      SetRegister(second, random_.Bits32());
      rest -= Gpr(second);
    }
    SetRegister(first, (random_.Bits32() & 0xFFFF0000) | (rest & 0xFFFF));
    return offset;
  }

  std::uint32_t CodeTarget() {
    const auto length = static_cast<std::uint32_t>(test_.code.size());
    return CONF_CODE_ADDRESS + length +
           static_cast<std::uint32_t>(random_.Below(CONF_CODE_BYTES - length));
  }

  // Every transfer lands in the int3 fill after the snippet.
  void SetBranchTarget() {
    if (!IsControlTransfer(decoded_)) return;
    const auto& in = decoded_.instruction;
    const std::uint32_t next = CONF_CODE_ADDRESS + static_cast<std::uint32_t>(test_.code.size());
    if (in.raw.imm[0].is_relative) {
      const std::uint32_t room = kCodeEnd - next;
      instance_.immediates = random_.Below(in.raw.imm[0].size == 8 ? std::min(room, 128u) : room);
      return;
    }
    if (in.mnemonic == ZYDIS_MNEMONIC_RET) {
      PutLittleEndian(DataAt(test_, Gpr(kEsp), 4), CodeTarget(), 4);
      return;
    }
    const ZydisDecodedOperand* target = decoded_.RmOperand();
    if (!target) return;
    if (target->type == ZYDIS_OPERAND_TYPE_REGISTER) {
      SetRegister(GprNumber(target->reg.value), CodeTarget());
    } else {
      PutLittleEndian(DataAt(test_, memory_linear_, 4), CodeTarget(), 4);
    }
  }

  void AdjustValues() {
    const ZydisMnemonic m = Mnemonic();
    const ZydisDecodedOperand* memory = decoded_.ExplicitMemory();
    if (memory && memory->mem.type != ZYDIS_MEMOP_TYPE_AGEN && !IsControlTransfer(decoded_)) {
      if (m == ZYDIS_MNEMONIC_LDMXCSR) {
        if (!random_.OneIn(8))
          PutLittleEndian(DataAt(test_, memory_linear_, 4), RandomMxcsr(random_), 4);
      } else if (m == ZYDIS_MNEMONIC_FLDCW) {
        PutLittleEndian(DataAt(test_, memory_linear_, 2), RandomFpuControlWord(random_), 2);
      } else if (random_.OneIn(2)) {
        WriteOperandValue(test_, memory_linear_, *memory, random_);
      }
    }
    if ((m == ZYDIS_MNEMONIC_DIV || m == ZYDIS_MNEMONIC_IDIV) && !random_.OneIn(4))
      AvoidDivideError();
    if (m == ZYDIS_MNEMONIC_CMPXCHG && random_.OneIn(2)) MatchAccumulator();
    if (m == ZYDIS_MNEMONIC_CMPXCHG8B && random_.OneIn(2) && !Fixed(kEax) && !Fixed(kEdx)) {
      const std::uint64_t value = GetLittleEndian(DataAt(test_, memory_linear_, 8), 8);
      SetRegister(kEax, static_cast<std::uint32_t>(value));
      SetRegister(kEdx, static_cast<std::uint32_t>(value >> 32));
    }
    if (m == ZYDIS_MNEMONIC_BOUND && random_.OneIn(2)) {  // bounds around the index
      const unsigned half = memory_bytes_ / 2;
      const std::uint32_t value = Gpr(instance_.reg);
      std::uint8_t* bounds = DataAt(test_, memory_linear_, memory_bytes_);
      PutLittleEndian(bounds, value - static_cast<std::uint32_t>(random_.Below(4)), half);
      PutLittleEndian(bounds + half, value + static_cast<std::uint32_t>(random_.Below(4)), half);
    }
    // IsString(): the SSE2 cmpsd shares the mnemonic.
    const bool compare_strings =
        IsString() &&
        (m == ZYDIS_MNEMONIC_CMPSB || m == ZYDIS_MNEMONIC_CMPSW || m == ZYDIS_MNEMONIC_CMPSD);
    if (compare_strings && random_.OneIn(2)) {  // equal runs, so that repe goes on
      const StringRange& source =
          string_ranges_[0].base == ZYDIS_REGISTER_ESI ? string_ranges_[0] : string_ranges_[1];
      const StringRange& destination =
          &source == &string_ranges_[0] ? string_ranges_[1] : string_ranges_[0];
      const std::uint32_t bytes = std::min(source.bytes, destination.bytes);
      const std::uint8_t* from = DataAt(test_, source.lowest, bytes);
      const std::vector<std::uint8_t> run(from, from + bytes);  // the runs may overlap
      std::copy(run.begin(), run.end(), DataAt(test_, destination.lowest, bytes));
      if (bytes && random_.OneIn(2))
        DataAt(test_, destination.lowest, bytes)[random_.Below(bytes)] ^= 0x10;
    }
    if (m == ZYDIS_MNEMONIC_SCASB || m == ZYDIS_MNEMONIC_SCASW || m == ZYDIS_MNEMONIC_SCASD) {
      const StringRange& range = string_ranges_[0];
      const unsigned size = template_.instruction.operand_width / 8;
      std::uint8_t* p = DataAt(test_, range.lowest, range.bytes);
      switch (random_.Below(3)) {
        case 0:  // a run of the accumulator (repe continues)
          for (std::uint32_t i = 0; i + size <= range.bytes; i += size)
            PutLittleEndian(p + i, Gpr(kEax), size);
          break;
        case 1:  // one match (repne stops there)
          if (range.bytes >= size)
            PutLittleEndian(p + size * random_.Below(range.bytes / size), Gpr(kEax), size);
          break;
        default: break;
      }
    }
  }

  // Divisor and dividend for a quotient that fits, so that #DE stays the exception.
  void AvoidDivideError() {
    const ZydisDecodedOperand* divisor = decoded_.RmOperand();
    const unsigned bits = divisor->size;
    std::uint32_t value = 0;
    if (divisor->type == ZYDIS_OPERAND_TYPE_REGISTER) {
      const int number = GprNumber(divisor->reg.value);
      if (number == kEax || number == kEdx) return;  // part of the dividend
      value = ReadGpr(test_.initial.gpr, divisor->reg.value);
    } else {
      value = static_cast<std::uint32_t>(
          GetLittleEndian(DataAt(test_, memory_linear_, bits / 8), bits / 8));
    }
    const int high_register = bits == 8 ? kEax : kEdx;
    if (Fixed(high_register)) return;
    const std::uint32_t mask = bits == 32 ? 0xFFFFFFFF : (1u << bits) - 1;
    const std::uint32_t low = Gpr(kEax) & mask;
    std::uint32_t high = 0;
    if (Mnemonic() == ZYDIS_MNEMONIC_DIV) {
      high = value ? static_cast<std::uint32_t>(random_.Below(value)) : 0;
    } else {
      high = (low >> (bits - 1)) & 1 ? mask : 0;
    }
    if (bits == 8) {
      SetRegister(kEax, (Gpr(kEax) & ~0xFF00u) | (high & 0xFF) << 8);
    } else {
      SetRegister(kEdx, (Gpr(kEdx) & ~mask) | (high & mask));
    }
  }

  void MatchAccumulator() {
    const ZydisDecodedOperand* destination = decoded_.RmOperand();
    if (Fixed(kEax)) return;
    const unsigned bits = destination->size;
    std::uint32_t value = 0;
    if (destination->type == ZYDIS_OPERAND_TYPE_REGISTER) {
      if (GprNumber(destination->reg.value) == kEax) return;
      value = ReadGpr(test_.initial.gpr, destination->reg.value);
    } else {
      value = static_cast<std::uint32_t>(
          GetLittleEndian(DataAt(test_, memory_linear_, bits / 8), bits / 8));
    }
    const std::uint32_t mask = bits == 32 ? 0xFFFFFFFF : (1u << bits) - 1;
    SetRegister(kEax, (Gpr(kEax) & ~mask) | (value & mask));
  }

  struct StringRange {
    ZydisRegister base;
    std::uint32_t lowest;
    std::uint32_t bytes;
  };

  const InstructionForm& form_;
  RandomSource& random_;
  TestCase test_;
  Decoded template_{};
  Decoded decoded_{};
  Instance instance_;
  std::array<bool, 8> fixed_{};
  std::uint32_t memory_linear_ = 0;
  unsigned memory_bytes_ = 0;
  std::uint32_t region_begin_ = CONF_DATA_ADDRESS, region_end_ = kDataEnd;
  std::vector<StringRange> string_ranges_;
};

TestCase ControlledPopfdCase(const InstructionForm& form, RandomSource& random) {
  TestCase test;
  test.instruction_class = form.instruction_class;
  test.form = form.key;
  InitializeState(test, random);
  // IF=1, IOPL=0, TF=0, AC=0 as the runners already have them: the same
  // result at CPL0 and CPL3 (SDM Vol. 2, POPF).
  const std::uint32_t flags = 0x202 | (random.Bits32() & (kArithmeticFlags | kDirectionFlag));
  test.code = {0x68, 0, 0, 0, 0, 0x9D};
  PutLittleEndian(&test.code[1], flags, 4);
  test.instruction_count = 2;
  return test;
}

TestCase LockRegisterCase(const InstructionForm& form, RandomSource& random) {
  InstructionForm unlocked = form;
  unlocked.encoding.erase(unlocked.encoding.begin());
  unlocked.prefix_bytes -= 1;
  unlocked.special = InstructionForm::Special::kNone;
  TestCase test = CaseBuilder(unlocked, random).Build(false);
  test.code.insert(test.code.begin(), 0xF0);
  test.instruction_class = form.instruction_class;
  test.form = form.key;
  test.undefined_flags = 0;  // #UD changes nothing
  return test;
}

std::string DescribeAddress(const ModRmAddress& a) {
  static constexpr const char* kNames[] = {"eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi"};
  static constexpr const char* kNames16[] = {"bx+si", "bx+di", "bp+si", "bp+di",
                                             "si",    "di",    "bp",    "bx"};
  std::string text = a.address16 ? "a16" : "a32";
  text += " mod=" + std::to_string(a.mod) + " rm=" + std::to_string(a.rm);
  if (!a.address16 && a.rm == 4) text += " sib=" + Hex(std::span(&a.sib, 1));
  std::string inside;
  if (a.address16) {
    if (!(a.mod == 0 && a.rm == 6)) inside = kNames16[a.rm];
  } else {
    if (a.Base() >= 0) inside = kNames[a.Base()];
    if (a.Index() >= 0)
      inside += (inside.empty() ? "" : "+") + std::string(kNames[a.Index()]) + "*" +
                std::to_string(a.Scale());
  }
  if (const unsigned bytes = a.DisplacementBytes()) {
    inside += (inside.empty() ? "disp" : "+disp") + std::to_string(8 * bytes);
  }
  return text + " [" + inside + "]";
}

}  // namespace

int ModRmAddress::Base() const {
  if (address16) return -1;
  if (rm == 4) {
    const int base = sib & 7;
    return base == kEbp && mod == 0 ? -1 : base;
  }
  return rm == 5 && mod == 0 ? -1 : rm;
}

int ModRmAddress::Index() const {
  if (address16 || rm != 4) return -1;
  const int index = (sib >> 3) & 7;
  return index == kEsp ? -1 : index;
}

unsigned ModRmAddress::Scale() const { return !address16 && rm == 4 ? 1u << (sib >> 6) : 1u; }

unsigned ModRmAddress::DisplacementBytes() const {
  if (address16) return mod == 1 ? 1 : mod == 2 ? 2 : rm == 6 ? 2 : 0;
  if (mod == 1) return 1;
  if (mod == 2) return 4;
  return rm == 5 || (rm == 4 && (sib & 7) == 5) ? 4 : 0;
}

ModRmAddress ModRmAddress::Make(int base, int index, unsigned scale, unsigned displacement_bytes) {
  ModRmAddress a;
  const unsigned scale_bits = scale == 8 ? 3 : scale == 4 ? 2 : scale == 2 ? 1 : 0;
  if (base < 0) {  // mod=0 with a disp32 in place of the base
    a.rm = index < 0 ? 5 : 4;
    a.sib = static_cast<std::uint8_t>(scale_bits << 6 | (index < 0 ? 4 : index) << 3 | 5);
    if (index < 0) a.sib = 0;
    return a;
  }
  if (base == kEbp && displacement_bytes == 0) displacement_bytes = 1;  // mod=0 rm=5 is disp32
  a.mod = static_cast<std::uint8_t>(displacement_bytes == 0 ? 0 : displacement_bytes == 1 ? 1 : 2);
  if (index >= 0 || base == kEsp) {
    a.rm = 4;
    a.sib = static_cast<std::uint8_t>(scale_bits << 6 | (index < 0 ? 4 : index) << 3 | base);
  } else {
    a.rm = static_cast<std::uint8_t>(base);
  }
  return a;
}

std::vector<std::uint8_t> Encode(const InstructionForm& form, const Instance& instance) {
  std::vector<std::uint8_t> out;
  out.reserve(16);  // an instruction's most, which also spares GCC 12 a false -Wstringop-overflow
  if (instance.segment_prefix) out.push_back(instance.segment_prefix);
  if (instance.memory && instance.address.address16) out.push_back(0x67);
  const auto* prefixes = form.encoding.data();
  out.insert(out.end(), prefixes, prefixes + form.prefix_bytes + form.opcode_bytes);
  if (form.opcode_has_register)
    out.back() = static_cast<std::uint8_t>((out.back() & 0xF8) | (instance.opcode_register & 7));
  if (form.has_modrm) {
    const std::uint8_t modrm = form.encoding[form.prefix_bytes + form.opcode_bytes];
    const unsigned reg = form.reg_is_operand ? instance.reg & 7u : (modrm >> 3) & 7u;
    if (!instance.memory) {
      const unsigned rm = form.rm_is_operand ? instance.rm & 7u : modrm & 7u;
      out.push_back(static_cast<std::uint8_t>(0xC0 | reg << 3 | rm));
    } else {
      const ModRmAddress& a = instance.address;
      out.push_back(static_cast<std::uint8_t>(a.mod << 6 | reg << 3 | a.rm));
      if (!a.address16 && a.rm == 4) out.push_back(a.sib);
      const unsigned bytes = a.DisplacementBytes();
      for (unsigned i = 0; i < bytes; ++i)
        out.push_back(
            static_cast<std::uint8_t>(static_cast<std::uint32_t>(a.displacement) >> (8 * i)));
    }
  }
  for (unsigned i = 0; i < form.moffs_bytes; ++i)
    out.push_back(static_cast<std::uint8_t>(instance.moffs >> (8 * i)));
  for (unsigned i = 0; i < form.immediate_bytes; ++i)
    out.push_back(static_cast<std::uint8_t>(instance.immediates >> (8 * i)));
  return out;
}

std::uint64_t ChooseImmediates(const InstructionForm& form, RandomSource& random) {
  Decoded d;
  if (!Decode(form.encoding, d)) return 0;
  const ZydisDecodedInstruction& in = d.instruction;
  const ZydisMnemonic m = in.mnemonic;
  std::uint64_t out = 0;
  unsigned shift = 0;
  for (unsigned i = 0; i < 2 && in.raw.imm[i].size; ++i) {
    const unsigned bits = in.raw.imm[i].size;
    std::uint64_t value = EdgeValue32(random);
    if (in.raw.imm[i].is_relative) {
      value = 0;  // a branch target, set once the code length is known
    } else if (m == ZYDIS_MNEMONIC_ENTER) {
      // The CPU probes the bottom of the new frame: keep it in the data pages.
      const std::uint64_t sizes[] = {0, 4, 8, 0x10, 0x100, random.Below(0x3000)};
      const std::uint64_t levels[] = {0, 1, 2, 3, 31, 32, 33, 255, random.Below(32)};
      value = i == 0 ? Pick(random, sizes) : Pick(random, levels);
    } else if (IsShiftOrRotate(m)) {
      value = IsDoubleShift(m) && in.operand_width == 16 ? Pick(random, kCounts16DoubleShift)
                                                         : Pick(random, kCounts);
    } else if (m == ZYDIS_MNEMONIC_AAM || m == ZYDIS_MNEMONIC_AAD) {
      const std::uint64_t bases[] = {10, 10, 10, 16, 0, 1, 255, random.Below(256)};
      value = Pick(random, bases);
    } else if (bits == 8 && random.OneIn(2)) {
      value = random.Below(256);
    }
    out |= (value & ((std::uint64_t{1} << bits) - 1)) << shift;
    shift += bits;
  }
  return out;
}

std::vector<TestCase> GenerateCases(const InstructionForm& form, std::mt19937_64& rng,
                                    unsigned count) {
  PrngSource random(rng);
  std::vector<TestCase> cases;
  for (unsigned i = 0; i < count; ++i) {
    switch (form.special) {
      case InstructionForm::Special::kControlledPopfd:
        cases.push_back(ControlledPopfdCase(form, random));
        break;
      case InstructionForm::Special::kLockRegister:
        cases.push_back(LockRegisterCase(form, random));
        break;
      case InstructionForm::Special::kNone: {
        const bool memory = form.memory_variant && (!form.register_variant || i % 2 == 1);
        cases.push_back(CaseBuilder(form, random).Build(memory));
        break;
      }
    }
  }
  return cases;
}

std::vector<TestCase> GenerateAddressingCases(std::mt19937_64& rng) {
  PrngSource random(rng);
  static constexpr const char* kRepresentatives[] = {"mov r32, r/m32",       "add r/m32, r32",
                                                     "movzx r32, r/m8",      "lea r32, m",
                                                     "movdqu xmm, xmm/m128", "fld m64fp"};
  std::vector<InstructionForm> forms;
  for (const InstructionForm& form : EnumeratedForms()) {
    if (std::find(std::begin(kRepresentatives), std::end(kRepresentatives), form.key) !=
        std::end(kRepresentatives))
      forms.push_back(form);
  }
  assert(forms.size() == std::size(kRepresentatives));
  std::vector<ModRmAddress> addresses;
  for (std::uint8_t mod = 0; mod < 3; ++mod) {
    for (std::uint8_t rm = 0; rm < 8; ++rm) {
      ModRmAddress a;
      a.mod = mod;
      a.rm = rm;
      if (rm != 4) {
        addresses.push_back(a);
        continue;
      }
      for (unsigned sib = 0; sib < 256; ++sib) {
        a.sib = static_cast<std::uint8_t>(sib);
        addresses.push_back(a);
      }
    }
  }
  for (std::uint8_t mod = 0; mod < 3; ++mod) {
    for (std::uint8_t rm = 0; rm < 8; ++rm) {
      ModRmAddress a;
      a.mod = mod;
      a.rm = rm;
      a.address16 = true;
      addresses.push_back(a);
    }
  }
  std::vector<TestCase> cases;
  for (const ModRmAddress& address : addresses) {
    for (const InstructionForm& form : forms) {
      cases.push_back(
          CaseBuilder(form, random).BuildWithAddress(address, DescribeAddress(address)));
    }
  }
  return cases;
}

}  // namespace bt::conformance
