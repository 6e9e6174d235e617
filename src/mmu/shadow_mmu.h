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
// guest edited a table (SDM Vol. 3A, 4.10.4).
//
// Each host mapping costs system calls to make and to remove, and processes
// come back (a shell forks, waits and runs again), so the shadows of the
// last kSpaces address spaces are kept, each in its own pair of windows. A
// CR3 load switches to the space last tagged with that CR3 and walks the
// guest tables again for each of its non-global pages, keeping those whose
// frame is unchanged (writable only while the entry is writable and dirty)
// and setting their accessed bits: what a TLB flushed at the load and
// refilled ahead of the accesses would hold.
//
// Making a host mapping costs several times what changing its protection
// does, and a page dropped from a shadow often comes back onto the same
// physical page (a process's text, a reused page directory's data), so a
// dropped page is parked: its mapping stays, without access, and a miss
// that finds the same physical page there only gives the rights back.
//
// Physical pages that hold translated code are read-only in every linear
// alias, found through a reverse map over all spaces and views, so that
// writes to them fault and can invalidate translations.
#pragma once

#include "mmu/page_walker.h"
#include "mmu/physical_memory.h"
#include "platform/host_memory.h"

#include <bt/result.h>

#include <bitset>
#include <cstdint>
#include <memory>
#include <vector>

namespace bt::mmu {

struct ShadowCounters {
  std::uint64_t full_flushes = 0;    // paging-mode changes and overflows
  std::uint64_t cr3_flushes = 0;     // CR3 loads (global pages stay)
  std::uint64_t space_hits = 0;      // CR3 loads that found their space kept
  std::uint64_t pages_kept = 0;      // non-global pages still valid at those
  std::uint64_t page_flushes = 0;    // invlpg of a shadowed page
  std::uint64_t pages_unparked = 0;  // misses served by a parked mapping
};

// Which guest window: what supervisor or user-mode code sees.
enum class View : std::uint8_t { kSupervisor, kUser };

class ShadowMmu {
 public:
  static constexpr std::uint32_t kPageSize = PhysicalMemory::kPageSize;
  // Pages mapped per miss with paging off, and for large guest pages:
  // fewer host faults.
  static constexpr std::uint32_t kRunPages = 16;
  // Each shadowed or parked page may cost the host two memory mappings (its
  // own, and the split of the reserved space around it), and Linux allows
  // about 65,000 per process: past this many shadowed pages the shadow
  // starts over, as a full TLB would evict, and past this many parked ones
  // (stale records included) those are unmapped.
  static constexpr std::size_t kMaxShadowedPages = 24576;
  static constexpr std::size_t kMaxParkedPages = 6144;
  // Address spaces whose shadows are kept across CR3 loads.
  static constexpr unsigned kSpaces = 8;

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

  // Reserves the windows of every space.
  static Result<std::unique_ptr<ShadowMmu>> Create(PhysicalMemory& memory);

  // The current address space's window for `view`.
  platform::AddressWindow& window(View view) { return windows_[current_ << 1 | Index(view)]; }
  // The view code at privilege level `cpl` runs in: with paging off there
  // is nothing the supervisor view hides, so every level uses it.
  View ViewFor(unsigned cpl) const {
    return paging() && cpl == 3 ? View::kUser : View::kSupervisor;
  }

  const PagingMode& mode() const { return mode_; }
  bool paging() const { return mode_.cr0 & kCr0Pg; }
  // Takes new paging control registers; returns true if linear-to-physical
  // translations may have changed (so cached lookups keyed by linear
  // address must go). A change other than a CR3 load drops every page.
  bool SetMode(const PagingMode& mode);
  // A CR3 load, even of the same value; returns what SetMode does. It may
  // switch spaces, and so change window(); of the non-global pages of the
  // space it keeps those the new tables still give.
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
    const std::uint32_t entry = entries_[ShadowPage(view, linear)];
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
  // Shadowed pages are numbered across spaces and views:
  // space << 21 | view << 20 | linear page.
  static constexpr std::uint32_t kViewShift = 20, kSpaceShift = 21,
                                 kShadowPages = kSpaces << kSpaceShift;
  static constexpr unsigned Index(View view) { return static_cast<unsigned>(view); }
  std::uint32_t ShadowPage(View view, std::uint32_t linear) const {
    return current_ << kSpaceShift | Index(view) << kViewShift | linear / kPageSize;
  }
  // A linear page's shadow entry: the physical page and what it may do.
  static constexpr std::uint32_t kShadowed = 1u << 31, kMayWrite = 1u << 30, kGlobal = 1u << 29,
                                 kLarge = 1u << 28,  // part of a 2 or 4 MiB guest page
      kListed = 1u << 27,                            // seen while a space's list is compacted
      kParked = 1u << 26,  // not shadowed; the window maps the physical page without access
      kPhysicalMask = kLinearPages - 1;
  // Large guest pages are counted per 2 MiB of linear space, so that invlpg
  // finds every shadowed piece of one without a search in the usual case.
  static constexpr unsigned kRegionShift = 9;

