// IDENT translation: the guest instruction's own bytes, with its memory
// operand moved into the guest window (gs: + addr32) and guest ESP renamed to
// R12 through REX bits. Handles Kind::kIdent and Kind::kIncDecShort, and
// rdtsc, which runs natively too.
#include "translator/unit_builder.h"

#include <cpuid.h>

#include <cassert>

namespace bt::translator {
namespace {

using decoder::kNoOffset;
using decoder::kNoRegister;

constexpr std::uint8_t kGsPrefix = 0x65;
constexpr std::uint8_t kAddr32Prefix = 0x67;
constexpr std::uint8_t kRex = 0x40, kRexR = 4, kRexB = 1;

bool IsDroppedPrefix(std::uint8_t prefix) {
  switch (prefix) {
    case 0x26:
    case 0x2E:
    case 0x36:
    case 0x3E:
    case 0x64:
    case 0x65:
    case 0x67: return true;  // the translator handles segments; the address size is ours to set
    default: return false;
  }
}

class Encoding {
 public:
  void Byte(std::uint8_t byte) { bytes_[size_++] = byte; }
  void Copy(const std::uint8_t* from, std::size_t count) {
    for (std::size_t i = 0; i < count; ++i) Byte(from[i]);
  }
  const std::uint8_t* data() const { return bytes_; }
  std::size_t size() const { return size_; }

