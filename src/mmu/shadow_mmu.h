// The guest's linear address space as the host MMU sees it: two guest
// windows, filled on host faults (shadow misses). The supervisor view holds
// what code at CPL 0-2 may reach, the user view only the guest's user pages
// (U/S set all the way), so that at CPL 3 (GS on the user view) a U/S
// violation is a host fault as on hardware.
//
// With paging off, linear = physical and a miss maps a run of pages at once.
// With paging on, the window is a shadow of the guest page tables: a linear
// page the guest touched is a host mapping of its physical page with the
// rights the guest's entries give, read-only while the guest dirty bit is
// clear so that the first write sets it. Like a TLB, the shadow changes on a
// miss, a CR3 load, invlpg or a change of paging mode, never because the
// guest edited a table (SDM Vol. 3A, 4.10.4). Physical pages that hold
// translated code are read-only in every linear alias, found through a
// reverse map over both views, so that writes to them fault and can
// invalidate translations.
#pragma once

#include "mmu/page_walker.h"
#include "mmu/physical_memory.h"
#include "platform/host_memory.h"

#include <bt/result.h>

#include <cstdint>
#include <memory>
#include <vector>

namespace bt::mmu {

struct ShadowCounters {
  std::uint64_t full_flushes = 0;  // paging-mode changes and overflows
  std::uint64_t cr3_flushes = 0;   // CR3 loads (global pages stay)
  std::uint64_t page_flushes = 0;  // invlpg of a shadowed page
};

// Which guest window: what supervisor or user-mode code sees.
enum class View : std::uint8_t { kSupervisor, kUser };

class ShadowMmu {
 public:
  static constexpr std::uint32_t kPageSize = PhysicalMemory::kPageSize;
  // Pages mapped per miss with paging off, and for large guest pages:
  // fewer host faults.
  static constexpr std::uint32_t kRunPages = 16;
  // Each shadowed page may cost the host a memory mapping, and Linux allows
  // about 65,000 per process: past this many the shadow starts over, as a
  // full TLB would evict.
  static constexpr std::size_t kMaxShadowedPages = 24576;

  struct Miss {
    enum class Result : std::uint8_t {
      kMapped,           // the access can be retried
      kCodeWrite,        // a write to `physical`, a page with translated code
      kPageFault,        // the guest takes #PF with `error_code`
      kNoRam,            // `physical` has no RAM behind it
      kTableOutsideRam,  // a guest paging structure lies outside RAM
      kHostError,        // the host refused the mapping
    };
    Result result = Result::kMapped;
    std::uint32_t error_code = 0;
    std::uint64_t physical = 0;
  };

  // Reserves both windows.
  static Result<std::unique_ptr<ShadowMmu>> Create(PhysicalMemory& memory);

  platform::AddressWindow& window(View view) { return windows_[Index(view)]; }
  // The view code at privilege level `cpl` runs in: with paging off there
  // is nothing the supervisor view hides, so every level uses it.
  View ViewFor(unsigned cpl) const {
    return paging() && cpl == 3 ? View::kUser : View::kSupervisor;
  }

  const PagingMode& mode() const { return mode_; }
  bool paging() const { return mode_.cr0 & kCr0Pg; }
  // Takes new paging control registers; returns true if linear-to-physical
  // translations may have changed (so cached lookups keyed by linear
  // address must go). A CR3 load drops the non-global pages, any other
  // change all of them.
  bool SetMode(const PagingMode& mode);
  // A CR3 load, even of the same value; returns what SetMode does.
  bool LoadCr3(std::uint32_t cr3);
  // The size of a large page in the current mode (2 MiB with PAE, else
  // 4 MiB): what an invlpg may drop around its address.
  std::uint32_t LargePageBytes() const;
  // invlpg: drops the translation of the page holding `linear`.
  void FlushPage(std::uint32_t linear);

