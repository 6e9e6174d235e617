#include "mmu/flat_address_space.h"

#include <algorithm>

namespace bt::mmu {

using platform::Protection;

FlatAddressSpace::FlatAddressSpace(const PhysicalMemory& memory, platform::AddressWindow& window)
    : memory_(memory),
      window_(window),
      mapped_runs_((memory.size() / PhysicalMemory::kPageSize + kRunPages - 1) / kRunPages),
      code_(memory.size() / PhysicalMemory::kPageSize) {}

bool FlatAddressSpace::MapOnFault(std::uint32_t address) {
  const std::uint32_t page = address / PhysicalMemory::kPageSize;
  if (page >= code_.size() || IsMapped(page)) return false;
  const std::uint32_t first = page / kRunPages * kRunPages;
  const std::uint32_t count = std::min<std::uint32_t>(kRunPages, page_count() - first);
  const std::uint64_t offset = std::uint64_t{first} * PhysicalMemory::kPageSize;
  if (!window_.Map(static_cast<std::uint32_t>(offset), memory_.shared(), offset,
                   std::size_t{count} * PhysicalMemory::kPageSize, Protection::kReadWrite)) {
    return false;
  }
  mapped_runs_[page / kRunPages] = true;
  for (std::uint32_t p = first; p < first + count; ++p) {
    if (code_[p])
      window_.Protect(p * PhysicalMemory::kPageSize, PhysicalMemory::kPageSize, Protection::kRead);
  }
  return true;
}

void FlatAddressSpace::ProtectCode(std::uint32_t page) {
  if (code_[page]) return;
  code_[page] = true;
  if (IsMapped(page)) {
    window_.Protect(page * PhysicalMemory::kPageSize, PhysicalMemory::kPageSize, Protection::kRead);
  }
}

void FlatAddressSpace::UnprotectCode(std::uint32_t page) {
  if (!code_[page]) return;
  code_[page] = false;
  if (IsMapped(page)) {
    window_.Protect(page * PhysicalMemory::kPageSize, PhysicalMemory::kPageSize,
                    Protection::kReadWrite);
  }
}

}  // namespace bt::mmu
