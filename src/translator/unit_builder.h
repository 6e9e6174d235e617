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

// What a callout record tells the runtime: the instruction to finish, and
// the UnitKey::mode of the unit it is in.
struct CalloutRecord {
  DecodedInstruction instruction;
  std::uint32_t unit_mode = 0;
};

// Whether a legacy prefix of `instruction` is `prefix`.
inline bool HasPrefix(const DecodedInstruction& instruction, std::uint8_t prefix) {
  for (unsigned i = 0; i < instruction.prefix_count; ++i) {
    if (instruction.bytes[i] == prefix) return true;
  }
  return false;
}

// Whether units of `mode` make guest calls and returns host calls and
// returns on the return stack (kReturnStackGuardOffset): with chaining, where
// CS is flat, since an empty stack's sentinel looks the return address up in
// the indirect table, whose entries are flat units'.
inline bool ReturnStackFor(bool chaining, std::uint32_t mode) {
  return chaining && !(mode & kModeCodeSegment);
}

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
  bool UsesReturnStack() const { return ReturnStackFor(chaining_, mode()); }

  // Starts the host code of `instruction`; a host fault from here on is
  // reported at its EIP.
  void BeginInstruction(const DecodedInstruction& instruction, Fixup fixup = Fixup::kNone,
                        std::uint8_t argument = 0);
  // A fault from here on needs `fixup` to recover the guest state.
  void SetFixup(Fixup fixup, std::uint8_t argument = 0);
  // Reads the poll page (see kPollOffset); its fault leaves for the
  // dispatcher with the guest about to run `resume_eip`, and nothing of it
  // done. Only a unit's first poll reads it.
  void EmitEventPoll(std::uint32_t resume_eip);

  // How the unit's code reaches segment `segment` (SegmentRegister): flat,
  // adding a base read at run time (FS, GS), or adding the base after a
  // limit check (any data segment the unit's mode has checked).
  enum class SegmentUse : std::uint8_t { kFlat, kBased, kChecked };
  SegmentUse UseOf(std::uint8_t segment) const;
  // The same for the memory operand of `instruction`; kFlat for lea.
  SegmentUse OperandUse(const DecodedInstruction& instruction) const;

  // The guest memory operand of `instruction` as a gs: + addr32 host operand
  // of `size` bytes. 16-bit addressing and operands with a segment base are
  // computed into r14 first, so the caller must not need r14 until the
  // operand has been used; a checked segment's limit is checked for `size`
  // bytes.
  x86::Mem GuestMemory(const DecodedInstruction& instruction, unsigned size);
  // Computes the operand's 32-bit guest offset into `dest` without flags.
  void EffectiveAddress(const DecodedInstruction& instruction, const x86::Gp& dest);
  // Computes the operand's linear address into `dest`: the offset plus the
  // segment base where the unit reaches its segment with one. With `check`,
  // an access of `bytes` (0: the operand's size) through a checked segment
  // is checked first (CheckLimit).
  void LinearAddress(const DecodedInstruction& instruction, const x86::Gp& dest, bool check,
                     unsigned bytes = 0);
  // Raises #GP(0) (#SS(0) for SS) unless the `bytes` at the zero-extended
  // offset in `offset` lie within the bounds of segment `segment`, for a
  // write if `write`. Leaves the guest registers and flags alone; clobbers
  // r8 and r9, so `offset` must be none of rcx, r8 and r9.
  void CheckLimit(std::uint8_t segment, const x86::Gp& offset, unsigned bytes, bool write);
  // Whether a branch to offset `target` leaves the unit's CS (its limit,
  // kModeCodeSegment): the branch then raises #GP(0) instead.
  bool BeyondCodeLimit(std::uint32_t target) const {
    return (mode() & kModeCodeSegment) && target > unit_->key.code_limit;
  }
  // The #GP(0) of a branch beyond CS's limit, at the current instruction
  // with the guest state it found.
  void EmitCodeLimitFault() { EmitSegmentFault(kGeneralProtection); }
  // Raises #GP(0) unless the offset in `target` (zero-extended) lies within
  // CS's limit; nothing where CS is flat. Leaves the guest registers and
  // flags alone; clobbers r9, so `target` must be neither rcx nor r9.
  void CheckCodeLimit(const x86::Gp& target);
  // Adds the base of segment `segment` to `dest` without flags, wrapping at
  // 4 GiB; `temp` keeps the base.
  void AddSegmentBase(std::uint8_t segment, const x86::Gp& dest,
                      const x86::Gp& temp = kSegmentBase);

  // Guest stack memory relative to a guest register (ESP, or EBP for leave):
  // At(offset, size) is the host operand of [register + offset].
  struct StackFrame {
    x86::Gp base;  // 32-bit, so that base + offset wraps at 4 GiB
    std::int32_t bias = 0;
    x86::Mem At(std::int32_t offset, unsigned size) const;
  };
  // The stack bytes [`reg` + first, `reg` + first + bytes) that an
  // instruction reads (or writes, if `write`): with a flat SS straight
  // through `reg`; with SS checked, the range is checked once and `scratch`
  // gets the linear address of `reg` + first.
  StackFrame Stack(const x86::Gp& reg, std::int32_t first, unsigned bytes, bool write,
                   const x86::Gp& scratch = kScratch);

  // A direct exit to `target_eip` that the dispatcher may chain.
  void EmitDirectExit(std::uint32_t target_eip);
  // Leaves for `target_eip` if guest condition `condition` (a Jcc
  // encoding's low nibble) holds; chaining patches the jcc itself. A
  // target beyond CS's limit raises #GP(0) instead.
  void EmitConditionalExit(std::uint8_t condition, std::uint32_t target_eip);
  // An exit to the guest address in r14d through the inline lookup table,
  // or through the dispatcher where CS is not flat.
  void EmitIndirectExit();
  // A guest call's transfer, after the return address is pushed: with
  // chaining, a host call on the return stack (kReturnStackGuardOffset) to
  // `target_eip` (a chainable exit) or to the guest address in r14d, whose
  // continuation goes on with the code emitted next when the guest returns
  // to `return_eip`, and looks the guest's return address up otherwise.
  // Without chaining, an exit like a jump's.
  void EmitDirectCall(std::uint32_t target_eip, std::uint32_t return_eip);
  void EmitIndirectCall(std::uint32_t return_eip);
  // A guest return's transfer to the guest address in r14d, the stack
  // already popped: a host ret to the continuation of the matching call.
  void EmitReturn();
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
  // A callout before a string instruction through a checked segment: the
  // runtime checks every iteration's access, and if one is out of bounds
  // runs the instruction itself.
  void EmitStringCheck(const DecodedInstruction& instruction);
  // Copies raw host bytes.
  void Embed(const std::uint8_t* bytes, std::size_t size) { assembler_.embed(bytes, size); }

  // Bytes of cold memory Finish() needs per exit.
  static constexpr std::size_t kSlowPathBytes = 24;

  // Finalizes the code at code_base, the exits' slow paths at `cold`
  // (kSlowPathBytes per exit, outside the hot code) and the continuations'
  // checks at `continuation_checks` (one per call); returns the code size.
  std::size_t Finish(std::uint8_t* cold, std::uint16_t* continuation_checks);

 private:
  struct PendingExit {
    asmjit::Label jump;
    asmjit::Label slow_path;
    unsigned rel32_offset;  // of the rel32 field within the jump
    ExitLink* link;
  };

  static constexpr std::uint8_t kStackFault = 12, kGeneralProtection = 13;

  PendingExit& NewExit(std::uint32_t target_eip, unsigned rel32_offset);
  // A trap that the fault map turns into the guest's exception `vector`
  // (error code 0) at the current instruction.
  void EmitSegmentFault(std::uint8_t vector);
  // Where a host ret lands after a call: falls through if r14d is
  // `return_eip`, else looks r14d up; continuation_checks_ records the
  // offset of the check's loop.
  void EmitContinuation(std::uint32_t return_eip);

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
  bool polled_ = false;
  Fixup current_fixup_ = Fixup::kNone;
  std::uint8_t current_argument_ = 0;
  PendingExit exits_[kMaxExits];
  std::uint16_t continuation_checks_[kMaxExits];
  std::uint8_t continuation_count_ = 0;
  asmjit::Label continuation_lookup_;
  asmjit::CodeHolder code_;
  x86::Assembler assembler_;
};

// Emitters by instruction class; each handles the kinds listed in its file.
void EmitIdent(UnitBuilder& b, const DecodedInstruction& insn);
void EmitStack(UnitBuilder& b, const DecodedInstruction& insn);
// Whether `insn` may be one of a run of pushes and pops that moves ESP once
// (EmitStackRun): a 32-bit push of a register or an immediate, or pop of a
// register, other than ESP, through a flat SS.
bool JoinsStackRun(const UnitBuilder& b, const DecodedInstruction& insn);
// The `count` consecutive instructions at `run`, which all join stack runs,
// each begun as an instruction of its own (a pop of a register, alone,
// loads it directly, where EmitStack goes through a scratch register).
void EmitStackRun(UnitBuilder& b, const DecodedInstruction* run, unsigned count);
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
