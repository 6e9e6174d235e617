#include "runtime/indirect_table.h"

#include <doctest/doctest.h>

#include <memory>

namespace bt::runtime {
namespace {

struct Table {
  std::unique_ptr<translator::IndirectEntry[]> entries{
      new translator::IndirectEntry[translator::kIndirectEntries]};
  const std::uint8_t miss[1] = {};
  const std::uint8_t code[8] = {};
  IndirectTable table{entries.get(), miss};

  void Fill(std::uint32_t eip, bool global) { table.Fill(eip, 0, &code[eip % 8], global); }
  // Whether a lookup of `eip` (supervisor view) would hit.
  bool Hits(std::uint32_t eip) const {
    const translator::IndirectEntry& entry = table.EntryFor(eip);
    return entry.negated_eip + eip == 0 && entry.host != miss;
  }
};

TEST_CASE("an invlpg empties the entries of its region only") {
  Table t;
  t.Fill(0x08048010, false);
  t.Fill(0x08250000, false);  // the next 2 MiB region
  t.Fill(0xC1000100, true);
  t.table.ClearRange(0x08000000, 0x200000);
  CHECK_FALSE(t.Hits(0x08048010));
  CHECK(t.Hits(0x08250000));
  CHECK(t.Hits(0xC1000100));
}

TEST_CASE("an invlpg empties the entries whose code runs into its region") {
  Table t;
  t.Fill(0x081FFFF0, false);  // may run into 0x08200000
  t.Fill(0x081FE000, false);
  t.table.ClearRange(0x08200000, 0x200000);
  CHECK_FALSE(t.Hits(0x081FFFF0));
  CHECK(t.Hits(0x081FE000));
}

TEST_CASE("a CR3 load keeps the entries of global pages") {
  Table t;
  t.Fill(0x08048010, false);
  t.Fill(0xC1000100, true);
  t.table.ClearLocal();
  CHECK_FALSE(t.Hits(0x08048010));
  CHECK(t.Hits(0xC1000100));
  // An entry that replaced a local one in its slot may go too, but the
  // global one filled after the clear stays.
  t.Fill(0xC1008010, true);
  t.table.ClearLocal();
  CHECK(t.Hits(0xC1008010));
}

TEST_CASE("an entry that took over another's slot is emptied by its own region") {
  Table t;
  t.Fill(0x08040010, false);
  t.Fill(0xC1000010, true);  // the same slot (low 16 bits)
  t.table.ClearRange(0x08000000, 0x200000);
  CHECK(t.Hits(0xC1000010));
  t.table.ClearRange(0xC1000000, 0x200000);
  CHECK_FALSE(t.Hits(0xC1000010));
}

TEST_CASE("forgetting a unit empties its entry only if the entry is still its") {
  Table t;
  t.Fill(0x1000, true);
  t.table.Forget(0x1000, &t.code[1]);
  CHECK(t.Hits(0x1000));
  t.table.Forget(0x1000, &t.code[0x1000 % 8]);
  CHECK_FALSE(t.Hits(0x1000));
}

TEST_CASE("filling past the local slots tracked empties the table first") {
  Table t;
  t.Fill(0x08000000, false);
  t.Fill(0xC1000000 + 4, true);
  for (std::uint32_t i = 1; i <= 5000; ++i) t.Fill(0x08000000 + 8 * i, false);
  CHECK_FALSE(t.Hits(0x08000000));
  CHECK_FALSE(t.Hits(0xC1000000 + 4));
  CHECK(t.Hits(0x08000000 + 8 * 5000));
  // What is still in the table is tracked: its region's invlpg empties it.
  t.table.ClearRange(0x08000000, 0x200000);
  CHECK_FALSE(t.Hits(0x08000000 + 8 * 5000));
}

TEST_CASE("global entries are never emptied for room") {
  Table t;
  for (std::uint32_t i = 0; i < 3; ++i) {
    for (std::uint32_t slot = 0; slot < translator::kIndirectEntries; ++slot) {
      t.Fill(0xC1000000 + i * 0x10000 + slot, true);
    }
  }
  CHECK(t.Hits(0xC1020000));
  CHECK(t.Hits(0xC102FFFF));
  t.table.ClearLocal();
  CHECK(t.Hits(0xC1020000));
  t.table.ClearRange(0xC1000000, 0x200000);
  CHECK_FALSE(t.Hits(0xC1020000));
}

}  // namespace
}  // namespace bt::runtime