  // A kept address space: the CR3 it shadows and the shadow pages recorded
  // in it, non-global and global apart so that a CR3 load looks at the
  // first only; forgotten ones and repeats included (FlushPage does not
  // search these).
  struct Space {
    std::uint32_t cr3 = 0;
    bool tagged = false;
    std::uint64_t last_use = 0;
    std::vector<std::uint32_t> shadowed[2];  // indexed by global
  };

  ShadowMmu(PhysicalMemory& memory, std::vector<platform::AddressWindow> windows,
            platform::PageMemory tables);
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
  // Forgets `page` and parks it; the caller revokes its access.
  void Park(std::uint32_t page);
  // Gives their rights back to the parked pages in the run around `page`
  // that the guest tables map onto the same physical pages again.
  void UnparkAround(std::uint32_t page);
  platform::Protection ProtectionOf(std::uint32_t entry) const;
  bool MapRun(std::uint32_t first_frame, std::uint32_t count);
  void FlushAll();
  // Parks the `global` or non-global pages of `space` that `drop` selects
  // and keeps the others listed once.
  template <typename Drop>
  void FlushSpace(unsigned space, bool global, Drop drop);
  // Forgets every page of the spaces other than the current one.
  void DropOtherSpaces();
  // Whether the non-global shadow entry of `page` in the current space
  // still matches the guest tables; takes away write access they no longer
  // give.
  bool StillValid(std::uint32_t page);
  std::size_t ListedPages() const;
  // What ReleasePages does to a page's host mapping: take its access (it
  // stays parked) or remove it.
  enum class Release : std::uint8_t { kRevoke, kUnmap };
  // Releases sorted, forgotten pages, one host call per cluster.
  void ReleasePages(const std::vector<std::uint32_t>& pages, Release release);
  // Takes access from the sorted pages just parked, and unmaps every parked
  // page once there are too many.
  void RevokeParked(const std::vector<std::uint32_t>& pages);
  // Forgets every parked page, each once, into scratch_; the caller unmaps
  // them.
  void ForgetParked();
  // The guest tables' translation of shadow page `page` for a read in its
  // view, as a TLB fill ahead of the access makes it.
  Translation WalkAhead(std::uint32_t page);
  // Whether `translation` is global under the current CR4.PGE.
  bool Global(const Translation& translation) const;
  Miss MapFlat(std::uint32_t linear, bool write);

  PhysicalMemory& memory_;
  // Per space: the supervisor window, then the user window.
  std::vector<platform::AddressWindow> windows_;
  PagingMode mode_;
  std::vector<bool> code_;  // per physical page
  // Per shadow page: its entry, and the next shadow page (plus one) that
  // shadows the same physical page; per physical page: the first such.
  // Both live in `tables_`, which stays zero until touched.
  platform::PageMemory tables_;
  std::uint32_t* entries_;
  std::uint32_t* alias_next_;
  std::vector<std::uint32_t> alias_head_;
  std::vector<std::uint16_t> large_in_region_;
  // Regions of linear space (as large_in_region_ counts them) where a
  // global page has been shadowed in some space since the last full flush:
  // only there may an invlpg concern other spaces.
  std::bitset<(kLinearPages >> kRegionShift)> global_regions_;
  Space spaces_[kSpaces];
  std::uint32_t current_ = 0;
  std::uint64_t use_clock_ = 0;
  std::vector<std::uint32_t> scratch_;
  // Pages parked since the last release, with repeats and pages shadowed
  // again since.
  std::vector<std::uint32_t> parked_;
  ShadowCounters counters_;
};

}  // namespace bt::mmu
