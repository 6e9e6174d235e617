// Event polls (UnitBuilder::EmitEventPoll): a unit reads the poll page once.
#include "translator/trampolines.h"
#include "translator/unit_builder.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cstring>

namespace bt::translator {
namespace {

TEST_CASE("a unit reads the poll page at its first poll only") {
  auto cache = CodeCache::Create(1u << 20, 16);
  REQUIRE(cache);
  auto trampolines = BuildTrampolines(**cache);
  REQUIRE(trampolines);
  auto* unit = new ((*cache)->AllocateMetadata(sizeof(TranslationUnit))) TranslationUnit();
  FaultMapEntry map[8];
  CalloutRecord records[1];
  UnitBuilder builder(*trampolines, unit, (*cache)->AllocateCode(1024, 64), map, 8, records, true);
  builder.EmitEventPoll(0x1000);
  builder.EmitEventPoll(0x1004);
  const std::size_t size = builder.Finish(nullptr, nullptr);  // no exits, no calls

  // mov r14d, [r13 + kPollOffset]
  std::array<std::uint8_t, 7> poll = {0x45, 0x8B, 0xB5};
  std::memcpy(&poll[3], &kPollOffset, 4);
  const std::uint8_t* begin = unit->code;
  const std::uint8_t* end = begin + size;
  const std::uint8_t* first = std::search(begin, end, poll.begin(), poll.end());
  REQUIRE(first != end);
  CHECK(std::search(first + 1, end, poll.begin(), poll.end()) == end);
}

}  // namespace
}  // namespace bt::translator
