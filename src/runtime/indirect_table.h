// The runtime's side of the inline lookup table for indirect transfers
// (translator::IndirectEntry, in the vCPU's state block): which slots hold
// entries, so that events that change what a linear address means empty
// only the entries they concern.
//
// A CR3 load drops the entries whose code is in non-global pages; an invlpg
// those of its region only (the large page it may have dropped). Both are
// frequent under Linux - an invlpg for many page faults and munmaps, a CR3
// load per process switch - while the kernel's own entries, in global pages,
// are most of the table's hits. Filled slots are tracked in two lists, by
// whether their code pages are global, each with an upper bound of its
// entries per 2 MiB region, so an invlpg of a region without entries costs
// a counter test.
#pragma once

#include "translator/cpu_state.h"

#include <array>
#include <cstdint>
#include <vector>

namespace bt::runtime {

class IndirectTable {
 public:
  // `entries` is the table (translator::kIndirectEntries of them); `miss`
  // the host code lookups fall through to.
  IndirectTable(translator::IndirectEntry* entries, const std::uint8_t* miss);

  // Enters `host` for guest `eip`; `salt` is the view's lookup salt.
  // `straddles` says the unit's code runs into the next page; `global` that
  // all of its pages are global.
  void Fill(std::uint32_t eip, std::uint32_t salt, const std::uint8_t* host, bool straddles,
            bool global);
  // Drops the entry for `eip` if it enters `host`.
  void Forget(std::uint32_t eip, const std::uint8_t* host);
  void Clear();
  // A CR3 load: drops the entries of non-global pages.
  void ClearLocal();
  // An invlpg: drops the entries whose code may be in linear
  // [base, base + bytes), a 2 MiB-aligned range of whole 2 MiB regions.
  void ClearRange(std::uint32_t base, std::uint32_t bytes);

  const translator::IndirectEntry& EntryFor(std::uint32_t eip) const { return Slot(eip); }

 private:
  static constexpr unsigned kRegionShift = 21;
  static constexpr std::size_t kRegions = std::size_t{1} << (32 - kRegionShift);
  // Filled slots worth tracking per list: emptying the whole table (a MiB)
  // at every address-space switch would cost more. Past this, Fill empties
  // the table first.
  static constexpr std::size_t kMaxTracked = 4096;

  struct Tracked {
    std::vector<std::uint32_t> slots;  // may repeat, or name since-emptied slots
    std::array<std::uint16_t, kRegions> in_region{};
  };

  translator::IndirectEntry& Slot(std::uint32_t eip) const {
    return entries_[eip & (translator::kIndirectEntries - 1)];
  }
  bool Filled(const translator::IndirectEntry& entry) const { return entry.host != miss_; }
  void Empty(translator::IndirectEntry& entry) const { entry = {0, 0, miss_}; }
  void EmptyAll(Tracked& tracked);
  void ClearRange(Tracked& tracked, std::uint32_t first_region, std::uint32_t end_region,
                  std::uint32_t base, std::uint32_t bytes);

  translator::IndirectEntry* entries_;
  const std::uint8_t* miss_;
  Tracked local_, global_;
};

}  // namespace bt::runtime
