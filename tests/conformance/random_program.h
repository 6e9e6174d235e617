// Random instruction sequences over the enumerated forms, for long
// differential runs and for fuzzing. Every program ends: branches only go
// forward and land on instruction boundaries, pushes and pops are balanced
// and keep ESP in the data pages, and memory operands address the data pages
// through EBX, which no generated instruction writes, or through a register
// set by a `mov reg, imm32` right before. The flags left undefined are
// tracked along the program, and no instruction reads one of them.
#pragma once

#include "forms.h"
#include "test_case.h"

#include <cstdint>
#include <memory>
#include <span>

namespace bt::conformance {

class ProgramGenerator {
 public:
  explicit ProgramGenerator(std::uint64_t seed);
  // A libFuzzer input: its bytes are the decisions; once they run out, a
  // PRNG seeded from them takes over.
  explicit ProgramGenerator(std::span<const std::uint8_t> choices);
  ~ProgramGenerator();
  ProgramGenerator(ProgramGenerator&&) noexcept;
  ProgramGenerator& operator=(ProgramGenerator&&) noexcept;

  // A program of `instruction_count` instructions (fewer only if they would
  // not fit in the code pages; TestCase.instruction_count says how many).
  TestCase Generate(unsigned instruction_count);

 private:
  std::unique_ptr<RandomSource> random_;
};

}  // namespace bt::conformance
