#include "forms.h"

#include <Zydis/Zydis.h>

#include <algorithm>
#include <array>
#include <cassert>
#include <map>
#include <set>
#include <string_view>

namespace bt::conformance {
namespace {

enum : int { kEax, kEcx, kEdx, kEbx, kEsp, kEbp, kEsi, kEdi };
constexpr std::uint32_t kCodeEnd = CONF_CODE_ADDRESS + CONF_CODE_BYTES;
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

bool Decode(std::span<const std::uint8_t> bytes, Decoded& out) {
  static const ZydisDecoder decoder = [] {
    ZydisDecoder d;
    ZydisDecoderInit(&d, ZYDIS_MACHINE_MODE_LEGACY_32, ZYDIS_STACK_WIDTH_32);
    return d;
  }();
  return ZYAN_SUCCESS(
      ZydisDecoderDecodeFull(&decoder, bytes.data(), bytes.size(), &out.instruction, out.operands));
}

// Register number (EAX=0 .. EDI=7) of a general register of any width, or -1.
int GprNumber(ZydisRegister reg) {
  switch (ZydisRegisterGetClass(reg)) {
    case ZYDIS_REGCLASS_GPR8: return ZydisRegisterGetId(reg) & 3;
    case ZYDIS_REGCLASS_GPR16:
    case ZYDIS_REGCLASS_GPR32: return ZydisRegisterGetId(reg);
    default: return -1;
  }
}

std::uint32_t ReadGpr(const std::uint32_t (&gpr)[8], ZydisRegister reg) {
  const int id = ZydisRegisterGetId(reg);
  switch (ZydisRegisterGetClass(reg)) {
    case ZYDIS_REGCLASS_GPR8: return id < 4 ? gpr[id] & 0xFF : (gpr[id - 4] >> 8) & 0xFF;
    case ZYDIS_REGCLASS_GPR16: return gpr[id] & 0xFFFF;
    default: return gpr[id];
  }
}

bool IsControlTransfer(const Decoded& d) {
  switch (d.instruction.meta.category) {
    case ZYDIS_CATEGORY_COND_BR:
    case ZYDIS_CATEGORY_UNCOND_BR:
    case ZYDIS_CATEGORY_CALL:
    case ZYDIS_CATEGORY_RET: return true;
    default: return false;
  }
}

bool IsShiftOrRotate(ZydisMnemonic m) {
  static constexpr ZydisMnemonic kShifts[] = {
      ZYDIS_MNEMONIC_SHL, ZYDIS_MNEMONIC_SHR,  ZYDIS_MNEMONIC_SAR,
      ZYDIS_MNEMONIC_ROL, ZYDIS_MNEMONIC_ROR,  ZYDIS_MNEMONIC_RCL,
      ZYDIS_MNEMONIC_RCR, ZYDIS_MNEMONIC_SHLD, ZYDIS_MNEMONIC_SHRD};
  return std::find(std::begin(kShifts), std::end(kShifts), m) != std::end(kShifts);
}

bool IsDoubleShift(ZydisMnemonic m) { return m == ZYDIS_MNEMONIC_SHLD || m == ZYDIS_MNEMONIC_SHRD; }

bool IsBitTest(ZydisMnemonic m) {
  return m == ZYDIS_MNEMONIC_BT || m == ZYDIS_MNEMONIC_BTS || m == ZYDIS_MNEMONIC_BTR ||
         m == ZYDIS_MNEMONIC_BTC;
}

bool IsLoop(ZydisMnemonic m) {
  return m == ZYDIS_MNEMONIC_LOOP || m == ZYDIS_MNEMONIC_LOOPE || m == ZYDIS_MNEMONIC_LOOPNE ||
         m == ZYDIS_MNEMONIC_JCXZ || m == ZYDIS_MNEMONIC_JECXZ;
}

// ---------------------------------------------------------------------------
// Exclusions

enum class Exclusion {
  kPrivileged,
  kIo,
  kHostEnvironment,
  kDescriptorTables,
  kSegmentRegisters,
  kFarTransfers,
  kEnvironmentImages,
  kNotAdvertised,
  kPopf,
  kShortControlTransfer,
  kUndefinedResult,
  kCount,
};

struct ExclusionRule {
  const char* name;
  const char* reason;
  // Excluded by mnemonic; ExclusionOf also tests attributes, ISA sets and operands.
  std::vector<ZydisMnemonic> mnemonics;
};

// Indexed by Exclusion.
const std::vector<ExclusionRule>& ExclusionRules() {
  static const std::vector<ExclusionRule> rules = {
      {"privileged",
       "#GP at CPL3 natively (Zydis's privileged attribute, and these it does not mark), while "
       "libbt runs the guest at CPL0",
       {ZYDIS_MNEMONIC_HLT, ZYDIS_MNEMONIC_RSM, ZYDIS_MNEMONIC_LGDT, ZYDIS_MNEMONIC_LIDT,
        ZYDIS_MNEMONIC_LLDT, ZYDIS_MNEMONIC_LTR, ZYDIS_MNEMONIC_LMSW, ZYDIS_MNEMONIC_CLTS,
        ZYDIS_MNEMONIC_INVD, ZYDIS_MNEMONIC_WBINVD, ZYDIS_MNEMONIC_INVLPG}},
      {"I/O and interrupt flag",
       "in/out/ins/outs and cli/sti depend on IOPL and the I/O permission bitmap: #GP at CPL3 "
       "with IOPL 0, allowed at CPL0",
       {ZYDIS_MNEMONIC_IN, ZYDIS_MNEMONIC_OUT, ZYDIS_MNEMONIC_INSB, ZYDIS_MNEMONIC_INSW,
        ZYDIS_MNEMONIC_INSD, ZYDIS_MNEMONIC_OUTSB, ZYDIS_MNEMONIC_OUTSW, ZYDIS_MNEMONIC_OUTSD,
        ZYDIS_MNEMONIC_CLI, ZYDIS_MNEMONIC_STI}},
      {"host environment",
       "cpuid, rdtsc/rdtscp, rdpmc, rdrand, rdseed, rdpid and xgetbv return the host's model, "
       "time, counters or randomness",
       {ZYDIS_MNEMONIC_CPUID, ZYDIS_MNEMONIC_RDTSC, ZYDIS_MNEMONIC_RDTSCP, ZYDIS_MNEMONIC_RDPMC,
        ZYDIS_MNEMONIC_RDRAND, ZYDIS_MNEMONIC_RDSEED, ZYDIS_MNEMONIC_RDPID, ZYDIS_MNEMONIC_XGETBV}},
      {"descriptor tables",
       "sgdt/sidt/sldt/str/smsw (UMIP) and lar/lsl/verr/verw read the host's descriptor tables "
       "and selectors",
       {ZYDIS_MNEMONIC_SGDT, ZYDIS_MNEMONIC_SIDT, ZYDIS_MNEMONIC_SLDT, ZYDIS_MNEMONIC_STR,
        ZYDIS_MNEMONIC_SMSW, ZYDIS_MNEMONIC_LAR, ZYDIS_MNEMONIC_LSL, ZYDIS_MNEMONIC_VERR,
        ZYDIS_MNEMONIC_VERW}},
      {"segment registers",
       "mov to/from a segment register, push/pop of one, lds/les/lfs/lgs/lss: the Linux "
       "process's selectors and descriptors are not libbt's flat segments",
       {ZYDIS_MNEMONIC_LDS, ZYDIS_MNEMONIC_LES, ZYDIS_MNEMONIC_LFS, ZYDIS_MNEMONIC_LGS,
        ZYDIS_MNEMONIC_LSS}},
      {"far transfers and interrupts",
       "far call/jmp/ret, iret, int n (int 0x80 would be a host system call), int1/icebp and "
       "syscall/sysenter/sysexit/sysret need the host's GDT, IDT or kernel",
       {ZYDIS_MNEMONIC_IRET, ZYDIS_MNEMONIC_IRETD, ZYDIS_MNEMONIC_INT, ZYDIS_MNEMONIC_INT1,
        ZYDIS_MNEMONIC_SYSCALL, ZYDIS_MNEMONIC_SYSENTER, ZYDIS_MNEMONIC_SYSEXIT,
        ZYDIS_MNEMONIC_SYSRET}},
      {"x87/SSE environment images",
       "fnstenv/fnsave/fldenv/frstor and fxsave/fxrstor images hold the last x87 instruction and "
       "operand pointers and selectors, which depend on where the code runs",
       {ZYDIS_MNEMONIC_FNSTENV, ZYDIS_MNEMONIC_FNSAVE, ZYDIS_MNEMONIC_FLDENV, ZYDIS_MNEMONIC_FRSTOR,
        ZYDIS_MNEMONIC_FXSAVE, ZYDIS_MNEMONIC_FXRSTOR}},
      {"not advertised by CPUID",
       "ISA extensions libbt's CPUID does not report (AVX and other VEX/EVEX, BMI, MOVBE, AES, "
       "PCLMUL, SHA, 3DNow! and prefetch/prefetchw, XOP, SSE4a, ADX, CLFLUSH, MONITOR, RTM, CET, "
       "MPX, XSAVE, PKU, SMX, VMX, ...): the host may run them, libbt need not",
       {}},
      {"popf",
       "popf/popfd: whether IF and IOPL change depends on CPL, and AC turns on alignment "
       "checking at CPL3 only; covered by the \"popfd (controlled)\" form",
       {ZYDIS_MNEMONIC_POPF, ZYDIS_MNEMONIC_POPFD}},
      {"16-bit control transfers",
       "with an operand-size prefix, near jmp/jcc/call/ret/loop truncate EIP to 16 bits, so the "
       "target lies below the code pages",
       {}},
      {"undefined results", "bswap r16: the SDM leaves the result undefined", {}},
  };
  return rules;
}

bool AdvertisedIsaSet(ZydisISASet set) {
  static constexpr ZydisISASet kAdvertised[] = {
      ZYDIS_ISA_SET_I86,          ZYDIS_ISA_SET_I186,        ZYDIS_ISA_SET_I286PROTECTED,
      ZYDIS_ISA_SET_I286REAL,     ZYDIS_ISA_SET_I386,        ZYDIS_ISA_SET_I486,
      ZYDIS_ISA_SET_I486REAL,     ZYDIS_ISA_SET_PENTIUMREAL, ZYDIS_ISA_SET_PENTIUMMMX,
      ZYDIS_ISA_SET_PPRO,         ZYDIS_ISA_SET_CMOV,        ZYDIS_ISA_SET_FCMOV,
      ZYDIS_ISA_SET_LAHF,         ZYDIS_ISA_SET_X87,         ZYDIS_ISA_SET_SSE,
      ZYDIS_ISA_SET_SSE2,         ZYDIS_ISA_SET_SSE2MMX,     ZYDIS_ISA_SET_SSE3,
      ZYDIS_ISA_SET_SSE3X87,      ZYDIS_ISA_SET_SSSE3,       ZYDIS_ISA_SET_SSSE3MMX,
      ZYDIS_ISA_SET_SSE4,         ZYDIS_ISA_SET_SSE42,       ZYDIS_ISA_SET_POPCNT,
      ZYDIS_ISA_SET_LZCNT,        ZYDIS_ISA_SET_PAUSE,       ZYDIS_ISA_SET_SSEMXCSR,
      ZYDIS_ISA_SET_SSE_PREFETCH, ZYDIS_ISA_SET_FAT_NOP};
  return std::find(std::begin(kAdvertised), std::end(kAdvertised), set) != std::end(kAdvertised);
}

std::optional<Exclusion> ExclusionOf(const Decoded& d) {
  const ZydisDecodedInstruction& in = d.instruction;
  const std::vector<ExclusionRule>& rules = ExclusionRules();
  for (std::size_t i = 0; i < rules.size(); ++i) {
    const auto& listed = rules[i].mnemonics;
    if (std::find(listed.begin(), listed.end(), in.mnemonic) != listed.end())
      return static_cast<Exclusion>(i);
  }
  if (in.mnemonic == ZYDIS_MNEMONIC_BSWAP && in.operand_width == 16)
    return Exclusion::kUndefinedResult;
  if (in.meta.branch_type == ZYDIS_BRANCH_TYPE_FAR) return Exclusion::kFarTransfers;
  for (const auto& op : d.Operands()) {
    if (op.type == ZYDIS_OPERAND_TYPE_REGISTER &&
        ZydisRegisterGetClass(op.reg.value) == ZYDIS_REGCLASS_SEGMENT)
      return Exclusion::kSegmentRegisters;
  }
  if (in.attributes & ZYDIS_ATTRIB_IS_PRIVILEGED) return Exclusion::kPrivileged;
  if (in.encoding != ZYDIS_INSTRUCTION_ENCODING_LEGACY || !AdvertisedIsaSet(in.meta.isa_set) ||
      in.meta.isa_ext == ZYDIS_ISA_EXT_AMD3DNOW_PREFETCH)
    return Exclusion::kNotAdvertised;
  if (IsControlTransfer(d) && in.operand_width == 16) return Exclusion::kShortControlTransfer;
  return std::nullopt;
}

// ---------------------------------------------------------------------------
// Enumeration

std::string ClassOf(const Decoded& d) {
  const ZydisDecodedInstruction& in = d.instruction;
  switch (in.meta.isa_set) {
    case ZYDIS_ISA_SET_POPCNT:
    case ZYDIS_ISA_SET_LZCNT: return "popcnt/lzcnt";
    case ZYDIS_ISA_SET_SSE42: return "sse4.2";
    case ZYDIS_ISA_SET_SSE4: return "sse4.1";
    default: break;
  }
  switch (in.meta.isa_ext) {
    case ZYDIS_ISA_EXT_X87: return "x87";
    case ZYDIS_ISA_EXT_MMX: return "mmx";
    case ZYDIS_ISA_EXT_SSE: return "sse";
    case ZYDIS_ISA_EXT_SSE2: return "sse2";
    case ZYDIS_ISA_EXT_SSE3: return "sse3";
    case ZYDIS_ISA_EXT_SSSE3: return "ssse3";
    default: break;
  }
  switch (in.mnemonic) {
    case ZYDIS_MNEMONIC_UD0:
    case ZYDIS_MNEMONIC_UD1:
    case ZYDIS_MNEMONIC_UD2: return "undefined opcode";
    default: break;
  }
  switch (in.meta.category) {
    case ZYDIS_CATEGORY_COND_BR:
    case ZYDIS_CATEGORY_UNCOND_BR:
    case ZYDIS_CATEGORY_CALL:
    case ZYDIS_CATEGORY_RET: return "control transfer";
    case ZYDIS_CATEGORY_STRINGOP: return "string";
    case ZYDIS_CATEGORY_SHIFT:
    case ZYDIS_CATEGORY_ROTATE: return "shift/rotate";
    case ZYDIS_CATEGORY_BITBYTE: return "bit ops";
    case ZYDIS_CATEGORY_SETCC:
    case ZYDIS_CATEGORY_CMOV: return "cmov/setcc";
    case ZYDIS_CATEGORY_DECIMAL: return "bcd";
    case ZYDIS_CATEGORY_FLAGOP: return "flags";
    case ZYDIS_CATEGORY_PUSH:
    case ZYDIS_CATEGORY_POP: return "stack";
    case ZYDIS_CATEGORY_SEMAPHORE: return "atomic";
    case ZYDIS_CATEGORY_NOP:
    case ZYDIS_CATEGORY_WIDENOP: return "nop";
    default: return in.meta.isa_set == ZYDIS_ISA_SET_PAUSE ? "nop" : "base integer";
  }
}

std::string RegisterToken(const ZydisDecodedOperand& op) {
  if (op.encoding == ZYDIS_OPERAND_ENCODING_NONE) return ZydisRegisterGetString(op.reg.value);
  switch (ZydisRegisterGetClass(op.reg.value)) {
    case ZYDIS_REGCLASS_GPR8: return "r8";
    case ZYDIS_REGCLASS_GPR16: return "r16";
    case ZYDIS_REGCLASS_GPR32: return "r32";
    case ZYDIS_REGCLASS_X87: return "st(i)";
    case ZYDIS_REGCLASS_MMX: return "mm";
    case ZYDIS_REGCLASS_XMM: return "xmm";
    default: return ZydisRegisterGetString(op.reg.value);
  }
}

std::string MemoryToken(const Decoded& d, const ZydisDecodedOperand& op) {
  if (op.mem.type == ZYDIS_MEMOP_TYPE_AGEN) return "m";
  const std::string size = std::to_string(op.size);
  if (op.encoding != ZYDIS_OPERAND_ENCODING_MODRM_RM) return "moffs" + size;
  const std::string_view mnemonic = ZydisMnemonicGetString(d.instruction.mnemonic);
  if (mnemonic.front() == 'f') {
    switch (op.element_type) {
      case ZYDIS_ELEMENT_TYPE_FLOAT32:
      case ZYDIS_ELEMENT_TYPE_FLOAT64:
      case ZYDIS_ELEMENT_TYPE_FLOAT80: return "m" + size + "fp";
      case ZYDIS_ELEMENT_TYPE_LONGBCD: return "m" + size + "bcd";
      case ZYDIS_ELEMENT_TYPE_INT:
        if (mnemonic.substr(0, 2) == "fi") return "m" + size + "int";
        break;
      default: break;
    }
  }
  return "m" + size;
}

std::string RepeatPrefixName(const Decoded& d) {
  const auto attributes = d.instruction.attributes;
  if (attributes & ZYDIS_ATTRIB_HAS_REPNE) return "repne ";
  if (attributes & ZYDIS_ATTRIB_HAS_REPE) return "repe ";
  if (attributes & ZYDIS_ATTRIB_HAS_REP) return "rep ";
  return "";
}

// One decoded candidate encoding.
struct Candidate {
  std::vector<std::uint8_t> encoding;
  std::string identity;  // prefixes, opcode and extensions: the same for reg and mem variants
  std::string opcode_identity;  // the identity without the prefixes
  char variant = 'n';           // 'r' mod=3, 'm' mod!=3, 'n' no ModRM
  std::string prefix_text;      // "lock ", "rep ", ...
  std::string mnemonic;
  std::vector<std::string> tokens;
  int rm_token = -1;
  std::string instruction_class;
  bool operand_size_prefix = false;  // an effective (not mandatory) 0x66
  std::string operand_sizes;         // of every operand, hidden ones included
  InstructionForm layout;            // the layout fields
};

std::string Hex(std::span<const std::uint8_t> bytes) {
  static constexpr char kDigits[] = "0123456789ABCDEF";
  std::string out;
  for (std::uint8_t b : bytes) {
    if (!out.empty()) out += ' ';
    out += kDigits[b >> 4];
    out += kDigits[b & 15];
  }
  return out;
}

Candidate MakeCandidate(const Decoded& d, std::span<const std::uint8_t> bytes, unsigned prefixes,
                        unsigned opcode_bytes) {
  const ZydisDecodedInstruction& in = d.instruction;
  Candidate c;
  c.encoding.assign(bytes.begin(), bytes.begin() + in.length);
  InstructionForm& f = c.layout;
  f.prefix_bytes = static_cast<std::uint8_t>(prefixes);
  f.opcode_bytes = static_cast<std::uint8_t>(opcode_bytes);
  f.has_modrm = in.attributes & ZYDIS_ATTRIB_HAS_MODRM;
  for (const auto& op : d.Operands()) {
    f.reg_is_operand |= op.encoding == ZYDIS_OPERAND_ENCODING_MODRM_REG;
    f.rm_is_operand |= op.encoding == ZYDIS_OPERAND_ENCODING_MODRM_RM;
    f.opcode_has_register |= op.encoding == ZYDIS_OPERAND_ENCODING_OPCODE;
  }
  if (!f.has_modrm && in.raw.disp.size) f.moffs_bytes = in.raw.disp.size / 8;
  f.immediate_bytes = static_cast<std::uint8_t>((in.raw.imm[0].size + in.raw.imm[1].size) / 8);
  if (f.has_modrm) {
    c.variant = in.raw.modrm.mod == 3 ? 'r' : 'm';
    f.register_variant = c.variant == 'r';
    f.memory_variant = c.variant == 'm';
  }

  std::vector<std::uint8_t> opcode(bytes.begin() + prefixes,
                                   bytes.begin() + prefixes + opcode_bytes);
  if (f.opcode_has_register) opcode.back() &= 0xF8;
  c.opcode_identity = Hex(opcode);
  if (f.has_modrm) {
    c.opcode_identity += f.reg_is_operand ? " /r" : " /" + std::to_string(in.raw.modrm.reg);
    if (c.variant == 'r' && !f.rm_is_operand)
      c.opcode_identity += " rm" + std::to_string(in.raw.modrm.rm);
  }
  c.identity = Hex(bytes.first(prefixes)) + " | " + c.opcode_identity;

  for (unsigned i = 0; i < in.raw.prefix_count; ++i) {
    c.operand_size_prefix |=
        in.raw.prefixes[i].value == 0x66 && in.raw.prefixes[i].type == ZYDIS_PREFIX_TYPE_EFFECTIVE;
  }
  for (const auto& op : d.Operands()) c.operand_sizes += std::to_string(op.size) + ' ';
  c.mnemonic = ZydisMnemonicGetString(in.mnemonic);
  const bool lock = in.attributes & ZYDIS_ATTRIB_HAS_LOCK;
  c.instruction_class = lock ? "lock" : ClassOf(d);
  if (lock) c.prefix_text = "lock ";
  if (in.meta.category == ZYDIS_CATEGORY_STRINGOP) {
    c.prefix_text = RepeatPrefixName(d);
    return c;  // the operands of a string instruction are implied by its name
  }
  if (in.address_width == 16) c.prefix_text = "a16 ";  // loop/jcxz with 0x67: CX counts
  unsigned immediate = 0;
  for (const auto& op : d.Operands()) {
    if (op.visibility == ZYDIS_OPERAND_VISIBILITY_HIDDEN) continue;
    if (op.encoding == ZYDIS_OPERAND_ENCODING_MODRM_RM)
      c.rm_token = static_cast<int>(c.tokens.size());
    switch (op.type) {
      case ZYDIS_OPERAND_TYPE_REGISTER: c.tokens.push_back(RegisterToken(op)); break;
      case ZYDIS_OPERAND_TYPE_MEMORY: c.tokens.push_back(MemoryToken(d, op)); break;
      case ZYDIS_OPERAND_TYPE_IMMEDIATE:
        if (op.encoding == ZYDIS_OPERAND_ENCODING_NONE) {
          c.tokens.push_back(std::to_string(op.imm.value.u));
        } else {
          const unsigned bits = in.raw.imm[immediate++].size;
          c.tokens.push_back((op.imm.is_relative ? "rel" : "imm") + std::to_string(bits));
        }
        break;
      default: c.tokens.push_back("?"); break;
    }
  }
  return c;
}

std::string KeyOf(const std::string& prefix, const std::string& mnemonic,
                  const std::vector<std::string>& tokens) {
  std::string key = prefix + mnemonic;
  for (std::size_t i = 0; i < tokens.size(); ++i) key += (i ? ", " : " ") + tokens[i];
  return key;
}

// "r32" + "m32" -> "r/m32"; "xmm" + "m128" -> "xmm/m128".
std::string MergedToken(const std::string& reg, const std::string& mem) {
  if (reg.size() > 1 && reg[0] == 'r' && reg.substr(1) == mem.substr(1)) return "r/" + mem;
  return reg + "/" + mem;
}

struct Enumeration {
  std::vector<InstructionForm> forms;
  std::array<std::set<std::string>, static_cast<int>(Exclusion::kCount)> excluded;
};

// The second bytes tried after an opcode: every ModRM.reg with every mod=3
// row and with one memory operand ([eax]). Without ModRM it is an immediate.
std::vector<std::uint8_t> SecondBytes() {
  std::vector<std::uint8_t> out;
  for (unsigned reg = 0; reg < 8; ++reg) {
    out.push_back(static_cast<std::uint8_t>(reg << 3));
    for (unsigned rm = 0; rm < 8; ++rm)
      out.push_back(static_cast<std::uint8_t>(0xC0 | reg << 3 | rm));
  }
  return out;
}

bool IsPrefixOrEscape(std::uint8_t opcode) {
  switch (opcode) {
    case 0x0F:
    case 0x26:
    case 0x2E:
    case 0x36:
    case 0x3E:
    case 0x64:
    case 0x65:
    case 0x66:
    case 0x67:
    case 0xF0:
    case 0xF2:
    case 0xF3: return true;
    default: return false;
  }
}

std::vector<std::vector<std::uint8_t>> PrefixSets(unsigned map, std::uint8_t opcode) {
  const bool x87 = map == 0 && opcode >= 0xD8 && opcode <= 0xDF;
  // 0x66 on an x87 opcode only selects the 16-bit environment image format.
  if (x87) return {{}};
  std::vector<std::vector<std::uint8_t>> sets = {{},     {0x66},       {0xF2},
                                                 {0xF3}, {0x66, 0xF2}, {0x66, 0xF3}};
  if (map <= 1) {
    sets.push_back({0xF0});
    sets.push_back({0xF0, 0x66});
  }
  // loop, loope, loopne and jecxz count in CX with an address-size prefix.
  if (map == 0 && opcode >= 0xE0 && opcode <= 0xE3) sets.push_back({0x67});
  return sets;
}

// Forms already kept, by key, for telling a new form with the same key apart.
struct KeptForms {
  std::map<std::string, Candidate> by_key;
  std::set<std::string> aliases;  // key and opcode bytes of kept alias encodings
};

void AddForm(Enumeration& out, KeptForms& kept, std::string key, const Candidate& c,
             InstructionForm form) {
  auto it = kept.by_key.find(key);
  if (it != kept.by_key.end()) {
    const Candidate& first = it->second;
    if (first.opcode_identity == c.opcode_identity) {
      // Only the prefixes differ: keep it if 0x66 resized an operand.
      if (!c.operand_size_prefix || c.operand_sizes == first.operand_sizes) return;
      key += " (o16)";
    } else {
      // An alias encoding (82 /0, F7 /1, D9 D8+i, 0F 90 /1). ModRM bits the
      // CPU ignores give many aliases per opcode; one of them is enough.
      const std::string opcode_bytes = c.opcode_identity.substr(0, c.opcode_identity.find(" /"));
      if (!kept.aliases.insert(key + " | " + opcode_bytes).second) return;
      key += " (" + c.opcode_identity + ")";
    }
    if (kept.by_key.count(key)) return;
  }
  form.key = key;
  kept.by_key.emplace(key, c);
  out.forms.push_back(std::move(form));
}

InstructionForm FormFrom(const Candidate& c) {
  InstructionForm form = c.layout;
  form.instruction_class = c.instruction_class;
  form.encoding = c.encoding;
  return form;
}

Enumeration Enumerate() {
  Enumeration out;
  struct Group {
    std::optional<Candidate> reg, mem, plain;
  };
  std::vector<std::string> order;
  std::map<std::string, Group> groups;
  const std::vector<std::uint8_t> seconds = SecondBytes();
  static constexpr std::uint8_t kEscapes[4][2] = {{0, 0}, {0x0F, 0}, {0x0F, 0x38}, {0x0F, 0x3A}};
  for (unsigned map = 0; map < 4; ++map) {
    const unsigned escape_bytes = map == 0 ? 0 : map == 1 ? 1 : 2;
    for (unsigned opcode = 0; opcode < 256; ++opcode) {
      if (map == 0 && IsPrefixOrEscape(static_cast<std::uint8_t>(opcode))) continue;
      if (map == 1 && (opcode == 0x38 || opcode == 0x3A)) continue;  // escapes to 0F38, 0F3A
      for (const auto& prefixes : PrefixSets(map, static_cast<std::uint8_t>(opcode))) {
        for (std::uint8_t second : seconds) {
          std::vector<std::uint8_t> bytes = prefixes;
          bytes.insert(bytes.end(), kEscapes[map], kEscapes[map] + escape_bytes);
          bytes.push_back(static_cast<std::uint8_t>(opcode));
          bytes.push_back(second);
          bytes.resize(bytes.size() + 12, 0);
          Decoded d;
          if (!Decode(bytes, d)) continue;
          const ZydisDecodedInstruction& in = d.instruction;
          // A prefix the instruction ignores adds nothing; xacquire/xrelease
          // (HLE) and bnd (MPX) are hints CPUID does not advertise.
          bool ignored_prefix = in.attributes & (ZYDIS_ATTRIB_HAS_XACQUIRE |
                                                 ZYDIS_ATTRIB_HAS_XRELEASE | ZYDIS_ATTRIB_HAS_BND);
          for (unsigned i = 0; i < in.raw.prefix_count; ++i)
            ignored_prefix |= in.raw.prefixes[i].type == ZYDIS_PREFIX_TYPE_IGNORED;
          if (ignored_prefix) continue;
          if (auto exclusion = ExclusionOf(d)) {
            out.excluded[static_cast<int>(*exclusion)].insert(ZydisMnemonicGetString(in.mnemonic));
            if (!(in.attributes & ZYDIS_ATTRIB_HAS_MODRM)) break;
            continue;
          }
          Candidate c =
              MakeCandidate(d, bytes, static_cast<unsigned>(prefixes.size()), escape_bytes + 1);
          auto [it, inserted] = groups.try_emplace(c.identity);
          if (inserted) order.push_back(c.identity);
          auto& slot = c.variant == 'r'   ? it->second.reg
                       : c.variant == 'm' ? it->second.mem
                                          : it->second.plain;
          if (!slot) slot = std::move(c);
          if (!(in.attributes & ZYDIS_ATTRIB_HAS_MODRM)) break;
        }
      }
    }
  }

  KeptForms keys;
  std::set<std::string> lock_register_mnemonics;
  for (const std::string& identity : order) {
    const Group& g = groups[identity];
    if (g.plain) {
      AddForm(out, keys, KeyOf(g.plain->prefix_text, g.plain->mnemonic, g.plain->tokens), *g.plain,
              FormFrom(*g.plain));
      continue;
    }
    const bool mergeable =
        g.reg && g.mem && g.reg->mnemonic == g.mem->mnemonic &&
        g.reg->tokens.size() == g.mem->tokens.size() && g.reg->rm_token >= 0 &&
        g.reg->rm_token == g.mem->rm_token && [&] {
          for (std::size_t i = 0; i < g.reg->tokens.size(); ++i) {
            if (static_cast<int>(i) != g.reg->rm_token && g.reg->tokens[i] != g.mem->tokens[i])
              return false;
          }
          return true;
        }();
    if (mergeable) {
      std::vector<std::string> tokens = g.reg->tokens;
      const int rm = g.reg->rm_token;
      tokens[rm] = MergedToken(g.reg->tokens[rm], g.mem->tokens[rm]);
      InstructionForm form = FormFrom(*g.reg);
      form.memory_variant = true;
      AddForm(out, keys, KeyOf(g.reg->prefix_text, g.reg->mnemonic, tokens), *g.reg, form);
    } else {
      if (g.reg)
        AddForm(out, keys, KeyOf(g.reg->prefix_text, g.reg->mnemonic, g.reg->tokens), *g.reg,
                FormFrom(*g.reg));
      if (g.mem)
        AddForm(out, keys, KeyOf(g.mem->prefix_text, g.mem->mnemonic, g.mem->tokens), *g.mem,
                FormFrom(*g.mem));
    }
    // lock with a register destination raises #UD; one such form per lockable mnemonic.
    if (g.mem && g.mem->prefix_text == "lock " && !lock_register_mnemonics.count(g.mem->mnemonic)) {
      // "F0 | 01 /r" -> " | 01 /r", "F0 66 | 01 /r" -> "66 | 01 /r"
      auto base = groups.find(identity.substr(identity.compare(0, 4, "F0 |") == 0 ? 2 : 3));
      if (base != groups.end() && base->second.reg) {
        const Candidate& reg = *base->second.reg;
        InstructionForm form = FormFrom(reg);
        form.encoding.insert(form.encoding.begin(), 0xF0);
        form.prefix_bytes += 1;
        form.special = InstructionForm::Special::kLockRegister;
        form.instruction_class = "undefined opcode";
        lock_register_mnemonics.insert(g.mem->mnemonic);
        AddForm(out, keys, KeyOf("lock ", reg.mnemonic, reg.tokens), reg, form);
      }
    }
  }

  InstructionForm popfd;
  popfd.key = "popfd (controlled)";
  popfd.instruction_class = "flags";
  popfd.encoding = {0x68, 0x02, 0x02, 0x00, 0x00, 0x9D};
  popfd.special = InstructionForm::Special::kControlledPopfd;
  out.forms.push_back(popfd);
  return out;
}

const Enumeration& Enumerated() {
  static const Enumeration enumeration = Enumerate();
  return enumeration;
}

// ---------------------------------------------------------------------------
// Values

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
// Shift and rotate counts around the operand sizes and the 5-bit mask.
constexpr std::uint32_t kCounts[] = {0, 1, 7, 8, 15, 16, 31, 32, 33, 63, 255};
// shld/shrd r/m16 leave the result undefined for masked counts above 16.
constexpr std::uint32_t kCounts16DoubleShift[] = {0, 1, 7, 8, 15, 16, 32, 33, 39, 48};

template <typename T, std::size_t N>
const T& Pick(RandomSource& random, const T (&items)[N]) {
  return items[random.Below(N)];
}

void PutLittleEndian(std::uint8_t* out, std::uint64_t value, unsigned bytes) {
  for (unsigned i = 0; i < bytes; ++i) out[i] = static_cast<std::uint8_t>(value >> (8 * i));
}

std::uint64_t GetLittleEndian(const std::uint8_t* in, unsigned bytes) {
  std::uint64_t value = 0;
  for (unsigned i = 0; i < bytes; ++i) value |= std::uint64_t{in[i]} << (8 * i);
  return value;
}

std::uint8_t* DataAt(TestCase& test, std::uint32_t linear, unsigned bytes) {
  assert(linear >= CONF_DATA_ADDRESS && linear - CONF_DATA_ADDRESS + bytes <= CONF_DATA_BYTES);
  (void)bytes;
  return &test.data[linear - CONF_DATA_ADDRESS];
}

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

// ---------------------------------------------------------------------------
// Test cases

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

std::vector<InstructionForm> EnumerateForms() { return Enumerated().forms; }

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
  for (const InstructionForm& form : Enumerated().forms) {
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

std::vector<ExcludedClass> ExcludedClasses() {
  std::vector<ExcludedClass> out;
  const Enumeration& e = Enumerated();
  for (int i = 0; i < static_cast<int>(Exclusion::kCount); ++i) {
    out.push_back({ExclusionRules()[i].name,
                   ExclusionRules()[i].reason,
                   {e.excluded[i].begin(), e.excluded[i].end()}});
  }
  out.push_back({"address-size string operations",
                 "not generated: with 0x67, string instructions address through SI/DI below "
                 "64 KiB, and ES (the destination) cannot be overridden to reach the data pages",
                 {}});
  out.push_back({"CS segment override",
                 "not generated: whether the code segment is readable through CS differs "
                 "between the Linux process and libbt",
                 {}});
  return out;
}

}  // namespace bt::conformance
