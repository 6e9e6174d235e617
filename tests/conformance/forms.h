// The instruction forms the conformance tester covers, and test cases for
// them. A form is one encoding pattern of one instruction (mnemonic and
// operand signature, e.g. "add r/m32, imm8"), found by decoding every
// candidate opcode with Zydis in 32-bit legacy mode; it is kept when a CPL3
// program can run it on a CPU with libbt's CPUID (src/runtime/cpuid.cc) and
// its result does not depend on the host environment. ExcludedClasses() says
// what was left out and why.
#pragma once

#include "test_case.h"

#include <cstdint>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <vector>

namespace bt::conformance {

// Where a generator's decisions come from: a PRNG, or a fuzzer's bytes.
class RandomSource {
 public:
  virtual ~RandomSource() = default;
  // A value in [0, bound); bound 0 means the full 64-bit range.
  virtual std::uint64_t Below(std::uint64_t bound) = 0;

  std::uint32_t Bits32() { return static_cast<std::uint32_t>(Below(std::uint64_t{1} << 32)); }
  bool OneIn(std::uint64_t n) { return Below(n) == 0; }
  template <typename T>
  const T& Pick(std::span<const T> items) {
    return items[Below(items.size())];
  }
};

class PrngSource final : public RandomSource {
 public:
  explicit PrngSource(std::mt19937_64& rng) : rng_(rng) {}
  std::uint64_t Below(std::uint64_t bound) override { return bound ? rng_() % bound : rng_(); }

 private:
  std::mt19937_64& rng_;
};

struct InstructionForm {
  std::string key;                     // "add r/m32, imm8": mnemonic and operand signature
  std::string instruction_class;       // coverage table row: "base integer", "x87", "sse2", ...
  std::vector<std::uint8_t> encoding;  // one valid encoding of the form

  // The layout of `encoding`, which case generation re-encodes with other
  // operands: prefixes, opcode (escapes included), then ModRM, SIB and
  // displacement, or a moffs displacement, then the immediates.
  std::uint8_t prefix_bytes = 0;
  std::uint8_t opcode_bytes = 0;
  bool has_modrm = false;
  bool reg_is_operand = false;       // else ModRM.reg is an opcode extension
  bool rm_is_operand = false;        // with mod=3; else ModRM.rm is an opcode extension
  bool register_variant = false;     // mod=3 encodings belong to the form
  bool memory_variant = false;       // mod!=3 encodings belong to the form
  bool opcode_has_register = false;  // the low three opcode bits name a register (50+r)
  std::uint8_t moffs_bytes = 0;      // absolute-address displacement without ModRM (A0-A3)
  std::uint8_t immediate_bytes = 0;  // all immediates together

  // Forms that are not a single decodable instruction.
  enum class Special : std::uint8_t {
    kNone,
    kControlledPopfd,  // push imm32; popfd with a value the SDM makes CPL-independent
    kLockRegister,     // lock on a register operand: #UD, and Zydis refuses it
  };
  Special special = Special::kNone;
};

struct ExcludedClass {
  std::string name;
  std::string reason;
  std::vector<std::string> mnemonics;  // what the enumeration left out for it
};

// Every kept form, in opcode-map order (enumerated once, then copied).
std::vector<InstructionForm> EnumerateForms();
std::vector<ExcludedClass> ExcludedClasses();

std::vector<TestCase> GenerateCases(const InstructionForm& form, std::mt19937_64& rng,
                                    unsigned count);
// Every 32-bit ModRM/SIB addressing combination of mod 0-2, and the 24 16-bit
// ones (0x67), with a handful of instructions; class "addressing".
std::vector<TestCase> GenerateAddressingCases(std::mt19937_64& rng);

// Building blocks shared with the random-program generator.

// The ModRM memory operand of one instance. For 32-bit addressing rm=4
// selects the SIB byte; mod=0 rm=5 and SIB base=5 with mod=0 mean disp32
// without a base.
struct ModRmAddress {
  std::uint8_t mod = 0;  // 0-2
  std::uint8_t rm = 0;
  std::uint8_t sib = 0;
  std::int32_t displacement = 0;
  bool address16 = false;  // encoded after a 0x67 prefix

  int Base() const;   // register number, or -1
  int Index() const;  // register number, or -1
  unsigned Scale() const;
  unsigned DisplacementBytes() const;
  // [base + index*scale + disp] with these registers; base 5 needs a displacement.
  static ModRmAddress Make(int base, int index, unsigned scale, unsigned displacement_bytes);
};

// The free choices of one instance of a form.
struct Instance {
  bool memory = false;
  std::uint8_t reg = 0;              // ModRM.reg when it names a register
  std::uint8_t rm = 0;               // register variant: ModRM.rm when it names a register
  std::uint8_t opcode_register = 0;  // when the opcode names a register
  ModRmAddress address;              // memory variant
  std::uint32_t moffs = 0;
  std::uint8_t segment_prefix = 0;  // 0, or 0x26/0x36/0x3E/0x64/0x65
  std::uint64_t immediates = 0;     // little-endian, immediate_bytes of it used
};

std::vector<std::uint8_t> Encode(const InstructionForm& form, const Instance& instance);

// The immediates of an instance of `form`, picked for what they do: shift
// counts, nesting levels, edge values; 0 for branch displacements.
std::uint64_t ChooseImmediates(const InstructionForm& form, RandomSource& random);

// What one instruction does to the general registers, memory and flags (EFLAGS bit positions).
struct InstructionEffects {
  bool valid = false;
  unsigned length = 0;
  std::string mnemonic;
  unsigned operand_bits = 0;
  std::uint8_t gprs_read = 0;                // bit per register number, any width
  std::uint8_t gprs_written = 0;             // the ESP of push/pop/call/ret included
  std::uint8_t gprs_written_explicitly = 0;  // by operands that the encoding names
  bool uses_stack = false;
  unsigned stack_bytes = 0;  // what one push or pop moves
  bool branches = false;
  bool string_operation = false;
  bool repeated = false;  // rep/repe/repne
  bool has_modrm_memory = false;
  unsigned modrm_memory_bytes = 0;
  // Base registers of memory operands other than the ModRM one and the stack (bit per register).
  std::uint8_t implicit_memory_bases = 0;
  std::uint32_t flags_tested = 0;
  std::uint32_t flags_defined = 0;    // always written with a defined value
  std::uint32_t flags_undefined = 0;  // may be left undefined
};
// `count` is the shift or rotate count if known (imm8, or CL's value).
InstructionEffects Analyze(std::span<const std::uint8_t> code,
                           std::optional<std::uint32_t> count = std::nullopt);

// The arithmetic flags: CF PF AF ZF SF OF.
inline constexpr std::uint32_t kArithmeticFlags = 0x8D5;
inline constexpr std::uint32_t kDataEnd = CONF_DATA_ADDRESS + CONF_DATA_BYTES;
inline constexpr std::uint32_t kStackTop = kDataEnd - 0x100;

// Random registers and flags, x87/SSE state and data pages; ESP at kStackTop.
void InitializeState(TestCase& test, RandomSource& random);
std::uint32_t EdgeValue32(RandomSource& random);

}  // namespace bt::conformance