 private:
  std::uint8_t bytes_[32];
  std::size_t size_ = 0;
};

// Legacy prefixes the host should see, then REX.
void CopyPrefixes(const DecodedInstruction& insn, bool memory, bool access, std::uint8_t rex,
                  Encoding& out) {
  if (access) out.Byte(kGsPrefix);
  if (memory) out.Byte(kAddr32Prefix);
  for (unsigned i = 0; i < insn.prefix_count; ++i) {
    if (!IsDroppedPrefix(insn.bytes[i])) out.Byte(insn.bytes[i]);
  }
  if (rex) out.Byte(kRex | rex);
}

// The opcode bytes; 0x82 (an alias of 0x80 that 64-bit mode dropped) as 0x80.
void CopyOpcode(const DecodedInstruction& insn, unsigned opcode_end, Encoding& out) {
  constexpr std::uint8_t kAliasGroup1 = 0x82, kGroup1 = 0x80;
  const std::uint8_t* opcode = insn.bytes + insn.prefix_count;
  out.Byte(*opcode == kAliasGroup1 ? kGroup1 : *opcode);
  out.Copy(opcode + 1, opcode_end - insn.prefix_count - 1u);
}

// Offset of whatever follows the ModRM memory operand (an immediate).
unsigned TailOffset(const DecodedInstruction& insn) {
  if (insn.displacement_offset != kNoOffset) {
    return insn.displacement_offset + insn.displacement_size;
  }
  if (insn.sib_offset != kNoOffset) return insn.sib_offset + 1u;
  return insn.modrm_offset + 1u;
}

void EmitIncDecShort(UnitBuilder& b, const DecodedInstruction& insn) {
  const std::uint8_t opcode = insn.bytes[insn.prefix_count];
  const std::uint8_t reg = opcode & 7;
  Encoding out;
  CopyPrefixes(insn, false, false, reg == kEsp ? kRexB : 0, out);
  out.Byte(0xFF);
  out.Byte(static_cast<std::uint8_t>(0xC0 | ((opcode & 8) ? 1 : 0) << 3 | reg));
  b.Embed(out.data(), out.size());
}

// A legacy register (no REX needed) that the instruction does not touch. Not
// EBP: as an address register, [rbp] with no displacement does not encode.
// An instruction names at most four registers (base, index, a byte register,
// an implicit accumulator), so one of the six is always free.
std::uint8_t PickSpillRegister(const DecodedInstruction& insn) {
  for (std::uint8_t reg : {kEbx, kEdx, kEcx, kEax, kEsi, kEdi}) {
    if (!(insn.registers_used & (1u << reg))) return reg;
  }
  return kNoRegister;
}

// movzx/movsx/crc32 esp, ah and the like: ESP lives in R12, which needs REX,
// and REX turns AH..BH into SPL..DIL. A legacy register the instruction does
// not use stands in for ESP (register operands only, so nothing can fault).
void EmitWithEspStandIn(UnitBuilder& b, const DecodedInstruction& insn) {
  const std::uint8_t stand_in = PickSpillRegister(insn);
  assert(stand_in != kNoRegister);
  auto& a = b.a();
  a.mov(StateField(offsetof(CpuState, spill), 8), kGuestGpr64[stand_in]);
  a.mov(kGuestGpr64[stand_in], x86::r12);
  Encoding out;
  CopyPrefixes(insn, false, false, 0, out);
  CopyOpcode(insn, insn.modrm_offset, out);
  const std::uint8_t modrm = insn.bytes[insn.modrm_offset];
  out.Byte(static_cast<std::uint8_t>((modrm & 0xC7) | stand_in << 3));
  out.Copy(insn.bytes + insn.modrm_offset + 1, insn.length - insn.modrm_offset - 1u);
  b.Embed(out.data(), out.size());
  a.mov(x86::r12, kGuestGpr64[stand_in]);
  a.mov(kGuestGpr64[stand_in], StateField(offsetof(CpuState, spill), 8));
}

// The instruction's own bytes with its memory operand in the guest window.
void EmitRewritten(UnitBuilder& b, const DecodedInstruction& insn) {
  using Use = UnitBuilder::SegmentUse;
  const bool memory = insn.has_memory || insn.moffs || insn.implicit_memory;
  const bool access = memory && !insn.memory.agen;
  const Use use = b.OperandUse(insn);
  std::uint8_t rex = 0;
  if (insn.reg_gpr == kEsp) rex |= kRexR;
  if (insn.rm_gpr == kEsp || insn.opcode_gpr == kEsp) rex |= kRexB;

  // 16-bit addressing has no 64-bit-mode encoding, and a REX prefix would
  // turn AH..BH into SPL..DIL: such operands go through an address register.
  const bool via_register = insn.has_memory && (insn.memory.address16 || use != Use::kFlat ||
                                                (insn.memory.base == kEsp && insn.uses_high_byte));
  if (insn.has_memory && !via_register && insn.memory.base == kEsp) rex |= kRexB;
  if (rex && insn.uses_high_byte) {
    if (insn.reg_gpr == kEsp && !insn.has_memory) {
      EmitWithEspStandIn(b, insn);
    } else {
      b.EmitCallout(insn);  // no host encoding; reported unsupported
    }
    return;
  }

  const unsigned opcode_end = insn.modrm_offset != kNoOffset       ? insn.modrm_offset
                              : insn.moffs                         ? insn.displacement_offset
                              : insn.immediate_offset != kNoOffset ? insn.immediate_offset
                                                                   : insn.length;
  Encoding out;
  if (insn.moffs && use != Use::kFlat) {
    // A0-A3 have no ModRM to name an address register: use the 8A/8B/88/89
    // form with [r14], which holds offset + segment base.
    b.LinearAddress(insn, kScratch, /*check=*/true);
    static constexpr std::uint8_t kModrmForm[4] = {0x8A, 0x8B, 0x88, 0x89};
    CopyPrefixes(insn, true, true, rex | kRexB, out);
    out.Byte(kModrmForm[insn.bytes[insn.prefix_count] - 0xA0]);
    out.Byte(0x06);  // mod 00, reg AL/AX/EAX, rm r14
    b.Embed(out.data(), out.size());
    return;
  }
  if (insn.moffs) {
    // A0-A3 take a 32-bit offset under addr32; a 16-bit one is zero-extended.
    CopyPrefixes(insn, true, true, rex, out);
    CopyOpcode(insn, opcode_end, out);
    std::uint32_t offset = static_cast<std::uint32_t>(insn.memory.displacement);
    if (insn.memory.address16) offset &= 0xFFFF;
    out.Copy(reinterpret_cast<const std::uint8_t*>(&offset), sizeof(offset));
    b.Embed(out.data(), out.size());
    return;
  }
  if (!via_register) {
    CopyPrefixes(insn, memory, access, rex, out);
    CopyOpcode(insn, opcode_end, out);
    if (insn.has_memory) {
      const std::uint8_t modrm = insn.bytes[insn.modrm_offset];
      if ((modrm & 0xC7) == 0x05) {
        // [disp32] is RIP-relative in 64-bit mode; SIB 0x25 is the absolute form.
        out.Byte(static_cast<std::uint8_t>((modrm & 0x38) | 0x04));
        out.Byte(0x25);
        out.Copy(insn.bytes + insn.modrm_offset + 1, insn.length - insn.modrm_offset - 1u);
        b.Embed(out.data(), out.size());
        return;
      }
    }
    out.Copy(insn.bytes + opcode_end, insn.length - opcode_end);
    b.Embed(out.data(), out.size());
    return;
  }

  std::uint8_t address_reg = 14;
  if (insn.uses_high_byte) {
    address_reg = PickSpillRegister(insn);
    assert(address_reg != kNoRegister);
    // A limit check comes before the spill, so that its fault finds the
    // register where it belongs.
    const bool checked = use == Use::kChecked;
    if (checked) b.LinearAddress(insn, kScratch, /*check=*/true);
    b.a().mov(StateField(offsetof(CpuState, spill), 8), kGuestGpr64[address_reg]);
    if (checked) {
      b.a().mov(kGuestGpr32[address_reg], kScratch32);
    } else {
      b.LinearAddress(insn, kGuestGpr32[address_reg], /*check=*/false);
    }
    b.SetFixup(Fixup::kRestoreSpill, address_reg);
  } else {
    b.LinearAddress(insn, kScratch, /*check=*/true);
    rex |= kRexB;
  }
  CopyPrefixes(insn, true, access, rex, out);
  CopyOpcode(insn, opcode_end, out);
  const std::uint8_t modrm = insn.bytes[insn.modrm_offset];
  out.Byte(static_cast<std::uint8_t>((modrm & 0x38) | (address_reg & 7)));
  const unsigned tail = TailOffset(insn);
  out.Copy(insn.bytes + tail, insn.length - tail);
  b.Embed(out.data(), out.size());
  if (address_reg != 14) {
    b.a().mov(kGuestGpr64[address_reg], StateField(offsetof(CpuState, spill), 8));
  }
}

// The linear address of a hidden operand whose offset is in r14: its limit
// checked for `bytes` (a checked segment), its segment's base added.
void ImplicitLinearAddress(UnitBuilder& b, const DecodedInstruction& insn, unsigned bytes,
                           bool write) {
  if (insn.memory.address16) b.a().movzx(kScratch32, kScratch.r16());
  if (b.OperandUse(insn) == UnitBuilder::SegmentUse::kChecked) {
    b.CheckLimit(insn.segment, kScratch, bytes, write);
  }
  b.AddSegmentBase(insn.segment, kScratch);
}

// lods, xlat and maskmov through a segment with a base: their hidden
// DS-relative operand has no ModRM to rewrite.
void EmitImplicitOperand(UnitBuilder& b, const DecodedInstruction& insn) {
  constexpr std::uint8_t kLodsb = 0xAC, kLodsd = 0xAD, kXlat = 0xD7, kMaskmov = 0xF7;
  const std::uint8_t* opcode = insn.bytes + insn.prefix_count;
  auto& a = b.a();
  if (opcode[0] == kLodsb || opcode[0] == kLodsd) {
    EmitString(b, insn);
  } else if (opcode[0] == kXlat) {
    // AL = [EBX + AL], the sum wrapping like any address.
    a.movzx(kScratch32, x86::al);
    a.lea(kScratch32, x86::ptr(x86::rbx, kScratch));
    ImplicitLinearAddress(b, insn, 1, /*write=*/false);
    x86::Mem table = x86::ptr(kScratch32, 0, 1);
    table.setSegment(x86::gs);
    a.mov(x86::al, table);
  } else if (opcode[0] == 0x0F && opcode[1] == kMaskmov) {
    // maskmovq and maskmovdqu store to [EDI]: EDI holds the linear address
    // while the instruction runs.
    a.mov(kScratch32, x86::edi);
    ImplicitLinearAddress(b, insn, HasPrefix(insn, 0x66) ? 16 : 8, /*write=*/true);
    a.mov(StateField(offsetof(CpuState, spill), 8), x86::rdi);
    a.mov(x86::edi, kScratch32);
    b.SetFixup(Fixup::kRestoreSpill, kEdi);
    EmitRewritten(b, insn);
    b.SetFixup(Fixup::kNone);
    a.mov(x86::rdi, StateField(offsetof(CpuState, spill), 8));
  } else {
    b.EmitCallout(insn);  // no such path yet: reported unsupported
  }
}

}  // namespace

void EmitIdent(UnitBuilder& b, const DecodedInstruction& insn) {
  if (insn.kind == decoder::Kind::kIncDecShort) {
    EmitIncDecShort(b, insn);
  } else if (insn.implicit_memory && !insn.has_memory && !insn.moffs &&
             b.OperandUse(insn) != UnitBuilder::SegmentUse::kFlat) {
    EmitImplicitOperand(b, insn);
  } else {
    EmitRewritten(b, insn);
  }
}

namespace {

bool HostHasBmi2() {
  static const bool bmi2 = [] {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    __cpuid_count(7, 0, eax, ebx, ecx, edx);
    return (ebx >> 8 & 1) != 0;
  }();
  return bmi2;
}

}  // namespace

// The guest TSC is the host's plus CpuState::msr.tsc_offset. rorx and lea
// leave the guest's flags alone, which add and shl would not.
bool EmitTimeStamp(UnitBuilder& b) {
  if ((b.mode() & kModeTsd) || !HostHasBmi2()) return false;
  x86::Assembler& a = b.a();
  a.rdtsc();
  a.rorx(x86::rdx, x86::rdx, 32);
  a.lea(x86::rax, x86::ptr(x86::rax, x86::rdx));
  a.mov(kScratch, StateField(offsetof(CpuState, msr) + offsetof(MsrState, tsc_offset), 8));
  a.lea(x86::rax, x86::ptr(x86::rax, kScratch));
  a.rorx(x86::rdx, x86::rax, 32);
  a.mov(x86::edx, x86::edx);
  a.mov(x86::eax, x86::eax);
  return true;
}

}  // namespace bt::translator
