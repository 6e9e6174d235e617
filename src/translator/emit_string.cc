// movs, stos, cmps, scas (and lods from FS/GS): their ES:EDI operand cannot take a segment
// override, and 64-bit mode ignores the ES base. The window is 4 GiB
// aligned, so OR-ing the window base into RSI/RDI (a flag-free lea on the
// zero-extended register) gives host addresses whose low 32 bits are the guest
// addresses; the host's own string instruction then runs with the guest's DF
// and REP count. Running off either end of the window lands in guard space,
// where the fault handler wraps the register by 4 GiB as a 386 would.
#include "translator/unit_builder.h"

namespace bt::translator {
namespace {

constexpr std::uint8_t kRepPrefixes[] = {0xF2, 0xF3, 0x66, 0xF0};

bool UsesEsi(std::uint8_t opcode) {
  return (opcode >= 0xA4 && opcode <= 0xA7) || opcode == 0xAC || opcode == 0xAD;
}

bool UsesEdi(std::uint8_t opcode) { return opcode != 0xAC && opcode != 0xAD; }

}  // namespace

void EmitString(UnitBuilder& b, const DecodedInstruction& insn) {
  auto& a = b.a();
  const std::uint8_t opcode = insn.bytes[insn.prefix_count];
  const bool esi = UsesEsi(opcode), edi = UsesEdi(opcode);
  const bool based = insn.based_segment != decoder::kNoRegister;
  if (edi) a.lea(x86::rdi, x86::ptr(kWindow, x86::rdi));
  if (esi) {
    // An FS/GS source: ESI runs over linear addresses while the instruction
    // runs, and the base comes off again afterwards (or in the fault fix-up).
    b.AddSegmentBase(insn, x86::esi);
    a.lea(x86::rsi, x86::ptr(kWindow, x86::rsi));
  }
  b.SetFixup(Fixup::kStringAccess, insn.based_segment);
  std::uint8_t bytes[8];
  std::size_t size = 0;
  for (unsigned i = 0; i < insn.prefix_count; ++i) {
    for (std::uint8_t keep : kRepPrefixes) {
      if (insn.bytes[i] == keep) bytes[size++] = keep;
    }
  }
  bytes[size++] = opcode;
  b.Embed(bytes, size);
  b.SetFixup(Fixup::kNone);
  if (edi) a.mov(x86::edi, x86::edi);
  if (esi) {
    a.mov(x86::esi, x86::esi);
    if (based) {
      // esi - base without touching flags: ~base + 1 is -base.
      a.not_(kSegmentBase);
      a.lea(x86::esi, x86::ptr(x86::rsi, kSegmentBase.r64(), 0, 1));
    }
  }
}

}  // namespace bt::translator
