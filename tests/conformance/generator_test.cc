// The conformance tester's generators: every snippet must decode to the
// instructions it claims, fit in the code pages and, from its initial state,
// touch memory only in the data pages; random programs must be reproducible.
#include "forms.h"
#include "random_program.h"

#include <Zydis/Zydis.h>
#include <doctest/doctest.h>

#include <algorithm>
#include <set>
#include <string_view>

namespace bt::conformance {
namespace {

struct Decoded {
  ZydisDecodedInstruction instruction;
  ZydisDecodedOperand operands[ZYDIS_MAX_OPERAND_COUNT];
  std::size_t offset;
};

// The instructions of `code`, or fewer if some bytes do not decode.
std::vector<Decoded> DecodeAll(const std::vector<std::uint8_t>& code) {
  ZydisDecoder decoder;
  ZydisDecoderInit(&decoder, ZYDIS_MACHINE_MODE_LEGACY_32, ZYDIS_STACK_WIDTH_32);
  std::vector<Decoded> out;
  std::size_t offset = 0;
  while (offset < code.size()) {
    Decoded d{};
    d.offset = offset;
    if (!ZYAN_SUCCESS(ZydisDecoderDecodeFull(&decoder, code.data() + offset, code.size() - offset,
                                             &d.instruction, d.operands)))
      break;
    offset += d.instruction.length;
    out.push_back(d);
  }
  return out;
}

std::uint32_t RegisterValue(const TestCase& test, ZydisRegister reg) {
  if (reg == ZYDIS_REGISTER_NONE) return 0;
  const int id = ZydisRegisterGetId(reg);
  switch (ZydisRegisterGetClass(reg)) {
    case ZYDIS_REGCLASS_GPR8:
      return id < 4 ? test.initial.gpr[id] & 0xFF : (test.initial.gpr[id - 4] >> 8) & 0xFF;
    case ZYDIS_REGCLASS_GPR16: return test.initial.gpr[id] & 0xFFFF;
    default: return test.initial.gpr[id];
  }
}

bool InDataPages(std::uint64_t begin, std::uint64_t bytes) {
  return begin >= CONF_DATA_ADDRESS && begin + bytes <= kDataEnd;
}

// Checks the memory operands of the first instruction against the initial state.
void CheckMemory(const TestCase& test, const Decoded& d) {
  const auto& in = d.instruction;
  for (unsigned i = 0; i < in.operand_count; ++i) {
    const ZydisDecodedOperand& op = d.operands[i];
    if (op.type != ZYDIS_OPERAND_TYPE_MEMORY || op.mem.type == ZYDIS_MEMOP_TYPE_AGEN) continue;
    std::uint32_t offset = RegisterValue(test, op.mem.base) +
                           RegisterValue(test, op.mem.index) * op.mem.scale +
                           static_cast<std::uint32_t>(op.mem.disp.value);
    if (in.address_width == 16) offset &= 0xFFFF;
    const std::uint32_t segment = op.mem.segment == ZYDIS_REGISTER_FS   ? test.fs_base
                                  : op.mem.segment == ZYDIS_REGISTER_GS ? test.gs_base
                                                                        : 0;
    std::uint32_t linear = segment + offset;
    std::uint32_t bytes = std::max(1u, op.size / 8u);
    if (op.mem.base == ZYDIS_REGISTER_ESP && op.encoding == ZYDIS_OPERAND_ENCODING_NONE) {
      linear -= 160;  // pushes, pusha and enter frames below ESP, pops above
      bytes = 192;
    } else if (in.mnemonic == ZYDIS_MNEMONIC_XLAT) {
      bytes = 256;
    } else if (in.meta.category == ZYDIS_CATEGORY_STRINGOP &&
               (in.attributes &
                (ZYDIS_ATTRIB_HAS_REP | ZYDIS_ATTRIB_HAS_REPE | ZYDIS_ATTRIB_HAS_REPNE))) {
      const std::uint32_t count = test.initial.gpr[CONF_ECX];
      if (count == 0) continue;
      if (test.initial.eflags & 0x400) linear -= (count - 1) * bytes;
      bytes *= count;
    }
    CHECK_MESSAGE(InDataPages(linear, bytes), test.form, ": operand ", i, " at ", linear, " (",
                  bytes, " bytes)");
  }
}

// The relative branches of a program land on an instruction boundary after
// themselves, or at the end.
void CheckForwardBranches(const TestCase& test, const std::vector<Decoded>& instructions) {
  std::set<std::size_t> boundaries{test.code.size()};
  for (const Decoded& d : instructions) boundaries.insert(d.offset);
  for (const Decoded& d : instructions) {
    const auto& in = d.instruction;
    if (!in.raw.imm[0].is_relative) continue;
    const std::size_t next = d.offset + in.length;
    const std::size_t target = next + static_cast<std::size_t>(in.raw.imm[0].value.s);
    CHECK_MESSAGE(target >= next, "backward branch at ", d.offset);
    CHECK_MESSAGE(boundaries.count(target), "branch at ", d.offset, " into an instruction");
  }
}

TEST_CASE("every form's cases decode, fit and keep memory in the data pages") {
  std::mt19937_64 rng(1);
  for (const InstructionForm& form : EnumerateForms()) {
    for (const TestCase& test : GenerateCases(form, rng, 8)) {
      CAPTURE(form.key);
      CHECK(test.form == form.key);
      CHECK(test.instruction_class == form.instruction_class);
      CHECK(test.code.size() <= CONF_CODE_BYTES);
      CHECK((test.initial.eflags & ~0xCD5u) == 0x202);
      CHECK(test.data.size() == CONF_DATA_BYTES);
      if (form.special == InstructionForm::Special::kLockRegister) {
        // Zydis refuses lock on a register operand, as the CPU does (#UD).
        CHECK(test.code.front() == 0xF0);
        CHECK(DecodeAll(test.code).empty());
        const std::vector<std::uint8_t> unlocked(test.code.begin() + 1, test.code.end());
        CHECK(DecodeAll(unlocked).size() == 1);
        continue;
      }
      const std::vector<Decoded> instructions = DecodeAll(test.code);
      REQUIRE(instructions.size() == test.instruction_count);
      CHECK(instructions.back().offset + instructions.back().instruction.length ==
            test.code.size());
      CheckMemory(test, instructions.front());
      // A single branch lands in the int3 fill after itself.
      const auto& first = instructions.front().instruction;
      if (first.raw.imm[0].is_relative) {
        const std::int64_t target = first.length + first.raw.imm[0].value.s;
        CHECK(target >= first.length);
        CHECK(target < CONF_CODE_BYTES);
      }
    }
  }
}

TEST_CASE("addressing cases cover every ModRM and SIB form") {
  std::mt19937_64 rng(2);
  const std::vector<TestCase> cases = GenerateAddressingCases(rng);
  // mod 0-2 with 7 plain rm values and rm=4 with 256 SIBs, plus 24 16-bit forms; 6 instructions
  // each.
  CHECK(cases.size() == (3 * (7 + 256) + 24) * 6);
  std::set<std::string> forms;
  for (const TestCase& test : cases) {
    CAPTURE(test.form);
    forms.insert(test.form);
    CHECK(test.instruction_class == "addressing");
    const std::vector<Decoded> instructions = DecodeAll(test.code);
    REQUIRE(instructions.size() == 1);
    CHECK(instructions.front().instruction.length == test.code.size());
    CheckMemory(test, instructions.front());
  }
  CHECK(forms.size() == 3 * (7 + 256) + 24);
}

bool HasForm(const std::vector<InstructionForm>& forms, std::string_view key) {
  return std::any_of(forms.begin(), forms.end(),
                     [&](const InstructionForm& f) { return f.key == key; });
}

bool HasFormStartingWith(const std::vector<InstructionForm>& forms, std::string_view prefix) {
  return std::any_of(forms.begin(), forms.end(), [&](const InstructionForm& f) {
    return std::string_view(f.key).substr(0, prefix.size()) == prefix;
  });
}

TEST_CASE("the enumeration finds the expected forms and leaves out the excluded ones") {
  const std::vector<InstructionForm> forms = EnumerateForms();
  CHECK(HasForm(forms, "add r/m32, imm8"));
  CHECK(HasForm(forms, "add r/m16, imm8"));
  CHECK(HasForm(forms, "paddw xmm, xmm/m128"));
  CHECK(HasForm(forms, "paddw mm, mm/m64"));
  CHECK(HasForm(forms, "cmpxchg8b m64"));
  CHECK(HasForm(forms, "bswap r32"));
  CHECK(HasFormStartingWith(forms, "shld r/m32, r32, "));
  CHECK(HasForm(forms, "pcmpistri xmm, xmm/m128, imm8"));
  CHECK(HasForm(forms, "popcnt r32, r/m32"));
  CHECK(HasForm(forms, "lzcnt r32, r/m32"));
  CHECK(HasForm(forms, "fadd st0, st(i)"));
  CHECK(HasForm(forms, "fld m80fp"));
  CHECK(HasForm(forms, "rep movsb"));
  CHECK(HasForm(forms, "repne scasb"));
  CHECK(HasForm(forms, "lock add m32, r32"));
  CHECK(HasForm(forms, "lock add r8, r8"));
  CHECK(HasForm(forms, "ud2"));
  CHECK(HasForm(forms, "popfd (controlled)"));
  CHECK(HasForm(forms, "a16 loop rel8"));
  for (std::string_view excluded :
       {"cpuid",   "int ",  "int1",  "rdtsc",    "in ",    "out ",      "cli",       "sti",
        "hlt",     "popfd", "iretd", "sysenter", "lgdt",   "sgdt",      "lds",       "fxsave",
        "fnstenv", "tzcnt", "movbe", "vaddps",   "aesenc", "pclmulqdq", "prefetchw", "clflush"}) {
    CAPTURE(excluded);
    const bool found = std::any_of(forms.begin(), forms.end(), [&](const InstructionForm& f) {
      return f.key != "popfd (controlled)" &&
             std::string_view(f.key).substr(0, excluded.size()) == excluded;
    });
    CHECK_FALSE(found);
  }
  std::set<std::string> keys;
  for (const InstructionForm& form : forms)
    CHECK_MESSAGE(keys.insert(form.key).second, "duplicate ", form.key);

  const std::vector<ExcludedClass> excluded = ExcludedClasses();
  auto excludes = [&](std::string_view mnemonic) {
    return std::any_of(excluded.begin(), excluded.end(), [&](const ExcludedClass& c) {
      return !c.reason.empty() &&
             std::find(c.mnemonics.begin(), c.mnemonics.end(), mnemonic) != c.mnemonics.end();
    });
  };
  CHECK(excludes("cpuid"));
  CHECK(excludes("int"));
  CHECK(excludes("popfd"));
}

TEST_CASE("undefined flags follow the shift count") {
  // shl al, 8: CF undefined (count >= operand size), OF and AF too.
  CHECK(Analyze(std::vector<std::uint8_t>{0xC0, 0xE0, 0x08}).flags_undefined == 0x811);
  // shl eax, 1: OF is defined for a count of 1 (SDM), though Zydis says otherwise.
  CHECK(Analyze(std::vector<std::uint8_t>{0xD1, 0xE0}).flags_undefined == 0x010);
  // shl eax, 0 changes nothing.
  CHECK(Analyze(std::vector<std::uint8_t>{0xC1, 0xE0, 0x00}).flags_undefined == 0);
  CHECK(Analyze(std::vector<std::uint8_t>{0xC1, 0xE0, 0x00}).flags_defined == 0);
  // shl eax, cl with CL unknown: may be 0, so nothing is surely defined.
  CHECK(Analyze(std::vector<std::uint8_t>{0xD3, 0xE0}).flags_defined == 0);
  // add defines all six.
  CHECK(Analyze(std::vector<std::uint8_t>{0x01, 0xC0}).flags_defined == kArithmeticFlags);
}

TEST_CASE("random programs decode, branch forward and are reproducible") {
  for (std::uint64_t seed = 0; seed < 100; ++seed) {
    CAPTURE(seed);
    ProgramGenerator first(seed), second(seed);
    const TestCase a = first.Generate(200);
    const TestCase b = second.Generate(200);
    CHECK(a.code == b.code);
    CHECK(a.data == b.data);
    CHECK(
        std::equal(std::begin(a.initial.gpr), std::end(a.initial.gpr), std::begin(b.initial.gpr)));
    CHECK(a.undefined_flags == b.undefined_flags);
    CHECK(a.instruction_count == 200);
    CHECK(a.code.size() < CONF_CODE_BYTES);
    CHECK((a.undefined_flags & ~kArithmeticFlags) == 0);
    const std::vector<Decoded> instructions = DecodeAll(a.code);
    // A lock on a register operand does not decode; only the rare unit emits it.
    std::size_t decoded_bytes =
        instructions.empty() ? 0
                             : instructions.back().offset + instructions.back().instruction.length;
    if (decoded_bytes == a.code.size()) {
      CHECK(instructions.size() == a.instruction_count);
      CheckForwardBranches(a, instructions);
    } else {
      CHECK(a.code[decoded_bytes] == 0xF0);
    }
    for (const Decoded& d : instructions) {
      // EBX and ESP keep their roles: written only by balanced stack pairs.
      for (unsigned i = 0; i < d.instruction.operand_count; ++i) {
        const ZydisDecodedOperand& op = d.operands[i];
        if (op.type == ZYDIS_OPERAND_TYPE_REGISTER &&
            op.visibility != ZYDIS_OPERAND_VISIBILITY_HIDDEN &&
            (op.actions & ZYDIS_OPERAND_ACTION_MASK_WRITE) &&
            ZydisRegisterGetClass(op.reg.value) != ZYDIS_REGCLASS_X87) {
          CHECK_MESSAGE(ZydisRegisterGetLargestEnclosing(ZYDIS_MACHINE_MODE_LEGACY_32,
                                                         op.reg.value) != ZYDIS_REGISTER_EBX,
                        "EBX written at ", d.offset);
          CHECK_MESSAGE(op.reg.value != ZYDIS_REGISTER_ESP, "ESP written at ", d.offset);
        }
      }
    }
  }
  CHECK(ProgramGenerator(1).Generate(200).code != ProgramGenerator(2).Generate(200).code);
}

TEST_CASE("a fuzzer's bytes drive the generator reproducibly") {
  const std::vector<std::uint8_t> bytes = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 200, 100, 50};
  const TestCase a = ProgramGenerator(bytes).Generate(48);
  const TestCase b = ProgramGenerator(bytes).Generate(48);
  CHECK(a.code == b.code);
  CHECK(a.instruction_count == 48);
  std::vector<std::uint8_t> other = bytes;
  other[0] ^= 0xFF;
  CHECK(ProgramGenerator(other).Generate(48).code != a.code);
  CHECK(ProgramGenerator(std::span<const std::uint8_t>()).Generate(48).instruction_count == 48);
}

}  // namespace
}  // namespace bt::conformance
