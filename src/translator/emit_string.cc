// movs, stos, cmps, scas (and lods from a segment with a base): their ES:EDI
// operand cannot take a segment override, and 64-bit mode ignores the ES
// and DS bases. The window is 4 GiB aligned, so OR-ing the window base into
// RSI/RDI (a flag-free lea on the zero-extended register) gives host
// addresses whose low 32 bits are the guest addresses; the host's own string
// instruction then runs with the guest's DF and REP count. Running off
// either end of the window lands in guard space, where the fault handler
// wraps the register by 4 GiB as a 386 would.
//
// Segment bases (FS or GS for the source, and any segment in units that
// have it checked) are added to ESI/EDI around the instruction, so that they
// run over linear addresses, and taken off again afterwards (or in the
// fault fix-up). Limits are checked by a callout before the instruction:
// one check covers every iteration of a rep (a check per iteration would
// need one per element in translated code), and the rare instruction that
// would leave its segment runs in the runtime instead, element by element,
// to fault where the processor would.
#include "translator/unit_builder.h"

namespace bt::translator {
namespace {

constexpr std::uint8_t kRepPrefixes[] = {0xF2, 0xF3, 0x66, 0xF0};

bool UsesEsi(std::uint8_t opcode) {
  return (opcode >= 0xA4 && opcode <= 0xA7) || opcode == 0xAC || opcode == 0xAD;
}

bool UsesEdi(std::uint8_t opcode) { return opcode != 0xAC && opcode != 0xAD; }

// Takes the base in `base` (which AddSegmentBase left there) off `reg`
// without touching flags: ~base + 1 is -base.
void SubtractBase(x86::Assembler& a, const x86::Gp& reg, const x86::Gp& base) {
  a.not_(base.r32());
  a.lea(reg.r32(), x86::ptr(reg.r64(), base.r64(), 0, 1));
}

}  // namespace

void EmitString(UnitBuilder& b, const DecodedInstruction& insn) {
  using Use = UnitBuilder::SegmentUse;
  auto& a = b.a();
  const std::uint8_t opcode = insn.bytes[insn.prefix_count];
  const bool esi = UsesEsi(opcode), edi = UsesEdi(opcode);
  const Use source = esi ? b.UseOf(insn.segment) : Use::kFlat;
  const Use destination = edi ? b.UseOf(kEs) : Use::kFlat;
  if (source == Use::kChecked || destination == Use::kChecked) b.EmitStringCheck(insn);
  if (edi) {
    if (destination != Use::kFlat) b.AddSegmentBase(kEs, x86::edi, x86::r11);
    a.lea(x86::rdi, x86::ptr(kWindow, x86::rdi));
  }
  if (esi) {
    if (source != Use::kFlat) b.AddSegmentBase(insn.segment, x86::esi, x86::r10);
    a.lea(x86::rsi, x86::ptr(kWindow, x86::rsi));
  }
  const std::uint8_t source_base = source != Use::kFlat ? insn.segment : kNoStringBase;
  const std::uint8_t destination_base =
      destination != Use::kFlat ? static_cast<std::uint8_t>(kEs) : kNoStringBase;
  b.SetFixup(Fixup::kStringAccess, static_cast<std::uint8_t>(source_base | destination_base << 4));
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
  if (edi) {
    a.mov(x86::edi, x86::edi);
    if (destination != Use::kFlat) SubtractBase(a, x86::edi, x86::r11);
  }
  if (esi) {
    a.mov(x86::esi, x86::esi);
    if (source != Use::kFlat) SubtractBase(a, x86::esi, x86::r10);
  }
}

}  // namespace bt::translator
