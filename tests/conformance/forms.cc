// Enumeration of the instruction forms (see forms.h): every candidate opcode,
// with each prefix set and ModRM byte worth trying, is decoded with Zydis;
// the exclusion rules drop what a CPL3 program cannot run the same way
// natively and in libbt, and the rest are grouped into forms by mnemonic and
// operand signature. Test cases for the forms are made in form_cases.cc.
#include "forms_internal.h"

#include <Zydis/Zydis.h>

#include <algorithm>
#include <array>
#include <map>
#include <optional>
#include <set>
#include <string_view>

namespace bt::conformance {
namespace {

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

}  // namespace

const std::vector<InstructionForm>& EnumeratedForms() { return Enumerated().forms; }

std::vector<InstructionForm> EnumerateForms() { return Enumerated().forms; }

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