  // A host fault at address `linear` of `view`'s window, a `write` or not.
  Miss HandleMiss(std::uint32_t linear, bool write, View view);
  // The translation of `linear` for the VMM's own accesses and instruction
  // fetch by code in `view`, setting accessed and dirty bits as the guest
  // CPU would.
  Translation Translate(std::uint32_t linear, Access access, View view);

  // Whether an access to `linear` through `view`'s window would find it
  // mapped, without a host fault.
  bool Serves(std::uint32_t linear, bool write, View view) const {
    const std::uint32_t entry = entries_[Index(view) << kViewShift | linear / kPageSize];
    return (entry & kShadowed) &&
           (!write || ProtectionOf(entry) == platform::Protection::kReadWrite);
  }

  bool IsCodePage(std::uint32_t physical_page) const { return code_[physical_page]; }
  // Makes every linear alias of `physical_page` read-only (it holds
  // translated code), or writable again where the guest allows.
  void ProtectCode(std::uint32_t physical_page);
  void UnprotectCode(std::uint32_t physical_page);

  // Guest-physical pages of RAM.
  std::uint32_t page_count() const { return static_cast<std::uint32_t>(code_.size()); }
  const ShadowCounters& counters() const { return counters_; }

 private:
  static constexpr std::uint32_t kCr0Pg = 1u << 31;
  static constexpr std::uint32_t kLinearPages = 1u << 20;
  // Shadowed pages are numbered across views: view << 20 | linear page.
  static constexpr std::uint32_t kViewShift = 20, kShadowPages = 2 * kLinearPages;
  static constexpr unsigned Index(View view) { return static_cast<unsigned>(view); }
  // A linear page's shadow entry: the physical page and what it may do.
  static constexpr std::uint32_t kShadowed = 1u << 31, kMayWrite = 1u << 30, kGlobal = 1u << 29,
                                 kLarge = 1u << 28,  // part of a 2 or 4 MiB guest page
      kPhysicalMask = kLinearPages - 1;
  // Large guest pages are counted per 2 MiB of linear space, so that invlpg
  // finds every shadowed piece of one without a search in the usual case.
  static constexpr unsigned kRegionShift = 9;

  ShadowMmu(PhysicalMemory& memory, platform::AddressWindow supervisor,
            platform::AddressWindow user);
  // `page` is a shadow page number (kViewShift).
  platform::AddressWindow& WindowOf(std::uint32_t page) { return windows_[page >> kViewShift]; }
  static std::uint32_t AddressOf(std::uint32_t page) {
    return (page & (kLinearPages - 1)) * kPageSize;
  }
  // Records `page` as shadowing `physical_page`; the caller maps it.
  void Record(std::uint32_t page, std::uint32_t physical_page, bool may_write, bool global,
              bool large);
  // Takes `page` off its physical page's alias list.
  void Unlink(std::uint32_t page);
  // Forgets `page`; the caller unmaps it.
  void Forget(std::uint32_t page);
  platform::Protection ProtectionOf(std::uint32_t entry) const;
  bool MapRun(std::uint32_t first_page, std::uint32_t count);
  void FlushAll();
  void FlushNonGlobal();
  // Unmaps sorted, forgotten pages, one host call per cluster.
  void UnmapPages(const std::vector<std::uint32_t>& pages);
  Miss MapFlat(std::uint32_t linear, bool write);

  PhysicalMemory& memory_;
  platform::AddressWindow windows_[2];
  PagingMode mode_;
  std::vector<bool> code_;  // per physical page
  // Per shadow page: its entry, and the next shadow page (plus one) that
  // shadows the same physical page; per physical page: the first such.
  std::unique_ptr<std::uint32_t[]> entries_;
  std::unique_ptr<std::uint32_t[]> alias_next_;
  std::vector<std::uint32_t> alias_head_;
  std::vector<std::uint16_t> large_in_region_;
  // Shadow pages recorded since the last full flush; forgotten ones and
  // repeats included (FlushPage does not search this).
  std::vector<std::uint32_t> shadowed_;
  std::vector<std::uint32_t> scratch_;
  ShadowCounters counters_;
};

}  // namespace bt::mmu
