// libbt's own description of one guest instruction: what class of
// translation it needs and where its encoding's parts are, so the translator
// can copy it with only its memory operand rewritten.
#pragma once

#include <cstdint>

namespace bt::decoder {

constexpr std::uint8_t kNoRegister = 0xFF;
constexpr std::uint8_t kNoOffset = 0xFF;

enum class Kind : std::uint8_t {
  kIdent,        // copied; memory operand rewritten to gs: + addr32
  kIncDecShort,  // 0x40-0x4F, REX prefixes in 64-bit mode
  kPush,         // register, immediate or memory source
  kPop,          // register or memory destination
  kPushSegment,
  kPopSegment,
  kPushf,
  kPopf,
  kPusha,
  kPopa,
  kEnter,
  kLeave,
  kJmpRelative,
  kJcc,
  kJecxz,
  kLoop,  // loop, loope, loopne with ECX
  kCallRelative,
  kJmpIndirect,
  kCallIndirect,
  kRet,
  kJmpFar,    // ptr16:32 or m16:32
  kStringEs,  // movs, stos, cmps, scas (ES:EDI): host string instructions
  kIn,
  kOut,
  kIns,   // ES:[EDI] from port DX
  kOuts,  // DS:[ESI] (or an override) to port DX
  kHlt,
  kCli,
  kSti,
  kCpuid,
  kRdtsc,
  kMovToCr,
  kMovFromCr,
  kMovToDr,
  kMovFromDr,
  kLgdt,
  kLidt,
  kMovToSegment,
  kMovFromSegment,
  kInt3,
  kInt,
  kIret,
  // System instructions (SDM Vol. 2; the runtime's system_instructions.cc,
  // msrs.cc and sysenter.cc).
  kSgdt,
  kSidt,
  kSldt,
  kStr,
  kSmsw,
  kLmsw,
  kClts,
  kLldt,
  kLtr,
  kLar,
  kLsl,
  kVerr,
  kVerw,
  kRdmsr,
  kWrmsr,
  kSysenter,
  kSysexit,
  kInvlpg,
  kCacheFlush,  // invd, wbinvd
  // Never from the decoder: the translator turns an x87/MMX/SSE instruction
  // into this when the unit's CR0 mode makes it fault (#NM, or #UD).
  kFpuUnavailable,
  // Never from the decoder: the translator turns an access through FS or
  // GS into this when the unit's view has not used the segment yet
  // (translator::kModeUsesFs).
  kSegmentUse,
  // Never from the decoder: the callout before an instruction whose memory
  // operand the runtime resolves itself (adaptive translation, see
  // runtime/adaptive.cc), and the one after it where the host cannot
  // restore the guest window's GS base inline.
  kResolveMemory,
  kReleaseMemory,
  // Never from the decoder: the callout before a div or idiv that kept
  // raising #DE, which raises it without a host trap (runtime/adaptive.cc).
  kCheckDivide,
  // Never from the decoder: the callout before a string instruction through
  // a segment with limit checks, which checks every iteration's access
  // (runtime/segment_access.cc).
  kStringCheck,
  kLegacy,       // no 64-bit encoding (BCD, bound, les, far call, ...): done in C++
  kInvalid,      // #UD: ud2, undefined encodings, features we hide
  kUnsupported,  // valid, but libbt cannot run it yet
};

// Which part of the FPU/SIMD state an instruction uses, for the faults that
// CR0.EM, CR0.MP, CR0.TS and CR4.OSFXSR cause (SDM Vol. 3A 2.5, table 2-2;
// 13.1.3).
enum class FpuClass : std::uint8_t {
  kNone,
  kX87,   // x87 (and fxsave/fxrstor): #NM when EM or TS is set
  kWait,  // wait/fwait: #NM when MP and TS are both set
  kMmx,   // MMX: #UD when EM is set, else #NM when TS is
  kSse,   // SSE to SSE4.2 and MXCSR: #UD when EM is set or OSFXSR clear, else #NM when TS is
};

struct MemoryOperand {
  std::uint8_t base = kNoRegister;
  std::uint8_t index = kNoRegister;
  std::uint8_t scale = 1;
  std::int32_t displacement = 0;
  bool address16 = false;   // 16-bit addressing through a 0x67 prefix
  bool agen = false;        // lea: the address is computed, not accessed
  bool read = false;        // read (perhaps also written)
  bool written = false;     // written (perhaps also read)
  std::uint16_t bytes = 0;  // the size of the access
};

struct DecodedInstruction {
  std::uint32_t eip = 0;
  std::uint8_t length = 0;
  std::uint8_t bytes[15] = {};
  Kind kind = Kind::kInvalid;

  // Encoding layout (offsets into bytes).
  std::uint8_t prefix_count = 0;  // legacy prefixes before the opcode
  std::uint8_t modrm_offset = kNoOffset;
  std::uint8_t sib_offset = kNoOffset;
  std::uint8_t displacement_offset = kNoOffset;
  std::uint8_t displacement_size = 0;  // bytes
  std::uint8_t immediate_offset = kNoOffset;

  std::uint8_t operand_size = 4;  // bytes, of the instruction's operation
  std::uint8_t rep = 0;           // 1 = rep/repe, 2 = repne

  // Only CPL 0 may run it: #GP(0) elsewhere (SDM Vol. 3A 5.9).
  bool privileged = false;
  bool has_memory = false;       // an explicit ModRM memory operand
  bool implicit_memory = false;  // a hidden operand (xlat, lods, maskmov, strings, the stack)
  bool moffs = false;            // A0-A3 absolute-offset form
  bool uses_high_byte = false;   // an explicit AH/CH/DH/BH operand
  bool divides = false;          // div or idiv: #DE for a zero divisor or a big quotient
  MemoryOperand memory;
  // The segment register (SegmentRegister numbering) of the memory operand,
  // after overrides and the SS default for ESP and EBP bases: the ModRM or
  // moffs operand, else the DS-relative hidden one (the string source, xlat,
  // maskmov). Stack and ES:EDI string operands have fixed segments.
  std::uint8_t segment = kNoRegister;

  // 16/32-bit general registers encoded in ModRM.reg, ModRM.rm (mod == 3)
  // or the opcode, for instructions that need REX to reach guest ESP.
  std::uint8_t reg_gpr = kNoRegister;
  std::uint8_t rm_gpr = kNoRegister;
  std::uint8_t opcode_gpr = kNoRegister;
  // Guest registers read or written, explicitly or implicitly (bit n = reg n).
  std::uint8_t registers_used = 0;

  std::int64_t immediate = 0;         // first immediate, sign-extended
  std::uint32_t immediate2 = 0;       // second immediate (enter's level, far selector)
  std::uint32_t branch_target = 0;    // relative branches
  std::uint8_t condition = 0;         // low nibble of the Jcc opcode
  std::uint8_t special_register = 0;  // CRn or segment register number
  FpuClass fpu_class = FpuClass::kNone;

  std::uint32_t next_eip() const { return eip + length; }
};

}  // namespace bt::decoder
