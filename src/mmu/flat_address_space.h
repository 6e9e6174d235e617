// Guest linear memory while paging is off: linear = physical. Window pages
// are mapped from the RAM memfd on first touch, a 64 KiB run at a time
// (fewer host faults), and pages holding translated code stay read-only so
// guest writes to them fault and can invalidate translations.
#pragma once

#include "mmu/physical_memory.h"
#include "platform/host_memory.h"

#include <cstdint>
#include <vector>

namespace bt::mmu {

class FlatAddressSpace {
 public:
  static constexpr std::uint32_t kRunPages = 16;

  FlatAddressSpace(const PhysicalMemory& memory, platform::AddressWindow& window);

  // Handles a host fault at guest address `address`; false if the address
  // has no RAM behind it or was already mapped.
  bool MapOnFault(std::uint32_t address);
  bool IsMapped(std::uint32_t page) const { return mapped_runs_[page / kRunPages]; }

  bool IsCodePage(std::uint32_t page) const { return code_[page]; }
  // Makes `page` read-only in the window (it holds translated code).
  void ProtectCode(std::uint32_t page);
  // Makes `page` writable again (its translations are gone).
  void UnprotectCode(std::uint32_t page);

  std::uint32_t page_count() const { return static_cast<std::uint32_t>(code_.size()); }

 private:
  const PhysicalMemory& memory_;
  platform::AddressWindow& window_;
  std::vector<bool> mapped_runs_;
  std::vector<bool> code_;
};

}  // namespace bt::mmu
