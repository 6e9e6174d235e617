// Decodes 32-bit guest code into DecodedInstruction. The only user of Zydis.
#pragma once

#include "decoder/decoded_instruction.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace bt::decoder {

class Decoder {
 public:
  Decoder();
  ~Decoder();
  Decoder(const Decoder&) = delete;
  Decoder& operator=(const Decoder&) = delete;

  // Decodes the instruction at guest address `eip` from `bytes` (at most
  // `available` bytes are valid). Returns false when the bytes do not form a
  // complete instruction; `out` is then a kInvalid instruction.
  bool Decode(std::uint32_t eip, const std::uint8_t* bytes, std::size_t available,
              DecodedInstruction& out) const;

  // Intel-syntax text of the instruction, for messages.
  std::string Disassemble(const DecodedInstruction& instruction) const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// "0f 0b" style hex of the instruction's bytes.
std::string HexBytes(const DecodedInstruction& instruction);

}  // namespace bt::decoder
