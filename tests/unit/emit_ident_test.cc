// The IDENT rewrite, byte for byte: guest encodings in, host encodings out.
#include "decoder/decoder.h"
#include "translator/trampolines.h"
#include "translator/unit_builder.h"

#include <doctest/doctest.h>

#include <initializer_list>
#include <vector>

namespace bt::translator {
namespace {

std::vector<std::uint8_t> Rewrite(std::initializer_list<std::uint8_t> guest) {
  static const decoder::Decoder decoder;
  auto cache = CodeCache::Create(1u << 20, 16);
  REQUIRE(cache);
  auto trampolines = BuildTrampolines(**cache);
  REQUIRE(trampolines);
  std::vector<std::uint8_t> bytes(guest);
  bytes.resize(15, 0x90);
  decoder::DecodedInstruction insn;
  REQUIRE(decoder.Decode(0x1000, bytes.data(), bytes.size(), insn));
  auto* unit = new ((*cache)->AllocateMetadata(sizeof(TranslationUnit))) TranslationUnit();
  FaultMapEntry map[8];
  CalloutRecord records[1];
  UnitBuilder builder(*trampolines, unit, (*cache)->AllocateCode(1024, 64), map, 8, records, true);
  EmitIdent(builder, insn);
  const std::size_t size = builder.Finish(nullptr, nullptr);  // no exits, no calls
  return {unit->code, unit->code + size};
}

using Bytes = std::vector<std::uint8_t>;

TEST_CASE("register-only instructions are copied unchanged") {
  CHECK(Rewrite({0x01, 0xD8}) == Bytes{0x01, 0xD8});                          // add eax, ebx
  CHECK(Rewrite({0x66, 0x0F, 0xFE, 0xC1}) == Bytes{0x66, 0x0F, 0xFE, 0xC1});  // paddd
}

TEST_CASE("memory operands get gs: and addr32") {
  CHECK(Rewrite({0x8B, 0x03}) == Bytes{0x65, 0x67, 0x8B, 0x03});  // mov eax, [ebx]
  // In a unit whose segments are flat (mode 0), an override adds nothing.
  CHECK(Rewrite({0x2E, 0x8B, 0x03}) == Bytes{0x65, 0x67, 0x8B, 0x03});
}

TEST_CASE("guest ESP becomes R12 through REX") {
  CHECK(Rewrite({0x8B, 0x44, 0x24, 0x08}) ==
        Bytes{0x65, 0x67, 0x41, 0x8B, 0x44, 0x24, 0x08});               // mov eax, [esp+8]
  CHECK(Rewrite({0x83, 0xC4, 0x10}) == Bytes{0x41, 0x83, 0xC4, 0x10});  // add esp, 16
  CHECK(Rewrite({0x89, 0xE5}) == Bytes{0x44, 0x89, 0xE5});              // mov ebp, esp
  CHECK(Rewrite({0x44}) == Bytes{0x41, 0xFF, 0xC4});                    // inc esp
}

TEST_CASE("absolute [disp32] avoids 64-bit RIP-relative addressing") {
  CHECK(Rewrite({0x8B, 0x05, 0x78, 0x56, 0x34, 0x12}) ==
        Bytes{0x65, 0x67, 0x8B, 0x04, 0x25, 0x78, 0x56, 0x34, 0x12});
}

TEST_CASE("inc/dec short forms use the ModRM encoding") {
  CHECK(Rewrite({0x40}) == Bytes{0xFF, 0xC0});              // inc eax
  CHECK(Rewrite({0x66, 0x4B}) == Bytes{0x66, 0xFF, 0xCB});  // dec bx
}

TEST_CASE("a high-byte register next to an ESP base goes through a spilled register") {
  const Bytes host = Rewrite({0x8A, 0x64, 0x24, 0x04});  // mov ah, [esp+4]
  // No REX may precede the 8A opcode, or AH would become SPL.
  bool found = false;
  for (std::size_t i = 2; i + 1 < host.size(); ++i) {
    if (host[i] == 0x8A && host[i - 1] == 0x67 && host[i - 2] == 0x65) found = true;
  }
  CHECK(found);
}

}  // namespace
}  // namespace bt::translator
