// Builds translation units: decodes a run of guest instructions and emits
// host code for them into the code cache.
#pragma once

#include "decoder/decoder.h"
#include "translator/code_cache.h"
#include "translator/trampolines.h"
#include "translator/unit_builder.h"

#include <cstdint>

namespace bt::translator {

// Whether the translator can have the runtime resolve the memory operand of
// `insn` (a ModRM or moffs operand of an instruction it otherwise copies).
bool MayResolveMemory(const decoder::DecodedInstruction& insn);

// How the runtime resolves an instruction's memory operand (adaptive
// translation, runtime/adaptive.cc).
enum class Resolution : std::uint8_t {
  kNone,    // the guest window, as usual
  kMemory,  // guest RAM through the page tables; GS comes back inline after
  kDevice,  // maybe a device: a callout after the instruction completes it
};

// What the runtime has learnt about an instruction that kept faulting, and
// wants its translation to do about it (adaptive translation).
struct Adaptation {
  Resolution memory = Resolution::kNone;
  bool check_divide = false;  // div/idiv: a callout raises #DE before it would fault
};

// Where the translator reads guest code from.
class CodeSource {
 public:
  // The 4 KiB guest page at linear address `page_base` as VMM-readable
  // bytes, and its guest-physical page number; null if it has no RAM or
  // cannot be fetched (the source then knows which fault to raise).
  virtual const std::uint8_t* CodePage(std::uint32_t page_base, std::uint32_t* physical_page) = 0;
  // How to translate the instruction at `eip` differently from the usual.
  virtual Adaptation AdaptationAt(std::uint32_t eip) = 0;

 protected:
  ~CodeSource() = default;
};

struct TranslatorCounters {
  std::uint64_t units = 0;
  std::uint64_t instructions = 0;
  std::uint64_t nanoseconds = 0;
};

class Translator {
 public:
  struct Options {
    unsigned max_instructions = 64;
    bool chaining = true;
  };

  // kBeyondLimit: the unit's first instruction does not fit below CS's
  // limit (the runtime raises #GP(0)).
  enum class Status { kOk, kCacheFull, kNoCode, kBeyondLimit };

  Translator(const decoder::Decoder& decoder, CodeCache& cache, const Trampolines& trampolines,
             Options options);

  // Translates the unit at `key`. A `one_shot` unit holds one instruction and
  // is not indexed (used to re-run an instruction that wrote its own page).
  Status Translate(UnitKey key, bool one_shot, CodeSource& source, TranslationUnit** unit);

  const TranslatorCounters& counters() const { return counters_; }
  const Options& options() const { return options_; }

 private:
  static constexpr unsigned kMaxInstructions = 4096;
  static constexpr unsigned kMaxSideExits = UnitBuilder::kMaxExits - 2;
  // Pushes and pops in one run: the ESP it has moved at a fault must fit in
  // Fixup::kEspPending's argument.
  static constexpr unsigned kMaxStackRun = 32;
  // Fault map entries one instruction may need: its start, fix-ups such as
  // a spilled register, and two per limit check (push of a memory operand
  // through checked segments has two checks).
  static constexpr unsigned kFaultEntriesPerInstruction = 8;

  // The guest code of one unit: a superblock that continues past
  // conditional branches (side exits) and follows forward direct jumps
  // within its page.
  struct Run {
    unsigned count = 0;  // instructions in decoded_ (and resolved_)
    std::uint32_t pages[2] = {};
    std::uint8_t page_count = 0;
    bool open = false;  // falls through to `continuation` at its end
    std::uint32_t continuation = 0;
    bool beyond_limit = false;  // decoding stopped at CS's limit
  };

  Run DecodeRun(UnitKey key, unsigned limit, CodeSource& source);
  // How many instructions from decoded_[first] (of `count`) make a run of
  // pushes and pops emitted together (EmitStackRun).
  unsigned StackRunAt(const UnitBuilder& builder, unsigned first, unsigned count) const;
  // Whether `insn` is a call whose return, through the return stack, comes
  // back into its unit (UnitBuilder::EmitDirectCall), which then goes on
  // after it instead of ending.
  bool ReturnsInto(const DecodedInstruction& insn, std::uint32_t mode) const {
    return ReturnStackFor(options_.chaining, mode) &&
           (insn.kind == decoder::Kind::kCallRelative || insn.kind == decoder::Kind::kCallIndirect);
  }
  static Adaptation AdaptationOf(const DecodedInstruction& insn, CodeSource& source);
  // The bytes of the PC thunk `insn` calls (see EmitPcThunkCall), or 0 if
  // it is no call to one or runs in a unit of `mode` with a checked SS or
  // a CS that is not flat.
  static std::uint32_t PcThunkOf(const DecodedInstruction& insn, std::uint32_t mode,
                                 CodeSource& source);
  // Decodes one instruction as a unit of `mode` (UnitKey::mode) runs it.
  bool Decode(std::uint32_t eip, const std::uint8_t* bytes, std::size_t available,
              std::uint32_t mode, DecodedInstruction& insn) const;
  void EmitInstruction(UnitBuilder& builder, const DecodedInstruction& insn);

  const decoder::Decoder& decoder_;
  CodeCache& cache_;
  const Trampolines& trampolines_;
  Options options_;
  TranslatorCounters counters_;
  DecodedInstruction decoded_[kMaxInstructions];
  // Per decoded_ entry: what adaptive translation asks of it.
  Adaptation adaptation_[kMaxInstructions];
  std::uint32_t pc_thunk_[kMaxInstructions];  // PcThunkOf each of decoded_
  FaultMapEntry fault_map_[kFaultEntriesPerInstruction * kMaxInstructions + 2];
};

// True for instructions after which a unit must end.
bool EndsUnit(const DecodedInstruction& insn);
// True for instructions the runtime finishes in C++.
bool IsCallout(const DecodedInstruction& insn);

}  // namespace bt::translator
