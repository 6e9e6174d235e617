#include "decoder/decoder.h"

#include <doctest/doctest.h>

#include <initializer_list>
#include <vector>

namespace bt::decoder {
namespace {

DecodedInstruction DecodeBytes(std::initializer_list<std::uint8_t> bytes, std::uint32_t eip = 0) {
  static const Decoder decoder;
  std::vector<std::uint8_t> buffer(bytes);
  buffer.resize(15, 0x90);
  DecodedInstruction insn;
  REQUIRE(decoder.Decode(eip, buffer.data(), buffer.size(), insn));
  return insn;
}

TEST_CASE("short inc/dec forms are re-encoded, the ModRM forms are copied") {
  CHECK(DecodeBytes({0x44}).kind == Kind::kIncDecShort);  // inc esp
  CHECK(DecodeBytes({0xFF, 0xC4}).kind == Kind::kIdent);  // inc esp
}

TEST_CASE("ESP operands are reported per ModRM field") {
  DecodedInstruction insn = DecodeBytes({0x89, 0xE5});  // mov ebp, esp
  CHECK(insn.kind == Kind::kIdent);
  CHECK(insn.reg_gpr == 4);
  CHECK(insn.rm_gpr == 5);
  insn = DecodeBytes({0x8B, 0x44, 0x24, 0x08});  // mov eax, [esp+8]
  CHECK(insn.has_memory);
  CHECK(insn.memory.base == 4);
  CHECK(insn.memory.displacement == 8);
  CHECK(insn.sib_offset == 2);
}

TEST_CASE("high-byte registers are flagged because REX would redefine them") {
  CHECK(DecodeBytes({0x8A, 0x64, 0x24, 0x04}).uses_high_byte);        // mov ah, [esp+4]
  CHECK_FALSE(DecodeBytes({0x8A, 0x44, 0x24, 0x04}).uses_high_byte);  // mov al, [esp+4]
}

TEST_CASE("16-bit addressing and absolute offsets") {
  DecodedInstruction insn = DecodeBytes({0x67, 0x8B, 0x40, 0x02});  // mov eax, [bx+si+2]
  CHECK(insn.memory.address16);
  CHECK(insn.memory.base == 3);
  CHECK(insn.memory.index == 6);
  insn = DecodeBytes({0xA1, 0x78, 0x56, 0x34, 0x12});  // mov eax, [0x12345678]
  CHECK(insn.moffs);
  CHECK(static_cast<std::uint32_t>(insn.memory.displacement) == 0x12345678);
}

TEST_CASE("lods and xlat keep their implicit DS operand and are copied") {
  CHECK(DecodeBytes({0xAC}).kind == Kind::kIdent);
  CHECK(DecodeBytes({0xAC}).implicit_memory);
  CHECK(DecodeBytes({0xD7}).implicit_memory);
  CHECK(DecodeBytes({0xF3, 0xA5}).kind == Kind::kStringEs);  // rep movsd
  CHECK(DecodeBytes({0xF3, 0xA5}).rep == 1);
}

TEST_CASE("ins and outs are callouts with their element size and the source's segment") {
  constexpr std::uint8_t kDs = 3, kFs = 4;
  const DecodedInstruction insb = DecodeBytes({0xF3, 0x6C});  // rep insb
  CHECK(insb.kind == Kind::kIns);
  CHECK(insb.rep == 1);
  CHECK(insb.operand_size == 1);
  CHECK(insb.segment == kNoRegister);                  // ES:EDI, which takes no override
  CHECK(DecodeBytes({0x66, 0x6D}).operand_size == 2);  // insw
  const DecodedInstruction outsd = DecodeBytes({0x6F});
  CHECK(outsd.kind == Kind::kOuts);
  CHECK(outsd.rep == 0);
  CHECK(outsd.operand_size == 4);
  CHECK(outsd.segment == kDs);
  CHECK(DecodeBytes({0x64, 0xF3, 0x6E}).segment == kFs);  // rep outsb fs:[esi]
  CHECK(DecodeBytes({0x64, 0xF3, 0x6E}).operand_size == 1);
  // 16-bit addressing (SI, DI, CX) is not supported.
  CHECK(DecodeBytes({0x67, 0xF3, 0x6C}).kind == Kind::kUnsupported);
}

TEST_CASE("memory operands carry their segment: overrides, and SS for ESP and EBP bases") {
  constexpr std::uint8_t kEs = 0, kCs = 1, kSs = 2, kDs = 3, kFs = 4;
  CHECK(DecodeBytes({0x8B, 0x03}).segment == kDs);              // mov eax, [ebx]
  CHECK(DecodeBytes({0x8B, 0x45, 0x08}).segment == kSs);        // mov eax, [ebp+8]
  CHECK(DecodeBytes({0x8B, 0x44, 0x24, 0x08}).segment == kSs);  // mov eax, [esp+8]
  CHECK(DecodeBytes({0x3E, 0x8B, 0x45, 0x08}).segment == kDs);  // ds: [ebp+8]
  CHECK(DecodeBytes({0x26, 0x8B, 0x03}).segment == kEs);        // es: [ebx]
  CHECK(DecodeBytes({0x2E, 0x8B, 0x03}).segment == kCs);        // cs: [ebx]
  CHECK(DecodeBytes({0x36, 0xA1, 0, 0, 0, 0}).segment == kSs);  // mov eax, ss:[0]
  CHECK(DecodeBytes({0x64, 0xFF, 0x30}).segment == kFs);        // push dword fs:[eax]
  CHECK(DecodeBytes({0x26, 0xA4}).segment == kEs);              // movsb from es:[esi]
  CHECK(DecodeBytes({0xAE}).segment == kNoRegister);            // scasb: ES:EDI only
  CHECK(DecodeBytes({0x64, 0xD7}).segment == kFs);              // xlat fs:[ebx+al]
  CHECK(DecodeBytes({0x66, 0x0F, 0xF7, 0xC1}).segment == kDs);  // maskmovdqu [edi]
  CHECK(DecodeBytes({0x50}).segment == kNoRegister);            // push eax
}

TEST_CASE("nop and prefetch name memory without accessing it; clflush touches a byte") {
  const DecodedInstruction nop = DecodeBytes({0x0F, 0x1F, 0x00});  // nop [eax]
  CHECK_FALSE(nop.memory.read);
  CHECK_FALSE(nop.memory.written);
  CHECK_FALSE(DecodeBytes({0x0F, 0x18, 0x00}).memory.read);  // prefetchnta [eax]
  CHECK(DecodeBytes({0x0F, 0xAE, 0x38}).memory.bytes == 1);  // clflush [eax]
  CHECK(DecodeBytes({0x0F, 0xAE, 0x38}).memory.read);
}

TEST_CASE("SSE2 movsd is not the string instruction") {
  CHECK(DecodeBytes({0xF2, 0x0F, 0x10, 0xC1}).kind == Kind::kIdent);  // movsd xmm0, xmm1
}

TEST_CASE("branches carry their target and condition") {
  DecodedInstruction insn = DecodeBytes({0x75, 0xFE}, 0x1000);  // jnz $
  CHECK(insn.kind == Kind::kJcc);
  CHECK(insn.condition == 5);
  CHECK(insn.branch_target == 0x1000);
  insn = DecodeBytes({0xE8, 0x00, 0x00, 0x00, 0x00}, 0x2000);
  CHECK(insn.kind == Kind::kCallRelative);
  CHECK(insn.branch_target == 0x2005);
  CHECK(DecodeBytes({0xC3}).kind == Kind::kRet);
  CHECK(DecodeBytes({0xFF, 0x24, 0x85, 0, 0x10, 0, 0}).kind == Kind::kJmpIndirect);
}

TEST_CASE("sensitive and privileged instructions become callouts") {
  CHECK(DecodeBytes({0x0F, 0x22, 0xC0}).kind == Kind::kMovToCr);  // mov cr0, eax
  CHECK(DecodeBytes({0x0F, 0x22, 0xC0}).special_register == 0);
  CHECK(DecodeBytes({0x8E, 0xD8}).kind == Kind::kMovToSegment);  // mov ds, ax
  CHECK(DecodeBytes({0x9C}).kind == Kind::kPushf);
  CHECK(DecodeBytes({0x9D}).kind == Kind::kPopf);
  CHECK(DecodeBytes({0xE6, 0xF4}).kind == Kind::kOut);
  CHECK(DecodeBytes({0x0F, 0xA2}).kind == Kind::kCpuid);
  CHECK(DecodeBytes({0xEA, 0, 0, 0x10, 0, 0x08, 0}).kind == Kind::kJmpFar);
  CHECK(DecodeBytes({0x0F, 0x0B}).kind == Kind::kInvalid);      // ud2
  CHECK(DecodeBytes({0x0F, 0x33}).kind == Kind::kUnsupported);  // rdpmc
  CHECK(DecodeBytes({0x27}).kind == Kind::kLegacy);             // daa: no 64-bit encoding
  CHECK(DecodeBytes({0xCB}).kind == Kind::kLegacy);             // retf
  CHECK(DecodeBytes({0xCF}).kind == Kind::kIret);
}

TEST_CASE("system instructions have their own kinds") {
  CHECK(DecodeBytes({0x0F, 0x01, 0x05, 0, 0, 0, 0}).kind == Kind::kSgdt);
  CHECK(DecodeBytes({0x0F, 0x01, 0x0D, 0, 0, 0, 0}).kind == Kind::kSidt);
  CHECK(DecodeBytes({0x0F, 0x00, 0xC0}).kind == Kind::kSldt);
  CHECK(DecodeBytes({0x0F, 0x00, 0xC8}).kind == Kind::kStr);
  CHECK(DecodeBytes({0x0F, 0x01, 0xE0}).kind == Kind::kSmsw);
  CHECK(DecodeBytes({0x0F, 0x01, 0xF0}).kind == Kind::kLmsw);
  CHECK(DecodeBytes({0x0F, 0x06}).kind == Kind::kClts);
  CHECK(DecodeBytes({0x0F, 0x00, 0xD0}).kind == Kind::kLldt);
  CHECK(DecodeBytes({0x0F, 0x00, 0xD8}).kind == Kind::kLtr);
  DecodedInstruction lar = DecodeBytes({0x0F, 0x02, 0xC1});  // lar eax, ecx
  CHECK(lar.kind == Kind::kLar);
  CHECK(lar.reg_gpr == 0);
  CHECK(lar.rm_gpr == 1);
  CHECK(DecodeBytes({0x0F, 0x03, 0x00}).kind == Kind::kLsl);
  CHECK(DecodeBytes({0x0F, 0x00, 0xE0}).kind == Kind::kVerr);
  CHECK(DecodeBytes({0x0F, 0x00, 0xE8}).kind == Kind::kVerw);
  CHECK(DecodeBytes({0x0F, 0x32}).kind == Kind::kRdmsr);
  CHECK(DecodeBytes({0x0F, 0x30}).kind == Kind::kWrmsr);
  CHECK(DecodeBytes({0x0F, 0x34}).kind == Kind::kSysenter);
  CHECK(DecodeBytes({0x0F, 0x35}).kind == Kind::kSysexit);
}

// SDM Vol. 3A table 2-2: which CR0.EM/MP/TS rule applies.
TEST_CASE("x87, MMX and SSE instructions are classed for CR0.EM, MP and TS") {
  CHECK(DecodeBytes({0xD9, 0xE8}).fpu_class == FpuClass::kX87);        // fld1
  CHECK(DecodeBytes({0xDB, 0xE3}).fpu_class == FpuClass::kX87);        // fninit
  CHECK(DecodeBytes({0xDF, 0x08}).fpu_class == FpuClass::kX87);        // fisttp (SSE3)
  CHECK(DecodeBytes({0x0F, 0xAE, 0x00}).fpu_class == FpuClass::kX87);  // fxsave
  CHECK(DecodeBytes({0x0F, 0xAE, 0x08}).fpu_class == FpuClass::kX87);  // fxrstor
  CHECK(DecodeBytes({0x9B}).fpu_class == FpuClass::kWait);
  CHECK(DecodeBytes({0x0F, 0x6E, 0xC0}).fpu_class == FpuClass::kMmx);        // movd mm0, eax
  CHECK(DecodeBytes({0x0F, 0x77}).fpu_class == FpuClass::kMmx);              // emms
  CHECK(DecodeBytes({0x0F, 0x57, 0xC0}).fpu_class == FpuClass::kSse);        // xorps
  CHECK(DecodeBytes({0xF2, 0x0F, 0x2C, 0x00}).fpu_class == FpuClass::kSse);  // cvttsd2si eax, [eax]
  CHECK(DecodeBytes({0x0F, 0xAE, 0x10}).fpu_class == FpuClass::kSse);        // ldmxcsr
  CHECK(DecodeBytes({0x66, 0x0F, 0xD7, 0xC0}).fpu_class == FpuClass::kSse);  // pmovmskb eax, xmm0
  // No FPU or SIMD state: no #NM.
  CHECK(DecodeBytes({0x0F, 0xC3, 0x00}).fpu_class == FpuClass::kNone);              // movnti
  CHECK(DecodeBytes({0x0F, 0x18, 0x00}).fpu_class == FpuClass::kNone);              // prefetchnta
  CHECK(DecodeBytes({0x0F, 0xAE, 0xF8}).fpu_class == FpuClass::kNone);              // sfence
  CHECK(DecodeBytes({0x0F, 0xAE, 0xE8}).fpu_class == FpuClass::kNone);              // lfence
  CHECK(DecodeBytes({0x0F, 0xAE, 0x38}).fpu_class == FpuClass::kNone);              // clflush
  CHECK(DecodeBytes({0xF3, 0x0F, 0xB8, 0xC0}).fpu_class == FpuClass::kNone);        // popcnt
  CHECK(DecodeBytes({0xF2, 0x0F, 0x38, 0xF0, 0xC0}).fpu_class == FpuClass::kNone);  // crc32
  CHECK(DecodeBytes({0xF3, 0x90}).fpu_class == FpuClass::kNone);                    // pause
  CHECK(DecodeBytes({0x89, 0xD8}).fpu_class == FpuClass::kNone);
}

TEST_CASE("a truncated instruction is reported as incomplete") {
  static const Decoder decoder;
  const std::uint8_t bytes[] = {0xB8, 0x01};  // mov eax, imm32 cut short
  DecodedInstruction insn;
  CHECK_FALSE(decoder.Decode(0, bytes, sizeof(bytes), insn));
}

}  // namespace
}  // namespace bt::decoder
