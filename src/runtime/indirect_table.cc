#include "runtime/indirect_table.h"

#include <algorithm>

namespace bt::runtime {

namespace {

constexpr std::uint32_t kPageSize = 4096;

}  // namespace

IndirectTable::IndirectTable(translator::IndirectEntry* entries, const std::uint8_t* miss)
    : entries_(entries), miss_(miss), owner_(translator::kIndirectEntries, kNone) {
  local_.slots.reserve(kMaxLocal);
  global_.slots.reserve(translator::kIndirectEntries);
  Clear();
}

void IndirectTable::Fill(std::uint32_t eip, std::uint32_t salt, const std::uint8_t* host,
                         bool global) {
  Tracked& tracked = global ? global_ : local_;
  if (!global && local_.slots.size() >= kMaxLocal) {
    Compact(local_);
    if (local_.slots.size() >= kMaxLocal / 2) Clear();
  }
  const auto slot = static_cast<std::uint32_t>(eip & (translator::kIndirectEntries - 1));
  const bool listed = owner_[slot] == tracked.owner;
  Empty(slot);
  entries_[slot] = {0u - eip - salt, eip, host};
  owner_[slot] = tracked.owner;
  ++tracked.in_region[eip >> kRegionShift];
  if (!listed) tracked.slots.push_back(slot);
}

void IndirectTable::Empty(std::uint32_t slot) {
  if (owner_[slot] != kNone) --ListOf(owner_[slot]).in_region[entries_[slot].eip >> kRegionShift];
  entries_[slot] = {0, 0, miss_};
  owner_[slot] = kNone;
}

void IndirectTable::Forget(std::uint32_t eip, const std::uint8_t* host) {
  const auto slot = static_cast<std::uint32_t>(eip & (translator::kIndirectEntries - 1));
  if (entries_[slot].host == host) Empty(slot);
}

void IndirectTable::Compact(Tracked& tracked) {
  std::erase_if(tracked.slots, [&](std::uint32_t slot) { return owner_[slot] != tracked.owner; });
}

void IndirectTable::Clear() {
  std::fill(entries_, entries_ + translator::kIndirectEntries,
            translator::IndirectEntry{0, 0, miss_});
  std::fill(owner_.begin(), owner_.end(), kNone);
  for (Tracked* tracked : {&local_, &global_}) {
    tracked->slots.clear();
    tracked->in_region.fill(0);
  }
}

void IndirectTable::ClearLocal() {
  for (std::uint32_t slot : local_.slots) {
    if (owner_[slot] == kLocal) Empty(slot);
  }
  local_.slots.clear();
}

void IndirectTable::ClearRange(std::uint32_t base, std::uint32_t bytes) {
  const std::uint32_t first_region = base >> kRegionShift;
  const auto end_region = static_cast<std::uint32_t>((std::uint64_t{base} + bytes) >> kRegionShift);
  for (Tracked* tracked : {&local_, &global_}) {
    ClearRange(*tracked, first_region, end_region, base, bytes);
  }
}

void IndirectTable::ClearRange(Tracked& tracked, std::uint32_t first_region,
                               std::uint32_t end_region, std::uint32_t base, std::uint32_t bytes) {
  // Entries of the page before the range may run into it: the region
  // before counts too.
  const auto begin = tracked.in_region.begin();
  if (std::all_of(begin + (first_region == 0 ? 0 : first_region - 1), begin + end_region,
                  [](std::uint32_t count) { return count == 0; })) {
    return;
  }
  const std::uint32_t from = base - kPageSize;
  const std::uint32_t span = bytes + kPageSize;
  std::erase_if(tracked.slots, [&](std::uint32_t slot) {
    if (owner_[slot] != tracked.owner) return true;
    if (entries_[slot].eip - from >= span) return false;
    Empty(slot);
    return true;
  });
}

}  // namespace bt::runtime
