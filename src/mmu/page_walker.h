// The guest page-table walk the CPU does on a TLB miss (SDM Vol. 3A, chapter
// 4): 32-bit paging with 4 KiB and 4 MiB (CR4.PSE) pages, and PAE paging with
// 4 KiB and 2 MiB pages and the execute-disable bit. The shadow MMU runs it
// on a host fault in a guest window and maps what it finds; the translator
// runs it to fetch code. It sets accessed and dirty bits as hardware does.
#pragma once

#include "mmu/physical_memory.h"

#include <cstdint>

namespace bt::mmu {

enum class Access : std::uint8_t { kRead, kWrite, kExecute };

// The control-register state that selects and shapes paging.
struct PagingMode {
  std::uint32_t cr0 = 0, cr3 = 0, cr4 = 0;
  bool nx_enabled = false;  // IA32_EFER.NXE
};

// #PF error code bits (SDM Vol. 3A, 4.7).
inline constexpr std::uint32_t kPfPresent = 1u << 0, kPfWrite = 1u << 1, kPfUser = 1u << 2,
                               kPfReserved = 1u << 3, kPfFetch = 1u << 4;

struct Translation {
  enum class Status : std::uint8_t {
    kOk,
    kPageFault,        // deliver #PF with `error_code`
    kTableOutsideRam,  // a paging structure lies where there is no RAM
  };
  Status status = Status::kOk;
  std::uint32_t error_code = 0;
  std::uint64_t physical = 0;      // of the linear address walked
  std::uint32_t page_size = 4096;  // 4 KiB, 2 MiB or 4 MiB
  // What the combined entries allow, for mapping the page in a shadow:
  bool writable = false;  // for the walk's privilege, counting CR0.WP
  bool user = false;
  bool executable = true;
  bool dirty = false;  // the leaf entry's D bit after the walk
  bool global = false;
};

// Walks the tables for `access` at `linear` by user-mode (CPL 3) or
// supervisor code; on success sets the accessed bits of the entries used
// and, for a write, the dirty bit of the leaf.
Translation Walk(PhysicalMemory& memory, const PagingMode& mode, std::uint32_t linear,
                 Access access, bool user_mode);

}  // namespace bt::mmu
