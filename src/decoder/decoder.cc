#include "decoder/decoder.h"

#include <Zydis/Zydis.h>

#include <cstdio>
#include <cstring>

namespace bt::decoder {
namespace {

// Guest register numbers in the SDM's encoding order.
constexpr std::uint8_t kEsp = 4, kEdi = 7;

// Guest register number of a 8/16/32-bit general register, and whether it is
// one of the legacy high-byte registers that a REX prefix would redefine.
struct Gpr {
  std::uint8_t number = kNoRegister;
  bool high_byte = false;
  bool byte = false;
};

Gpr ClassifyGpr(ZydisRegister reg) {
  Gpr gpr;
  switch (ZydisRegisterGetClass(reg)) {
    case ZYDIS_REGCLASS_GPR8: {
      auto id = static_cast<std::uint8_t>(ZydisRegisterGetId(reg));
      gpr.byte = true;
      gpr.high_byte = id >= 4;
      gpr.number = id & 3;
      break;
    }
    case ZYDIS_REGCLASS_GPR16:
    case ZYDIS_REGCLASS_GPR32:
      gpr.number = static_cast<std::uint8_t>(ZydisRegisterGetId(reg));
      break;
    default: break;
  }
  return gpr;
}

bool IsString(ZydisMnemonic mnemonic) {
  switch (mnemonic) {
    case ZYDIS_MNEMONIC_LODSB:
    case ZYDIS_MNEMONIC_LODSW:
    case ZYDIS_MNEMONIC_LODSD:
    case ZYDIS_MNEMONIC_MOVSB:
    case ZYDIS_MNEMONIC_MOVSW:
    case ZYDIS_MNEMONIC_MOVSD:
    case ZYDIS_MNEMONIC_STOSB:
    case ZYDIS_MNEMONIC_STOSW:
    case ZYDIS_MNEMONIC_STOSD:
    case ZYDIS_MNEMONIC_CMPSB:
    case ZYDIS_MNEMONIC_CMPSW:
    case ZYDIS_MNEMONIC_CMPSD:
    case ZYDIS_MNEMONIC_SCASB:
    case ZYDIS_MNEMONIC_SCASW:
    case ZYDIS_MNEMONIC_SCASD:
    case ZYDIS_MNEMONIC_INSB:
    case ZYDIS_MNEMONIC_INSW:
    case ZYDIS_MNEMONIC_INSD:
    case ZYDIS_MNEMONIC_OUTSB:
    case ZYDIS_MNEMONIC_OUTSW:
    case ZYDIS_MNEMONIC_OUTSD: return true;
    default: return false;
  }
}

// Whether and how an explicit memory operand is accessed, as segment limit
// checks and device accesses see it: nop and the prefetches name memory
// without accessing it (prefetches never fault), and clflush touches one
// byte (SDM Vol. 2A CLFLUSH: it faults like a byte load).
void ClassifyAccess(ZydisMnemonic mnemonic, const ZydisDecodedOperand& op, MemoryOperand& memory) {
  switch (mnemonic) {
    case ZYDIS_MNEMONIC_NOP:
    case ZYDIS_MNEMONIC_PREFETCH:
    case ZYDIS_MNEMONIC_PREFETCHNTA:
    case ZYDIS_MNEMONIC_PREFETCHT0:
    case ZYDIS_MNEMONIC_PREFETCHT1:
    case ZYDIS_MNEMONIC_PREFETCHT2:
    case ZYDIS_MNEMONIC_PREFETCHW:
    case ZYDIS_MNEMONIC_PREFETCHWT1: return;
    case ZYDIS_MNEMONIC_CLFLUSH:
    case ZYDIS_MNEMONIC_CLFLUSHOPT: memory.bytes = 1; break;
    default: break;
  }
  memory.read = (op.actions & ZYDIS_OPERAND_ACTION_MASK_READ) != 0;
  memory.written = (op.actions & ZYDIS_OPERAND_ACTION_MASK_WRITE) != 0;
}

// Instructions that 64-bit mode cannot encode; the runtime emulates them.
bool IsLegacyMnemonic(ZydisMnemonic mnemonic) {
  switch (mnemonic) {
    case ZYDIS_MNEMONIC_AAA:
    case ZYDIS_MNEMONIC_AAD:
    case ZYDIS_MNEMONIC_AAM:
    case ZYDIS_MNEMONIC_AAS:
    case ZYDIS_MNEMONIC_DAA:
    case ZYDIS_MNEMONIC_DAS:
    case ZYDIS_MNEMONIC_SALC:
    case ZYDIS_MNEMONIC_ARPL:
    case ZYDIS_MNEMONIC_BOUND:
    case ZYDIS_MNEMONIC_INTO:
    case ZYDIS_MNEMONIC_LDS:
    case ZYDIS_MNEMONIC_LES:
    case ZYDIS_MNEMONIC_LFS:
    case ZYDIS_MNEMONIC_LGS:
    case ZYDIS_MNEMONIC_LSS: return true;
    default: return false;
  }
}

// Instructions that would read the host's state instead of the guest's, or
// that libbt does not run yet.
bool IsUnsupportedMnemonic(ZydisMnemonic mnemonic) {
  switch (mnemonic) {
    case ZYDIS_MNEMONIC_SYSCALL:
    case ZYDIS_MNEMONIC_SYSRET:
    case ZYDIS_MNEMONIC_RDTSCP:
    case ZYDIS_MNEMONIC_RDPID:
    case ZYDIS_MNEMONIC_RDPMC:
    case ZYDIS_MNEMONIC_XGETBV:
    case ZYDIS_MNEMONIC_XSAVE:
    case ZYDIS_MNEMONIC_XRSTOR:
    case ZYDIS_MNEMONIC_XSAVEOPT:
    case ZYDIS_MNEMONIC_XSAVEC:
    case ZYDIS_MNEMONIC_XSAVES:
    case ZYDIS_MNEMONIC_XRSTORS:
    case ZYDIS_MNEMONIC_INT1:
    case ZYDIS_MNEMONIC_RDFSBASE:
    case ZYDIS_MNEMONIC_RDGSBASE:
    case ZYDIS_MNEMONIC_WRFSBASE:
    case ZYDIS_MNEMONIC_WRGSBASE:
    case ZYDIS_MNEMONIC_UMONITOR:
    case ZYDIS_MNEMONIC_UMWAIT:
    case ZYDIS_MNEMONIC_TPAUSE: return true;
    default: return false;
  }
}

// What CR0.EM/MP/TS and CR4.OSFXSR do to the instruction (SDM Vol. 3A
// table 2-2, 13.1.3): x87 by ISA extension or x87 register (fisttp is filed
// under SSE3); MMX by the MMX extension or an MMX operand, which includes
// the SSE instructions on MMX registers (pshufw, pavgb...) as their
// exceptions do (SDM Vol. 2, the MMX exception table: no OSFXSR check);
// SSE by an XMM or MXCSR operand or an SSE exception class (cvtsd2si with a
// memory source names no XMM register).
// prefetch, the fences, clflush, movnti, popcnt and crc32 touch no FPU
// state: no fault.
FpuClass ClassifyFpu(const ZydisDecodedInstruction& insn, const ZydisDecodedOperand* operands) {
  switch (insn.mnemonic) {
    case ZYDIS_MNEMONIC_FWAIT: return FpuClass::kWait;
    case ZYDIS_MNEMONIC_FXSAVE:
    case ZYDIS_MNEMONIC_FXRSTOR: return FpuClass::kX87;
    default: break;
  }
  if (insn.meta.isa_ext == ZYDIS_ISA_EXT_X87) return FpuClass::kX87;
  bool mmx = insn.meta.isa_ext == ZYDIS_ISA_EXT_MMX;  // emms names no register
  bool sse = !mmx && insn.meta.exception_class != ZYDIS_EXCEPTION_CLASS_NONE;
  for (std::uint8_t i = 0; i < insn.operand_count; ++i) {
    if (operands[i].type != ZYDIS_OPERAND_TYPE_REGISTER) continue;
    const ZydisRegister reg = operands[i].reg.value;
    switch (ZydisRegisterGetClass(reg)) {
      case ZYDIS_REGCLASS_X87: return FpuClass::kX87;
      case ZYDIS_REGCLASS_MMX: mmx = true; break;
      case ZYDIS_REGCLASS_XMM: sse = true; break;
      default:
        if (reg == ZYDIS_REGISTER_MXCSR) sse = true;
        break;
    }
  }
  if (sse) return FpuClass::kSse;
  return mmx ? FpuClass::kMmx : FpuClass::kNone;
}

Kind Classify(const ZydisDecodedInstruction& insn, const ZydisDecodedOperand* operands) {
  if (insn.encoding != ZYDIS_INSTRUCTION_ENCODING_LEGACY) return Kind::kInvalid;
  // movsd and cmpsd are also SSE2 mnemonics, in the 0F map.
  if (IsString(insn.mnemonic) && insn.opcode_map == ZYDIS_OPCODE_MAP_DEFAULT) {
    // 16-bit addressing (SI, DI, CX) is not supported yet.
    if (insn.address_width != 32) return Kind::kUnsupported;
    switch (insn.mnemonic) {
      case ZYDIS_MNEMONIC_INSB:
      case ZYDIS_MNEMONIC_INSW:
      case ZYDIS_MNEMONIC_INSD: return Kind::kIns;
      case ZYDIS_MNEMONIC_OUTSB:
      case ZYDIS_MNEMONIC_OUTSW:
      case ZYDIS_MNEMONIC_OUTSD: return Kind::kOuts;
      // lods has no ES:EDI operand: it is copied like any instruction, its
      // DS:ESI operand with the segment it names.
      case ZYDIS_MNEMONIC_LODSB:
      case ZYDIS_MNEMONIC_LODSW:
      case ZYDIS_MNEMONIC_LODSD: return Kind::kIdent;
      default: return Kind::kStringEs;
    }
  }
  const bool far = insn.meta.branch_type == ZYDIS_BRANCH_TYPE_FAR;
  switch (insn.mnemonic) {
    case ZYDIS_MNEMONIC_INC:
    case ZYDIS_MNEMONIC_DEC:
      return insn.opcode_map == ZYDIS_OPCODE_MAP_DEFAULT && (insn.opcode & 0xF0) == 0x40
                 ? Kind::kIncDecShort
                 : Kind::kIdent;
    case ZYDIS_MNEMONIC_PUSH:
      return operands[0].type == ZYDIS_OPERAND_TYPE_REGISTER &&
                     ZydisRegisterGetClass(operands[0].reg.value) == ZYDIS_REGCLASS_SEGMENT
                 ? Kind::kPushSegment
                 : Kind::kPush;
    case ZYDIS_MNEMONIC_POP:
      return operands[0].type == ZYDIS_OPERAND_TYPE_REGISTER &&
                     ZydisRegisterGetClass(operands[0].reg.value) == ZYDIS_REGCLASS_SEGMENT
                 ? Kind::kPopSegment
                 : Kind::kPop;
    case ZYDIS_MNEMONIC_PUSHF:
    case ZYDIS_MNEMONIC_PUSHFD: return Kind::kPushf;
    case ZYDIS_MNEMONIC_POPF:
    case ZYDIS_MNEMONIC_POPFD: return Kind::kPopf;
    case ZYDIS_MNEMONIC_PUSHA:
    case ZYDIS_MNEMONIC_PUSHAD: return Kind::kPusha;
    case ZYDIS_MNEMONIC_POPA:
    case ZYDIS_MNEMONIC_POPAD: return Kind::kPopa;
    case ZYDIS_MNEMONIC_ENTER: return Kind::kEnter;
    case ZYDIS_MNEMONIC_LEAVE: return Kind::kLeave;
    case ZYDIS_MNEMONIC_JMP:
      if (far) return Kind::kJmpFar;
      return operands[0].type == ZYDIS_OPERAND_TYPE_IMMEDIATE ? Kind::kJmpRelative
                                                              : Kind::kJmpIndirect;
    case ZYDIS_MNEMONIC_CALL:
      if (far) return Kind::kLegacy;
      return operands[0].type == ZYDIS_OPERAND_TYPE_IMMEDIATE ? Kind::kCallRelative
                                                              : Kind::kCallIndirect;
    case ZYDIS_MNEMONIC_RET: return far ? Kind::kLegacy : Kind::kRet;
    case ZYDIS_MNEMONIC_JB:
    case ZYDIS_MNEMONIC_JBE:
    case ZYDIS_MNEMONIC_JL:
    case ZYDIS_MNEMONIC_JLE:
    case ZYDIS_MNEMONIC_JNB:
    case ZYDIS_MNEMONIC_JNBE:
    case ZYDIS_MNEMONIC_JNL:
    case ZYDIS_MNEMONIC_JNLE:
    case ZYDIS_MNEMONIC_JNO:
    case ZYDIS_MNEMONIC_JNP:
    case ZYDIS_MNEMONIC_JNS:
    case ZYDIS_MNEMONIC_JNZ:
    case ZYDIS_MNEMONIC_JO:
    case ZYDIS_MNEMONIC_JP:
    case ZYDIS_MNEMONIC_JS:
    case ZYDIS_MNEMONIC_JZ: return Kind::kJcc;
    case ZYDIS_MNEMONIC_JECXZ: return Kind::kJecxz;
    case ZYDIS_MNEMONIC_JCXZ: return Kind::kJecxz;
    case ZYDIS_MNEMONIC_LOOP:
    case ZYDIS_MNEMONIC_LOOPE:
    case ZYDIS_MNEMONIC_LOOPNE: return Kind::kLoop;
    case ZYDIS_MNEMONIC_IN: return Kind::kIn;
    case ZYDIS_MNEMONIC_OUT: return Kind::kOut;
    case ZYDIS_MNEMONIC_HLT: return Kind::kHlt;
    case ZYDIS_MNEMONIC_CLI: return Kind::kCli;
    case ZYDIS_MNEMONIC_STI: return Kind::kSti;
    case ZYDIS_MNEMONIC_CPUID: return Kind::kCpuid;
    case ZYDIS_MNEMONIC_RDTSC: return Kind::kRdtsc;
    case ZYDIS_MNEMONIC_LGDT: return Kind::kLgdt;
    case ZYDIS_MNEMONIC_LIDT: return Kind::kLidt;
    case ZYDIS_MNEMONIC_INT3: return Kind::kInt3;
    case ZYDIS_MNEMONIC_INT: return Kind::kInt;
    case ZYDIS_MNEMONIC_IRET:
    case ZYDIS_MNEMONIC_IRETD: return Kind::kIret;
    case ZYDIS_MNEMONIC_SGDT: return Kind::kSgdt;
    case ZYDIS_MNEMONIC_SIDT: return Kind::kSidt;
    case ZYDIS_MNEMONIC_SLDT: return Kind::kSldt;
    case ZYDIS_MNEMONIC_STR: return Kind::kStr;
    case ZYDIS_MNEMONIC_SMSW: return Kind::kSmsw;
    case ZYDIS_MNEMONIC_LMSW: return Kind::kLmsw;
    case ZYDIS_MNEMONIC_CLTS: return Kind::kClts;
    case ZYDIS_MNEMONIC_LLDT: return Kind::kLldt;
    case ZYDIS_MNEMONIC_LTR: return Kind::kLtr;
    case ZYDIS_MNEMONIC_LAR: return Kind::kLar;
    case ZYDIS_MNEMONIC_LSL: return Kind::kLsl;
    case ZYDIS_MNEMONIC_VERR: return Kind::kVerr;
    case ZYDIS_MNEMONIC_VERW: return Kind::kVerw;
    case ZYDIS_MNEMONIC_RDMSR: return Kind::kRdmsr;
    case ZYDIS_MNEMONIC_WRMSR: return Kind::kWrmsr;
    case ZYDIS_MNEMONIC_SYSENTER: return Kind::kSysenter;
    case ZYDIS_MNEMONIC_SYSEXIT: return Kind::kSysexit;
    case ZYDIS_MNEMONIC_INVLPG: return Kind::kInvlpg;
    case ZYDIS_MNEMONIC_INVD:
    case ZYDIS_MNEMONIC_WBINVD: return Kind::kCacheFlush;
    case ZYDIS_MNEMONIC_UD0:
    case ZYDIS_MNEMONIC_UD1:
    case ZYDIS_MNEMONIC_UD2: return Kind::kInvalid;
    case ZYDIS_MNEMONIC_MOV: {
      for (int i = 0; i < 2; ++i) {
        if (operands[i].type != ZYDIS_OPERAND_TYPE_REGISTER) continue;
        ZydisRegisterClass cls = ZydisRegisterGetClass(operands[i].reg.value);
        if (cls == ZYDIS_REGCLASS_CONTROL) return i == 0 ? Kind::kMovToCr : Kind::kMovFromCr;
        if (cls == ZYDIS_REGCLASS_SEGMENT) {
          return i == 0 ? Kind::kMovToSegment : Kind::kMovFromSegment;
        }
        if (cls == ZYDIS_REGCLASS_DEBUG) return i == 0 ? Kind::kMovToDr : Kind::kMovFromDr;
        // The 386/486 test registers are gone since the P6: #UD.
        if (cls == ZYDIS_REGCLASS_TEST) return Kind::kInvalid;
      }
      break;
    }
    default: break;
  }
  if (IsLegacyMnemonic(insn.mnemonic)) return Kind::kLegacy;
  if (IsUnsupportedMnemonic(insn.mnemonic)) return Kind::kUnsupported;
  if (insn.attributes & ZYDIS_ATTRIB_IS_PRIVILEGED) return Kind::kUnsupported;
  return Kind::kIdent;
}

// Instructions only CPL 0 may run (SDM Vol. 3A 5.9). Zydis's privileged
// attribute misses lgdt and lidt, and has monitor and mwait, which are #UD
// at CPL > 0 instead.
bool IsPrivileged(const ZydisDecodedInstruction& insn, const ZydisDecodedOperand* operands) {
  switch (insn.mnemonic) {
    case ZYDIS_MNEMONIC_HLT:
    case ZYDIS_MNEMONIC_LGDT:
    case ZYDIS_MNEMONIC_LIDT:
    case ZYDIS_MNEMONIC_LLDT:
    case ZYDIS_MNEMONIC_LTR:
    case ZYDIS_MNEMONIC_CLTS:
    case ZYDIS_MNEMONIC_LMSW:
    case ZYDIS_MNEMONIC_INVLPG:
    case ZYDIS_MNEMONIC_INVD:
    case ZYDIS_MNEMONIC_WBINVD:
    case ZYDIS_MNEMONIC_RDMSR:
    case ZYDIS_MNEMONIC_WRMSR:
    case ZYDIS_MNEMONIC_SYSEXIT: return true;
    case ZYDIS_MNEMONIC_MOV:
      for (int i = 0; i < 2; ++i) {
        if (operands[i].type != ZYDIS_OPERAND_TYPE_REGISTER) continue;
        const ZydisRegisterClass cls = ZydisRegisterGetClass(operands[i].reg.value);
        if (cls == ZYDIS_REGCLASS_CONTROL || cls == ZYDIS_REGCLASS_DEBUG ||
            cls == ZYDIS_REGCLASS_TEST) {
          return true;
        }
      }
      return false;
    default: return false;
  }
}

}  // namespace

struct Decoder::State {
  ZydisDecoder decoder;
  ZydisFormatter formatter;
};

Decoder::Decoder() : state_(std::make_unique<State>()) {
  ZydisDecoderInit(&state_->decoder, ZYDIS_MACHINE_MODE_LEGACY_32, ZYDIS_STACK_WIDTH_32);
  ZydisFormatterInit(&state_->formatter, ZYDIS_FORMATTER_STYLE_INTEL);
}

Decoder::~Decoder() = default;

bool Decoder::Decode(std::uint32_t eip, const std::uint8_t* bytes, std::size_t available,
                     DecodedInstruction& out) const {
  out = DecodedInstruction{};
  out.eip = eip;
  ZydisDecodedInstruction insn;
  ZydisDecodedOperand operands[ZYDIS_MAX_OPERAND_COUNT];
  if (ZYAN_FAILED(ZydisDecoderDecodeFull(&state_->decoder, bytes, available, &insn, operands))) {
    // Not a valid instruction, unless it merely ran past `available`.
    out.length = 1;
    out.bytes[0] = available ? bytes[0] : 0;
    return available >= 15;
  }
  out.length = insn.length;
  std::memcpy(out.bytes, bytes, insn.length);
  out.kind = Classify(insn, operands);
  out.fpu_class = ClassifyFpu(insn, operands);
  out.privileged = IsPrivileged(insn, operands);
  out.prefix_count = insn.raw.prefix_count;
  out.operand_size = static_cast<std::uint8_t>(insn.operand_width / 8);
  out.divides = insn.mnemonic == ZYDIS_MNEMONIC_DIV || insn.mnemonic == ZYDIS_MNEMONIC_IDIV;
  if (insn.attributes & (ZYDIS_ATTRIB_HAS_REP | ZYDIS_ATTRIB_HAS_REPE)) out.rep = 1;
  if (insn.attributes & ZYDIS_ATTRIB_HAS_REPNE) out.rep = 2;
  if (insn.attributes & ZYDIS_ATTRIB_HAS_MODRM) out.modrm_offset = insn.raw.modrm.offset;
  if (insn.attributes & ZYDIS_ATTRIB_HAS_SIB) out.sib_offset = insn.raw.sib.offset;
  if (insn.raw.disp.size) {
    out.displacement_offset = insn.raw.disp.offset;
    out.displacement_size = insn.raw.disp.size / 8;
  }
  if (insn.raw.imm[0].size) out.immediate_offset = insn.raw.imm[0].offset;

  bool first_immediate = true;
  for (std::uint8_t i = 0; i < insn.operand_count; ++i) {
    const ZydisDecodedOperand& op = operands[i];
    switch (op.type) {
      case ZYDIS_OPERAND_TYPE_REGISTER: {
        Gpr gpr = ClassifyGpr(op.reg.value);
        if (gpr.number == kNoRegister) {
          ZydisRegisterClass cls = ZydisRegisterGetClass(op.reg.value);
          if (cls == ZYDIS_REGCLASS_CONTROL || cls == ZYDIS_REGCLASS_SEGMENT ||
              cls == ZYDIS_REGCLASS_DEBUG) {
            out.special_register = static_cast<std::uint8_t>(ZydisRegisterGetId(op.reg.value));
          }
          break;
        }
        out.registers_used |= static_cast<std::uint8_t>(1u << gpr.number);
        if (op.visibility != ZYDIS_OPERAND_VISIBILITY_EXPLICIT) break;
        if (gpr.high_byte) out.uses_high_byte = true;
        if (gpr.byte) break;
        if (op.encoding == ZYDIS_OPERAND_ENCODING_MODRM_REG) out.reg_gpr = gpr.number;
        if (op.encoding == ZYDIS_OPERAND_ENCODING_MODRM_RM) out.rm_gpr = gpr.number;
        if (op.encoding == ZYDIS_OPERAND_ENCODING_OPCODE) out.opcode_gpr = gpr.number;
        break;
      }
      case ZYDIS_OPERAND_TYPE_MEMORY: {
        Gpr base = ClassifyGpr(op.mem.base), index = ClassifyGpr(op.mem.index);
        if (base.number != kNoRegister) out.registers_used |= 1u << base.number;
        if (index.number != kNoRegister) out.registers_used |= 1u << index.number;
        const auto segment = static_cast<std::uint8_t>(ZydisRegisterGetId(op.mem.segment));
        if (op.visibility != ZYDIS_OPERAND_VISIBILITY_EXPLICIT) {
          out.implicit_memory = true;
          // The stack and a string destination (ES:EDI) take no override.
          const bool fixed_segment =
              base.number == kEsp || (base.number == kEdi && IsString(insn.mnemonic));
          if (!fixed_segment && out.segment == kNoRegister) out.segment = segment;
          break;
        }
        out.segment = segment;
        out.memory.displacement = static_cast<std::int32_t>(op.mem.disp.value);
        out.memory.address16 = insn.address_width == 16;
        out.memory.bytes = static_cast<std::uint16_t>(op.size / 8);
        ClassifyAccess(insn.mnemonic, op, out.memory);
        if (op.encoding == ZYDIS_OPERAND_ENCODING_MODRM_RM) {
          out.has_memory = true;
          out.memory.base = base.number;
          out.memory.index = index.number;
          out.memory.scale = op.mem.scale ? op.mem.scale : 1;
          out.memory.agen = op.mem.type == ZYDIS_MEMOP_TYPE_AGEN;
        } else {
          out.moffs = true;
        }
        break;
      }
      case ZYDIS_OPERAND_TYPE_IMMEDIATE:
        if (op.imm.is_relative) {
          out.branch_target = static_cast<std::uint32_t>(eip + insn.length + op.imm.value.s);
          if (insn.operand_width == 16) out.branch_target &= 0xFFFF;
        } else if (first_immediate) {
          out.immediate =
              op.imm.is_signed ? op.imm.value.s : static_cast<std::int64_t>(op.imm.value.u);
          first_immediate = false;
        } else {
          out.immediate2 = static_cast<std::uint32_t>(op.imm.value.u);
        }
        break;
      case ZYDIS_OPERAND_TYPE_POINTER:
        out.immediate = op.ptr.offset;
        out.immediate2 = op.ptr.segment;
        break;
      default: break;
    }
  }
  if (out.kind == Kind::kJcc) {
    out.condition = static_cast<std::uint8_t>(insn.opcode & 0x0F);
  }
  // 16-bit operand-size near branches truncate EIP; not supported yet.
  if ((out.kind == Kind::kRet || out.kind == Kind::kCallRelative ||
       out.kind == Kind::kCallIndirect || out.kind == Kind::kJmpIndirect ||
       out.kind == Kind::kJmpRelative || out.kind == Kind::kJcc) &&
      insn.operand_width == 16) {
    out.kind = Kind::kUnsupported;
  }
  return true;
}

std::string Decoder::Disassemble(const DecodedInstruction& instruction) const {
  ZydisDecodedInstruction insn;
  ZydisDecodedOperand operands[ZYDIS_MAX_OPERAND_COUNT];
  if (ZYAN_FAILED(ZydisDecoderDecodeFull(&state_->decoder, instruction.bytes, instruction.length,
                                         &insn, operands))) {
    return "(bad)";
  }
  char text[128];
  if (ZYAN_FAILED(ZydisFormatterFormatInstruction(&state_->formatter, &insn, operands,
                                                  insn.operand_count_visible, text, sizeof(text),
                                                  instruction.eip, nullptr))) {
    return "(bad)";
  }
  return text;
}

std::string HexBytes(const DecodedInstruction& instruction) {
  std::string text;
  char byte[4];
  for (unsigned i = 0; i < instruction.length; ++i) {
    std::snprintf(byte, sizeof(byte), i ? " %02x" : "%02x", instruction.bytes[i]);
    text += byte;
  }
  return text;
}

}  // namespace bt::decoder
