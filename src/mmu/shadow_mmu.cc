#include "mmu/shadow_mmu.h"

#include <algorithm>

namespace bt::mmu {

using platform::Protection;

namespace {

constexpr std::uint32_t kCr0Wp = 1u << 16;
constexpr std::uint32_t kCr4Pse = 1u << 4, kCr4Pae = 1u << 5, kCr4Pge = 1u << 7;
// Forgotten pages this close together are unmapped by one host call that
// also covers the unshadowed pages between them.
constexpr std::uint32_t kMaxUnmapGap = 64;

}  // namespace

Result<std::unique_ptr<ShadowMmu>> ShadowMmu::Create(PhysicalMemory& memory) {
  std::vector<platform::AddressWindow> windows;
  windows.reserve(2 * kSpaces);
  for (unsigned i = 0; i < 2 * kSpaces; ++i) {
    auto window = platform::AddressWindow::Reserve();
    if (!window) return Error{window.error()};
    windows.push_back(std::move(window.value()));
  }
  // Entries and alias links, most of which stay untouched.
  auto tables = platform::PageMemory::Allocate(
      2 * std::size_t{kShadowPages} * sizeof(std::uint32_t), Protection::kReadWrite);
  if (!tables) return Error{tables.error()};
  return std::unique_ptr<ShadowMmu>(
      new ShadowMmu(memory, std::move(windows), std::move(tables.value())));
}

ShadowMmu::ShadowMmu(PhysicalMemory& memory, std::vector<platform::AddressWindow> windows,
                     platform::PageMemory tables)
    : memory_(memory),
      windows_(std::move(windows)),
      code_(memory.size() / kPageSize),
      tables_(std::move(tables)),
      entries_(reinterpret_cast<std::uint32_t*>(tables_.data())),
      alias_next_(entries_ + kShadowPages),
      alias_head_(memory.size() / kPageSize),
      large_in_region_(kShadowPages >> kRegionShift) {}

bool ShadowMmu::SetMode(const PagingMode& mode) {
  const PagingMode old = mode_;
  mode_ = mode;
  const bool was_paging = old.cr0 & kCr0Pg;
  if (((old.cr0 ^ mode.cr0) & (kCr0Pg | kCr0Wp)) != 0 ||
      ((old.cr4 ^ mode.cr4) & (kCr4Pse | kCr4Pae | kCr4Pge)) != 0 ||
      old.nx_enabled != mode.nx_enabled) {
    if (was_paging || paging()) {
      FlushAll();
      return true;
    }
    return false;
  }
  return false;
}

bool ShadowMmu::LoadCr3(std::uint32_t cr3) {
  mode_.cr3 = cr3;
  if (!paging()) return false;
  ++counters_.cr3_flushes;
  unsigned space = 0;
  while (space < kSpaces && !(spaces_[space].tagged && spaces_[space].cr3 == cr3)) ++space;
  if (space < kSpaces) {
    ++counters_.space_hits;
    FlushSpace(space, false, [this](std::uint32_t page) { return !StillValid(page); });
  } else {
    // The least recently used other space (one never used first) takes
    // the CR3; its global pages are as valid here as they were there.
    space = (current_ + 1) % kSpaces;
    for (unsigned other = 0; other < kSpaces; ++other) {
      if (other != current_ && spaces_[other].last_use < spaces_[space].last_use) space = other;
    }
    FlushSpace(space, false, [](std::uint32_t) { return true; });
    spaces_[space].cr3 = cr3;
    spaces_[space].tagged = true;
  }
  current_ = space;
  spaces_[space].last_use = ++use_clock_;
  return true;
}

// The walk sets accessed bits, as a processor may when it fills its TLB
// ahead of an access (SDM Vol. 3A, 4.10.2.3): a forked child's entries
// start with them clear.
Translation ShadowMmu::WalkAhead(std::uint32_t page) {
  const bool user = (page >> kViewShift & 1) == Index(View::kUser);
  return Walk(memory_, mode_, AddressOf(page), Access::kRead, user);
}

bool ShadowMmu::Global(const Translation& translation) const {
  return translation.global && (mode_.cr4 & kCr4Pge);
}

bool ShadowMmu::StillValid(std::uint32_t page) {
  const std::uint32_t entry = entries_[page];
  const Translation translation = WalkAhead(page);
  if (translation.status != Translation::Status::kOk ||
      translation.physical / kPageSize != (entry & kPhysicalMask) || Global(translation) ||
      (translation.page_size > kPageSize) != ((entry & kLarge) != 0)) {
    return false;
  }
  if ((entry & kMayWrite) && !(translation.writable && translation.dirty)) {
    entries_[page] = entry & ~kMayWrite;
    if (ProtectionOf(entry) == Protection::kReadWrite) {
      WindowOf(page).Protect(AddressOf(page), kPageSize, Protection::kRead);
    }
  }
  ++counters_.pages_kept;
  return true;
}

std::uint32_t ShadowMmu::LargePageBytes() const {
  return (mode_.cr4 & kCr4Pae) ? 2u << 20 : 4u << 20;
}

void ShadowMmu::FlushPage(std::uint32_t linear) {
  if (!paging()) return;
  // invlpg drops the whole TLB entry: for a large guest page, every 4 KiB
  // piece of it that is shadowed. Other spaces hold non-global pages of
  // other CR3s, which their next load checks anyway.
  const std::uint32_t large_pages = LargePageBytes() / kPageSize;
  // Whether `marks` has a region of the large page around `page` marked.
  auto any_region = [large_pages](const auto& marks, std::uint32_t page) {
    const std::uint32_t first = page & ~(large_pages - 1);
    for (std::uint32_t region = first >> kRegionShift;
         region < (first + large_pages) >> kRegionShift; ++region) {
      if (marks[region]) return true;
    }
    return false;
  };
  const bool global_near = any_region(global_regions_, linear / kPageSize);
  scratch_.clear();
  for (std::uint32_t window = 0; window < 2 * kSpaces; ++window) {
    const bool current = window >> 1 == current_;
    // Most invlpgs are of user pages: other spaces need no look.
    if (!current && !global_near) continue;
    const std::uint32_t page = window << kViewShift | linear / kPageSize;
    const std::uint32_t dropped = current ? kShadowed : kShadowed | kGlobal;
    if (any_region(large_in_region_, page)) {
      const std::uint32_t first = page & ~(large_pages - 1);
      for (std::uint32_t piece = first; piece < first + large_pages; ++piece) {
        if ((entries_[piece] & (dropped | kLarge)) == (dropped | kLarge)) {
          Park(piece);
          scratch_.push_back(piece);
        }
      }
    }
    if ((entries_[page] & dropped) == dropped) {
      Park(page);
      scratch_.push_back(page);
    }
  }
  if (scratch_.empty()) return;
  ++counters_.page_flushes;
  std::sort(scratch_.begin(), scratch_.end());
  RevokeParked(scratch_);
}

Protection ShadowMmu::ProtectionOf(std::uint32_t entry) const {
  return (entry & kMayWrite) && !code_[entry & kPhysicalMask] ? Protection::kReadWrite
                                                              : Protection::kRead;
}

void ShadowMmu::Record(std::uint32_t page, std::uint32_t physical_page, bool may_write, bool global,
                       bool large) {
  const std::uint32_t old = entries_[page];
  if (old & kShadowed) {
    Unlink(page);
    if (old & kLarge) --large_in_region_[page >> kRegionShift];
  }
  if (!(old & kShadowed) || ((old & kGlobal) != 0) != global) {
    spaces_[page >> kSpaceShift].shadowed[global].push_back(page);
  }
  if (large) ++large_in_region_[page >> kRegionShift];
  if (global) global_regions_[(page & (kLinearPages - 1)) >> kRegionShift] = true;
  entries_[page] = kShadowed | (may_write ? kMayWrite : 0) | (global ? kGlobal : 0) |
                   (large ? kLarge : 0) | physical_page;
  alias_next_[page] = alias_head_[physical_page];
  alias_head_[physical_page] = page + 1;
}

void ShadowMmu::Unlink(std::uint32_t page) {
  std::uint32_t* link = &alias_head_[entries_[page] & kPhysicalMask];
  while (*link != page + 1) link = &alias_next_[*link - 1];
  *link = alias_next_[page];
}

void ShadowMmu::Forget(std::uint32_t page) {
  Unlink(page);
  if (entries_[page] & kLarge) --large_in_region_[page >> kRegionShift];
  entries_[page] = 0;
}

void ShadowMmu::Park(std::uint32_t page) {
  const std::uint32_t physical_page = entries_[page] & kPhysicalMask;
  Forget(page);
  entries_[page] = kParked | physical_page;
  parked_.push_back(page);
}

bool ShadowMmu::MapRun(std::uint32_t first_frame, std::uint32_t count) {
  platform::AddressWindow& supervisor = window(View::kSupervisor);
  const std::uint64_t offset = std::uint64_t{first_frame} * kPageSize;
  if (!supervisor.Map(static_cast<std::uint32_t>(offset), memory_.shared(), offset,
                      std::size_t{count} * kPageSize, Protection::kReadWrite, false)) {
    return false;
  }
  for (std::uint32_t frame = first_frame; frame < first_frame + count; ++frame) {
    Record(ShadowPage(View::kSupervisor, frame * kPageSize), frame, true, true, false);
    if (code_[frame]) supervisor.Protect(frame * kPageSize, kPageSize, Protection::kRead);
  }
  return true;
}

ShadowMmu::Miss ShadowMmu::MapFlat(std::uint32_t linear, bool write) {
  using Result = Miss::Result;
  const std::uint32_t frame = linear / kPageSize;
  if (frame >= page_count()) return {Result::kNoRam, 0, linear};
  const std::uint32_t page = ShadowPage(View::kSupervisor, linear);
  if (entries_[page] & kShadowed) {
    if (write && code_[frame]) return {Result::kCodeWrite, 0, linear};
    return {WindowOf(page).Protect(AddressOf(page), kPageSize, ProtectionOf(entries_[page]))
                ? Result::kMapped
                : Result::kHostError};
  }
  const std::uint32_t first = frame / kRunPages * kRunPages;
  return {MapRun(first, std::min(kRunPages, page_count() - first)) ? Result::kMapped
                                                                   : Result::kHostError};
}

ShadowMmu::Miss ShadowMmu::HandleMiss(std::uint32_t linear, bool write, View view) {
  using Result = Miss::Result;
  // With paging off, code at every level runs in the supervisor view.
  if (!paging()) {
    return view == View::kSupervisor ? MapFlat(linear, write) : Miss{Result::kNoRam, 0, linear};
  }
  const std::uint32_t page = ShadowPage(view, linear);
  const Translation translation =
      Walk(memory_, mode_, linear, write ? Access::kWrite : Access::kRead, view == View::kUser);
  switch (translation.status) {
    case Translation::Status::kOk: break;
    case Translation::Status::kPageFault: return {Result::kPageFault, translation.error_code, 0};
    case Translation::Status::kTableOutsideRam: return {Result::kTableOutsideRam, 0, 0};
  }
  if (!memory_.Contains(translation.physical, 1)) {
    return {Result::kNoRam, 0, translation.physical};
  }
  const auto physical_page = static_cast<std::uint32_t>(translation.physical / kPageSize);
  // A large guest page is mapped a run of its 4 KiB pieces at a time:
  // kernels map RAM with large pages and walk through it page by page.
  std::uint32_t first = page, count = 1;
  const std::uint32_t aligned = page & ~(kRunPages - 1);
  if (translation.page_size > kPageSize &&
      physical_page - (page - aligned) + kRunPages <= page_count()) {
    first = aligned;
    count = kRunPages;
  }
  const std::uint32_t first_physical = physical_page - (page - first);
  if (ListedPages() + count > kMaxShadowedPages) {
    // Other spaces go first, as a TLB evicts what is not in use; then
    // repeats in the current one's lists.
    DropOtherSpaces();
    for (const bool global : {false, true}) {
      FlushSpace(current_, global, [](std::uint32_t) { return false; });
    }
    if (ListedPages() + count > kMaxShadowedPages) FlushAll();
  }
  const std::uint32_t old = entries_[page];
  const bool may_write = translation.writable && translation.dirty;
  for (std::uint32_t i = 0; i < count; ++i) {
    Record(first + i, first_physical + i, may_write, Global(translation),
           translation.page_size > kPageSize);
  }
  platform::AddressWindow& window = WindowOf(page);
  // The window maps the physical page already, parked or with other rights
  // (the dirty bit got set): no new mapping.
  const bool mapped_there =
      count == 1 && (old & (kShadowed | kParked)) && (old & kPhysicalMask) == physical_page;
  if (mapped_there && (old & kParked)) ++counters_.pages_unparked;
  const bool mapped =
      mapped_there
          ? window.Protect(AddressOf(page), kPageSize, ProtectionOf(entries_[page]))
          : window.Map(AddressOf(first), memory_.shared(),
                       std::uint64_t{first_physical} * kPageSize, std::size_t{count} * kPageSize,
                       may_write ? Protection::kReadWrite : Protection::kRead,
                       // the access that missed retries at once; pages of
                       // a run may never be touched
                       count == 1);
  if (!mapped) {
    for (std::uint32_t i = 0; i < count; ++i) Forget(first + i);
    return {Result::kHostError, 0, translation.physical};
  }
  for (std::uint32_t i = 0; count > 1 && may_write && i < count; ++i) {
    if (code_[first_physical + i]) {
      window.Protect(AddressOf(first + i), kPageSize, Protection::kRead);
    }
  }
  if (count == 1) UnparkAround(page);
  if (write && code_[physical_page]) return {Result::kCodeWrite, 0, translation.physical};
  return {Result::kMapped, 0, translation.physical};
}

// A process touches its pages in clusters, and the guest kernel maps them
// so (Linux maps up to 16 pages of a file around a fault): the parked
// neighbours of a miss, often left by the last process on the same binary,
// are likely next, and a protection change now spares each a host fault.
void ShadowMmu::UnparkAround(std::uint32_t page) {
  if (ListedPages() + kRunPages > kMaxShadowedPages) return;
  const std::uint32_t first = page & ~(kRunPages - 1);
  for (std::uint32_t near = first; near < first + kRunPages; ++near) {
    const std::uint32_t entry = entries_[near];
    if (!(entry & kParked)) continue;
    const Translation translation = WalkAhead(near);
    const std::uint32_t physical_page = entry & kPhysicalMask;
    if (translation.status != Translation::Status::kOk ||
        translation.physical / kPageSize != physical_page || translation.page_size > kPageSize) {
      continue;
    }
    Record(near, physical_page, translation.writable && translation.dirty, Global(translation),
           false);
    WindowOf(near).Protect(AddressOf(near), kPageSize, ProtectionOf(entries_[near]));
    ++counters_.pages_unparked;
  }
}

Translation ShadowMmu::Translate(std::uint32_t linear, Access access, View view) {
  if (paging()) return Walk(memory_, mode_, linear, access, view == View::kUser);
  Translation identity;
  identity.physical = linear;
  identity.writable = true;
  identity.dirty = true;
  return identity;
}

void ShadowMmu::ProtectCode(std::uint32_t physical_page) {
  if (code_[physical_page]) return;
  code_[physical_page] = true;
  for (std::uint32_t alias = alias_head_[physical_page]; alias != 0;
       alias = alias_next_[alias - 1]) {
    if (entries_[alias - 1] & kMayWrite) {
      WindowOf(alias - 1).Protect(AddressOf(alias - 1), kPageSize, Protection::kRead);
    }
  }
}

void ShadowMmu::UnprotectCode(std::uint32_t physical_page) {
  if (!code_[physical_page]) return;
  code_[physical_page] = false;
  for (std::uint32_t alias = alias_head_[physical_page]; alias != 0;
       alias = alias_next_[alias - 1]) {
    if (entries_[alias - 1] & kMayWrite) {
      WindowOf(alias - 1).Protect(AddressOf(alias - 1), kPageSize, Protection::kReadWrite);
    }
  }
}

void ShadowMmu::FlushAll() {
  ++counters_.full_flushes;
  ForgetParked();
  unsigned parked_spaces = 0;  // a bit per space
  for (std::uint32_t page : scratch_) parked_spaces |= 1u << (page >> kSpaceShift);
  for (unsigned space = 0; space < kSpaces; ++space) {
    std::vector<std::uint32_t>(&lists)[2] = spaces_[space].shadowed;
    if (lists[false].empty() && lists[true].empty() && !(parked_spaces >> space & 1)) continue;
    windows_[2 * space].Unmap(0, platform::AddressWindow::kSize);
    windows_[2 * space + 1].Unmap(0, platform::AddressWindow::kSize);
    for (std::vector<std::uint32_t>& shadowed : lists) {
      for (std::uint32_t page : shadowed) {
        if (entries_[page] & kShadowed) {
          alias_head_[entries_[page] & kPhysicalMask] = 0;
          entries_[page] = 0;
        }
      }
      shadowed.clear();
    }
    spaces_[space].tagged = false;
  }
  std::fill(large_in_region_.begin(), large_in_region_.end(), 0);
  global_regions_.reset();
  spaces_[current_].cr3 = mode_.cr3;
  spaces_[current_].tagged = paging();
}

template <typename Drop>
void ShadowMmu::FlushSpace(unsigned space, bool global, Drop drop) {
  std::vector<std::uint32_t>& shadowed = spaces_[space].shadowed[global];
  const std::uint32_t listed_here = kShadowed | (global ? kGlobal : 0);
  scratch_.clear();
  std::size_t kept = 0;
  for (std::uint32_t page : shadowed) {
    if ((entries_[page] & (kShadowed | kGlobal | kListed)) != listed_here) continue;
    if (drop(page)) {
      Park(page);
      scratch_.push_back(page);
    } else {
      entries_[page] |= kListed;
      shadowed[kept++] = page;
    }
  }
  shadowed.resize(kept);
  for (std::uint32_t page : shadowed) entries_[page] &= ~kListed;
  std::sort(scratch_.begin(), scratch_.end());
  RevokeParked(scratch_);
}

void ShadowMmu::DropOtherSpaces() {
  for (unsigned space = 0; space < kSpaces; ++space) {
    if (space == current_) continue;
    for (const bool global : {false, true}) {
      FlushSpace(space, global, [](std::uint32_t) { return true; });
    }
    spaces_[space].tagged = false;
  }
}

std::size_t ShadowMmu::ListedPages() const {
  std::size_t listed = 0;
  for (const Space& space : spaces_)
    listed += space.shadowed[false].size() + space.shadowed[true].size();
  return listed;
}

void ShadowMmu::RevokeParked(const std::vector<std::uint32_t>& pages) {
  ReleasePages(pages, Release::kRevoke);
  if (parked_.size() <= kMaxParkedPages) return;
  ForgetParked();
  std::sort(scratch_.begin(), scratch_.end());
  ReleasePages(scratch_, Release::kUnmap);
}

void ShadowMmu::ForgetParked() {
  scratch_.clear();
  for (std::uint32_t page : parked_) {
    if (entries_[page] & kParked) {  // once, even if listed again
      entries_[page] = 0;
      scratch_.push_back(page);
    }
  }
  parked_.clear();
}

void ShadowMmu::ReleasePages(const std::vector<std::uint32_t>& pages, Release release) {
  std::size_t i = 0;
  while (i < pages.size()) {
    const std::uint32_t start = pages[i];
    std::uint32_t end = start + 1;
    for (++i; i < pages.size(); ++i) {
      const std::uint32_t next = pages[i];
      if (next - end > kMaxUnmapGap || (next >> kViewShift) != (start >> kViewShift)) break;
      bool gap_clear = true;
      for (std::uint32_t page = end; page < next && gap_clear; ++page) {
        gap_clear = !(entries_[page] & kShadowed);
      }
      if (!gap_clear) break;
      end = next + 1;
    }
    const std::size_t bytes = std::size_t{end - start} * kPageSize;
    if (release == Release::kUnmap) {
      WindowOf(start).Unmap(AddressOf(start), bytes);
    } else {
      WindowOf(start).Protect(AddressOf(start), bytes, Protection::kNone);
    }
  }
}

}  // namespace bt::mmu
