// Builds the host code of one translation unit. The Emit* functions, grouped
// by instruction class in emit_*.cc, append one guest instruction each.
#pragma once

#include "decoder/decoded_instruction.h"
#include "translator/host_registers.h"
#include "translator/trampolines.h"
#include "translator/translation_unit.h"

#include <asmjit/x86.h>

namespace bt::translator {

using decoder::DecodedInstruction;

// What a callout record tells the runtime: the instruction to finish.
struct CalloutRecord {
  DecodedInstruction instruction;
};

class UnitBuilder {
 public:
  // Side exits (conditional branches inside a unit) plus the final two.
  static constexpr unsigned kMaxExits = 18;

  // `unit->exits` must have room for kMaxExits links.
  UnitBuilder(const Trampolines& trampolines, TranslationUnit* unit, std::uint8_t* code_base,
              FaultMapEntry* fault_map, std::uint32_t fault_map_capacity, CalloutRecord* records,
              bool chaining);

  x86::Assembler& a() { return assembler_; }
  // The UnitKey::mode of the unit being built.
  std::uint32_t mode() const { return unit_->key.mode; }
  const Trampolines& trampolines() const { return trampolines_; }

  // Starts the host code of `instruction`; a host fault from here on is
  // reported at its EIP.
  void BeginInstruction(const DecodedInstruction& instruction, Fixup fixup = Fixup::kNone,
                        std::uint8_t argument = 0);
  // A fault from here on needs `fixup` to recover the guest state.
  void SetFixup(Fixup fixup, std::uint8_t argument = 0);

  // The guest memory operand of `instruction` as a gs: + addr32 host operand
  // of `size` bytes. 16-bit addressing is computed into r14 first, so the
  // caller must not need r14 until the operand has been used.
  x86::Mem GuestMemory(const DecodedInstruction& instruction, unsigned size);
  // Computes the operand's 32-bit guest address into `dest` without flags.
  void EffectiveAddress(const DecodedInstruction& instruction, const x86::Gp& dest);
  // For an FS/GS operand, adds the segment base to `dest` (nothing otherwise)
  // and leaves the base in kSegmentBase.
  void AddSegmentBase(const DecodedInstruction& instruction, const x86::Gp& dest);

  // A direct exit to `target_eip` that the dispatcher may chain.
  void EmitDirectExit(std::uint32_t target_eip);
  // Leaves for `target_eip` if guest condition `condition` (a Jcc
  // encoding's low nibble) holds; chaining patches the jcc itself.
  void EmitConditionalExit(std::uint8_t condition, std::uint32_t target_eip);
  // An exit to the guest address in r14d through the inline lookup table.
  void EmitIndirectExit();
  // Calls the runtime for `instruction`; the address of its ModRM or moffs
  // memory operand, if any, is passed in r14d.
  void EmitCallout(const DecodedInstruction& instruction);
  // Around an instruction whose memory operand the runtime resolves: a
  // callout that points GS so that the operand lands in the VMM's mapping
  // of guest RAM, and afterwards GS back at the guest window.
  void EmitResolveMemory(const DecodedInstruction& instruction);
  void EmitReleaseMemory(const DecodedInstruction& instruction, bool device);
  // A callout before a division that raises #DE if the division would.
  void EmitCheckDivide(const DecodedInstruction& instruction);
  // Copies raw host bytes.
  void Embed(const std::uint8_t* bytes, std::size_t size) { assembler_.embed(bytes, size); }

  // Bytes of cold memory Finish() needs per exit.
  static constexpr std::size_t kSlowPathBytes = 24;

  // Finalizes the code at code_base and the exits' slow paths at `cold`
  // (kSlowPathBytes per exit, outside the hot code); returns the code size.
  std::size_t Finish(std::uint8_t* cold);

 private:
  struct PendingExit {
    asmjit::Label jump;
    asmjit::Label slow_path;
    unsigned rel32_offset;  // of the rel32 field within the jump
    ExitLink* link;
  };

  PendingExit& NewExit(std::uint32_t target_eip, unsigned rel32_offset);

  const Trampolines& trampolines_;
  TranslationUnit* unit_;
  std::uint8_t* code_base_;
  FaultMapEntry* fault_map_;
  std::uint32_t fault_map_capacity_;
  std::uint32_t fault_map_size_ = 0;
  CalloutRecord* records_;
  std::uint32_t record_count_ = 0;
  bool chaining_;
  std::uint32_t current_eip_ = 0;
  PendingExit exits_[kMaxExits];
  asmjit::CodeHolder code_;
  x86::Assembler assembler_;
};

// Emitters by instruction class; each handles the kinds listed in its file.
void EmitIdent(UnitBuilder& b, const DecodedInstruction& insn);
void EmitStack(UnitBuilder& b, const DecodedInstruction& insn);
void EmitControl(UnitBuilder& b, const DecodedInstruction& insn);
// A call to a PC thunk ("mov reg, [esp]; ret", the way 32-bit PIC code
// reads EIP), `thunk` the thunk's four bytes as a little-endian dword, done
// inline: the return address is stored as the call's push would, and put
// in the thunk's register. A guard reads the thunk's bytes at run time and
// makes the plain call (which exits the unit) if they differ. It reads them
// as data: a thunk in a page that is readable but not executable (NX) runs,
// where the CPU's fetch would fault.
void EmitPcThunkCall(UnitBuilder& b, const DecodedInstruction& call, std::uint32_t thunk);
void EmitString(UnitBuilder& b, const DecodedInstruction& insn);
// rdtsc inline, with the guest's TSC offset; false where it must be a
// callout (CR4.TSD in the unit's mode, or a host without BMI2).
bool EmitTimeStamp(UnitBuilder& b);

}  // namespace bt::translator
