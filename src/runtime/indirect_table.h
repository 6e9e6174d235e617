// The runtime's side of the inline lookup table for indirect transfers
// (translator::IndirectEntry, in the vCPU's state block): which slots hold
// entries, so that events that change what a linear address means empty
// only the entries they concern.
//
// A CR3 load drops the entries whose code is in non-global pages; an invlpg
// those of its region only (the large page it may have dropped). Both are
// frequent under Linux - an invlpg for many page faults and munmaps, a CR3
// load per process switch - while the kernel's own entries, in global pages,
// are most of the table's hits. Each filled slot belongs to one of two
// lists, by whether its code pages are global, and each list counts its
// entries per 2 MiB region, so an invlpg of a region without entries costs
// a counter test and a CR3 load visits the local list only.
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
  // `global` says all of the unit's pages are global.
  void Fill(std::uint32_t eip, std::uint32_t salt, const std::uint8_t* host, bool global);
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
  // Slots the local list may name before a fill compacts it (and, if that
  // does not halve it, empties the table): each CR3 load walks the list.
  // The global list may name every slot.
  static constexpr std::size_t kMaxLocal = 4096;

  enum Owner : std::uint8_t { kNone, kLocal, kGlobal };
  struct Tracked {
    Owner owner;
    // The slots this list owns, and slots it owned until another list or an
    // emptying took them, which its walks drop.
    std::vector<std::uint32_t> slots;
    std::array<std::uint32_t, kRegions> in_region{};  // entries by eip
  };

  translator::IndirectEntry& Slot(std::uint32_t eip) const {
    return entries_[eip & (translator::kIndirectEntries - 1)];
  }
  Tracked& ListOf(Owner owner) { return owner == kLocal ? local_ : global_; }
  void Empty(std::uint32_t slot);
  // Drops the slots `tracked` no longer owns from its list.
  void Compact(Tracked& tracked);
  void ClearRange(Tracked& tracked, std::uint32_t first_region, std::uint32_t end_region,
                  std::uint32_t base, std::uint32_t bytes);

  translator::IndirectEntry* entries_;
  const std::uint8_t* miss_;
  std::vector<Owner> owner_;  // per slot
  Tracked local_{kLocal, {}, {}}, global_{kGlobal, {}, {}};
};

}  // namespace bt::runtime
