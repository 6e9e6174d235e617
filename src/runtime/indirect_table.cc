#include "runtime/indirect_table.h"

#include <algorithm>

namespace bt::runtime {

namespace {

constexpr std::uint32_t kPageSize = 4096;

}  // namespace

IndirectTable::IndirectTable(translator::IndirectEntry* entries, const std::uint8_t* miss)
    : entries_(entries), miss_(miss) {
  local_.slots.reserve(kMaxTracked);
  global_.slots.reserve(kMaxTracked);
  Clear();
}

void IndirectTable::Fill(std::uint32_t eip, std::uint32_t salt, const std::uint8_t* host,
                         bool straddles, bool global) {
  Tracked& tracked = global ? global_ : local_;
  if (tracked.slots.size() >= kMaxTracked) Clear();
  translator::IndirectEntry& entry = Slot(eip);
  entry = {0u - eip - salt, eip, host};
  tracked.slots.push_back(static_cast<std::uint32_t>(&entry - entries_));
  const std::uint32_t region = eip >> kRegionShift;
  ++tracked.in_region[region];
  // Code that runs into the next region also goes with that region's invlpg.
  const auto next_region =
      static_cast<std::uint32_t>((std::uint64_t{eip | (kPageSize - 1)} + 1) >> kRegionShift);
  if (straddles && next_region != region && next_region < kRegions) {
    ++tracked.in_region[next_region];
  }
}

void IndirectTable::Forget(std::uint32_t eip, const std::uint8_t* host) {
  translator::IndirectEntry& entry = Slot(eip);
  if (entry.host == host) Empty(entry);
}

void IndirectTable::EmptyAll(Tracked& tracked) {
  for (std::uint32_t slot : tracked.slots) Empty(entries_[slot]);
  tracked.slots.clear();
  tracked.in_region.fill(0);
}

void IndirectTable::Clear() {
  for (std::size_t i = 0; i < translator::kIndirectEntries; ++i) Empty(entries_[i]);
  for (Tracked* tracked : {&local_, &global_}) {
    tracked->slots.clear();
    tracked->in_region.fill(0);
  }
}

// A slot named in the local list may hold a global entry by now, and the
// other way round: emptying it costs that entry a miss, never a wrong hit.
void IndirectTable::ClearLocal() { EmptyAll(local_); }

void IndirectTable::ClearRange(std::uint32_t base, std::uint32_t bytes) {
  const std::uint32_t first_region = base >> kRegionShift;
  const auto end_region = static_cast<std::uint32_t>((std::uint64_t{base} + bytes) >> kRegionShift);
  for (Tracked* tracked : {&local_, &global_}) {
    ClearRange(*tracked, first_region, end_region, base, bytes);
  }
}

void IndirectTable::ClearRange(Tracked& tracked, std::uint32_t first_region,
                               std::uint32_t end_region, std::uint32_t base, std::uint32_t bytes) {
  const auto begin = tracked.in_region.begin();
  if (std::all_of(begin + first_region, begin + end_region,
                  [](std::uint16_t count) { return count == 0; })) {
    return;
  }
  // Entries of the page before the range may run into it.
  const std::uint32_t from = base - kPageSize;
  const std::uint32_t span = bytes + kPageSize;
  std::size_t kept = 0;
  for (std::uint32_t slot : tracked.slots) {
    translator::IndirectEntry& entry = entries_[slot];
    if (!Filled(entry)) continue;
    if (entry.eip - from < span) {
      Empty(entry);
      continue;
    }
    tracked.slots[kept++] = slot;
  }
  tracked.slots.resize(kept);
  std::fill(begin + first_region, begin + end_region, 0);
}

}  // namespace bt::runtime
