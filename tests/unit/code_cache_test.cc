#include "translator/code_cache.h"

#include <doctest/doctest.h>

#include <cstring>

namespace bt::translator {
namespace {

// A unit with a single direct exit whose jump initially targets its slow path.
TranslationUnit* MakeUnit(CodeCache& cache, std::uint32_t eip, std::uint32_t page) {
  constexpr std::size_t kCode = 16;
  auto* unit = new (cache.AllocateMetadata(sizeof(TranslationUnit))) TranslationUnit();
  unit->key = {eip, 0, eip / 4096};
  unit->page_count = 1;
  unit->physical_page[0] = page;
  unit->code = cache.AllocateCode(kCode, 16);
  unit->code_size = kCode;
  std::memset(unit->code, 0xCC, kCode);
  unit->code[0] = 0xE9;  // jmp rel32 to the byte after it
  std::memset(unit->code + 1, 0, 4);
  unit->exits = new (cache.AllocateMetadata(sizeof(ExitLink))) ExitLink();
  unit->exit_count = 1;
  unit->exits[0].owner = unit;
  unit->exits[0].rel32 = unit->code + 1;
  unit->exits[0].slow_path = unit->code + 5;
  cache.Insert(unit);
  return unit;
}

std::int32_t JumpDisplacement(const TranslationUnit* unit) {
  std::int32_t rel;
  std::memcpy(&rel, unit->code + 1, sizeof(rel));
  return rel;
}

TEST_CASE("units are found by key and by host address") {
  auto cache = CodeCache::Create(1u << 20, 16);
  REQUIRE(cache);
  TranslationUnit* a = MakeUnit(**cache, 0x1000, 1);
  TranslationUnit* b = MakeUnit(**cache, 0x2000, 2);
  CHECK((*cache)->Lookup({0x1000, 0, 0x1000 / 4096}) == a);
  CHECK((*cache)->Lookup({0x2000, 0, 0x2000 / 4096}) == b);
  CHECK((*cache)->Lookup({0x2000, 1, 2}) == nullptr);  // another mode
  CHECK((*cache)->Lookup({0x2000, 0, 7}) == nullptr);  // other code at the same EIP
  CHECK((*cache)->UnitAt(b->code + 3) == b);
  CHECK((*cache)->UnitAt(a->code + a->code_size - 1) == a);
  CHECK((*cache)->UnitAt(a->code - 1) == nullptr);
  CHECK((*cache)->UnitAt(b->code + b->code_size) == nullptr);
}

TEST_CASE("chaining patches the jump and invalidation undoes it") {
  auto cache = CodeCache::Create(1u << 20, 16);
  REQUIRE(cache);
  TranslationUnit* from = MakeUnit(**cache, 0x1000, 1);
  TranslationUnit* to = MakeUnit(**cache, 0x2000, 2);
  (*cache)->Chain(from->exits[0], to, ChainScope::kPage);
  CHECK(from->code + 5 + JumpDisplacement(from) == to->code);
  CHECK((*cache)->counters().chains_made == 1);

  CHECK((*cache)->InvalidatePage(2) == 1);
  CHECK_FALSE(to->live);
  CHECK(JumpDisplacement(from) == 0);  // back to the slow path
  CHECK(from->exits[0].target == nullptr);
  CHECK((*cache)->counters().chains_broken == 1);
  CHECK((*cache)->Lookup({0x2000, 0, 0x2000 / 4096}) == nullptr);
  CHECK((*cache)->Lookup({0x1000, 0, 0x1000 / 4096}) == from);
  CHECK_FALSE((*cache)->PageHasCode(2));
  CHECK((*cache)->PageHasCode(1));
}

TEST_CASE("a unit found a moment ago is not found once it is dropped or flushed") {
  auto cache = CodeCache::Create(1u << 20, 16);
  REQUIRE(cache);
  TranslationUnit* unit = MakeUnit(**cache, 0x1000, 1);
  CHECK((*cache)->Lookup(unit->key) == unit);
  CHECK((*cache)->Lookup(unit->key) == unit);
  (*cache)->InvalidatePage(1);
  CHECK((*cache)->Lookup({0x1000, 0, 0x1000 / 4096}) == nullptr);
  TranslationUnit* again = MakeUnit(**cache, 0x1000, 1);
  CHECK((*cache)->Lookup(again->key) == again);
  (*cache)->Flush();
  // The flush gives the memory back: the next unit may sit where `again`
  // was, under another key.
  TranslationUnit* other = MakeUnit(**cache, 0x2000, 2);
  CHECK((*cache)->Lookup({0x1000, 0, 0x1000 / 4096}) == nullptr);
  CHECK((*cache)->Lookup(other->key) == other);
}

TEST_CASE("invalidating a unit removes its own links from its targets") {
  auto cache = CodeCache::Create(1u << 20, 16);
  REQUIRE(cache);
  TranslationUnit* from = MakeUnit(**cache, 0x1000, 1);
  TranslationUnit* to = MakeUnit(**cache, 0x2000, 2);
  (*cache)->Chain(from->exits[0], to, ChainScope::kPage);
  (*cache)->InvalidatePage(1);
  CHECK(to->incoming.empty());
}

TEST_CASE("an invlpg's unchaining breaks the chains into its range only, of either scope") {
  auto cache = CodeCache::Create(1u << 20, 16);
  REQUIRE(cache);
  TranslationUnit* local_into_a = MakeUnit(**cache, 0x1000, 1);
  TranslationUnit* global_into_a = MakeUnit(**cache, 0x2000, 2);
  TranslationUnit* global_into_b = MakeUnit(**cache, 0x3000, 3);
  TranslationUnit* in_a = MakeUnit(**cache, 0x400000, 4);
  TranslationUnit* in_b = MakeUnit(**cache, 0x800000, 5);
  local_into_a->exits[0].target_eip = global_into_a->exits[0].target_eip = 0x400000;
  global_into_b->exits[0].target_eip = 0x800000;
  (*cache)->Chain(local_into_a->exits[0], in_a, ChainScope::kLocal);
  (*cache)->Chain(global_into_a->exits[0], in_a, ChainScope::kGlobal);
  (*cache)->Chain(global_into_b->exits[0], in_b, ChainScope::kGlobal);
  (*cache)->UnchainCrossPageInto(0x400000, CodeCache::kRegionBytes);
  CHECK(local_into_a->exits[0].target == nullptr);
  CHECK(global_into_a->exits[0].target == nullptr);
  CHECK(global_into_b->exits[0].target == in_b);
  (*cache)->UnchainLocal();  // nothing left of that scope
  CHECK(global_into_b->exits[0].target == in_b);
  (*cache)->UnchainCrossPage();
  CHECK(global_into_b->exits[0].target == nullptr);
  CHECK((*cache)->counters().chains_broken == 3);
}

// A unit of `pages` holding the guest instructions at `eips`, as its fault
// map lists them.
TranslationUnit* MakeUnitHolding(CodeCache& cache, std::initializer_list<std::uint32_t> eips,
                                 std::initializer_list<std::uint32_t> pages) {
  auto* unit = new (cache.AllocateMetadata(sizeof(TranslationUnit))) TranslationUnit();
  unit->key = {*eips.begin(), 0, *pages.begin()};
  for (std::uint32_t page : pages) unit->physical_page[unit->page_count++] = page;
  auto* map =
      reinterpret_cast<FaultMapEntry*>(cache.AllocateMetadata(eips.size() * sizeof(FaultMapEntry)));
  for (std::uint32_t eip : eips)
    map[unit->fault_map_size++] = {unit->fault_map_size, eip, Fixup::kNone, 0};
  unit->fault_map = map;
  unit->code = cache.AllocateCode(16, 16);
  unit->code_size = 16;
  cache.Insert(unit);
  return unit;
}

TEST_CASE("invalidating an instruction drops only the units that hold it") {
  auto cache = CodeCache::Create(1u << 20, 16);
  REQUIRE(cache);
  TranslationUnit* starts_with_it = MakeUnitHolding(**cache, {0x1004, 0x1008}, {1});
  // A superblock that jumped back to it.
  TranslationUnit* jumps_to_it = MakeUnitHolding(**cache, {0x1010, 0x1004}, {1});
  TranslationUnit* other = MakeUnitHolding(**cache, {0x1020, 0x1024}, {1});
  // Two linear pages aliasing one physical page: the unit is listed twice.
  TranslationUnit* aliased = MakeUnitHolding(**cache, {0x3ffc, 0x1004}, {1, 1});
  CHECK((*cache)->InvalidateInstruction(1, 0x1004) == 3);
  CHECK_FALSE(starts_with_it->live);
  CHECK_FALSE(jumps_to_it->live);
  CHECK_FALSE(aliased->live);
  CHECK(other->live);
  CHECK((*cache)->Lookup(other->key) == other);
  CHECK((*cache)->InvalidateInstruction(1, 0x1004) == 0);
}

TEST_CASE("a flush empties the cache and counts the evictions") {
  auto cache = CodeCache::Create(1u << 20, 16);
  REQUIRE(cache);
  const std::size_t empty = (*cache)->bytes_used();
  MakeUnit(**cache, 0x1000, 1);
  MakeUnit(**cache, 0x2000, 1);
  (*cache)->Flush();
  CHECK((*cache)->Lookup({0x1000, 0, 0x1000 / 4096}) == nullptr);
  CHECK((*cache)->counters().units_evicted == 2);
  CHECK((*cache)->counters().flushes == 1);
  CHECK((*cache)->bytes_used() == empty);
  CHECK_FALSE((*cache)->PageHasCode(1));
}

TEST_CASE("the cache refuses a size too small to be useful") {
  CHECK_FALSE(CodeCache::Create(4096, 16));
}

}  // namespace
}  // namespace bt::translator
