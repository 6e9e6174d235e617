#include "mmu/page_walker.h"

namespace bt::mmu {
namespace {

constexpr std::uint32_t kCr0Wp = 1u << 16;
constexpr std::uint32_t kCr4Pse = 1u << 4, kCr4Pae = 1u << 5;
constexpr std::uint64_t kPresent = 1u << 0, kWritable = 1u << 1, kUser = 1u << 2,
                        kAccessed = 1u << 5, kDirty = 1u << 6, kLargePage = 1u << 7,
                        kGlobal = 1u << 8, kNoExecute = 1ull << 63;
// The guest's physical address width: 32 bits, as CPUID reports no PSE-36
// and no wider PAE addresses, so higher address bits are reserved.
constexpr unsigned kPhysicalAddressBits = 32;
constexpr std::uint64_t kAddressBits = (1ull << kPhysicalAddressBits) - 1;

// One level of the walk: the entry, where it lives, and how wide it is.
struct Entry {
  std::uint64_t value = 0;
  std::uint64_t address = 0;
  unsigned bytes = 4;
};

bool Load(const PhysicalMemory& memory, std::uint64_t address, unsigned bytes, Entry& entry) {
  entry.address = address;
  entry.bytes = bytes;
  entry.value = 0;
  return memory.Read(address, &entry.value, bytes);
}

void SetBits(PhysicalMemory& memory, Entry& entry, std::uint64_t bits) {
  if ((entry.value & bits) == bits) return;
  entry.value |= bits;
  // The bits live in the low byte, so one byte store cannot race a guest
  // update of the address part in a way hardware's locked update would not.
  const auto low = static_cast<std::uint8_t>(entry.value);
  memory.Write(entry.address, &low, 1);
}

}  // namespace

Translation Walk(PhysicalMemory& memory, const PagingMode& mode, std::uint32_t linear,
                 Access access, bool user_mode) {
  Translation result;
  const bool write = access == Access::kWrite;
  const bool fetch = access == Access::kExecute;
  const bool pae = mode.cr4 & kCr4Pae;
  const std::uint32_t access_bits = (write ? kPfWrite : 0) | (user_mode ? kPfUser : 0) |
                                    (fetch && pae && mode.nx_enabled ? kPfFetch : 0);
  auto fault = [&](std::uint32_t cause) {
    result.status = Translation::Status::kPageFault;
    result.error_code = cause | access_bits;
    return result;
  };
  auto outside_ram = [&] {
    result.status = Translation::Status::kTableOutsideRam;
    return result;
  };

  // Entries from the root down; the leaf is last.
  Entry entries[3];
  unsigned levels = 0;
  std::uint64_t reserved = 0;  // bits that must be zero in the current entry
  std::uint64_t physical = 0;
  if (!pae) {
    Entry& pde = entries[levels++];
    if (!Load(memory, (mode.cr3 & ~0xFFFu) + (linear >> 22) * 4u, 4, pde)) return outside_ram();
    if (!(pde.value & kPresent)) return fault(0);
    if ((pde.value & kLargePage) && (mode.cr4 & kCr4Pse)) {
      // Bits 20:13 would be physical address bits 39:32; bit 21 is reserved.
      if (pde.value & 0x003FE000u) return fault(kPfPresent | kPfReserved);
      physical = (pde.value & 0xFFC00000u) | (linear & 0x003FFFFFu);
      result.page_size = 4u << 20;
    } else {
      Entry& pte = entries[levels++];
      if (!Load(memory, (pde.value & 0xFFFFF000u) + ((linear >> 12) & 0x3FFu) * 4u, 4, pte)) {
        return outside_ram();
      }
      if (!(pte.value & kPresent)) return fault(0);
      physical = (pte.value & 0xFFFFF000u) | (linear & 0xFFFu);
    }
  } else {
    // PAE: CR3 holds a 32-byte aligned table of four directory pointers.
    const std::uint64_t no_execute_reserved = mode.nx_enabled ? 0 : kNoExecute;
    reserved = (~kAddressBits & 0x7FFFFFFFFFFFF000ull) | no_execute_reserved;
    Entry pdpte;
    if (!Load(memory, (mode.cr3 & ~0x1Fu) + (linear >> 30) * 8u, 8, pdpte)) return outside_ram();
    if (!(pdpte.value & kPresent)) return fault(0);
    if (pdpte.value & (reserved | 0x1E6u | kNoExecute)) return fault(kPfPresent | kPfReserved);
    Entry& pde = entries[levels++];
    if (!Load(memory, (pdpte.value & kAddressBits & ~0xFFFull) + ((linear >> 21) & 0x1FFu) * 8u, 8,
              pde)) {
      return outside_ram();
    }
    if (!(pde.value & kPresent)) return fault(0);
    if (pde.value & reserved) return fault(kPfPresent | kPfReserved);
    if (pde.value & kLargePage) {
      if (pde.value & 0x001FE000u) return fault(kPfPresent | kPfReserved);
      physical = (pde.value & kAddressBits & ~0x1FFFFFull) | (linear & 0x1FFFFFu);
      result.page_size = 2u << 20;
    } else {
      Entry& pte = entries[levels++];
      if (!Load(memory, (pde.value & kAddressBits & ~0xFFFull) + ((linear >> 12) & 0x1FFu) * 8u, 8,
                pte)) {
        return outside_ram();
      }
      if (!(pte.value & kPresent)) return fault(0);
      if (pte.value & reserved) return fault(kPfPresent | kPfReserved);
      physical = (pte.value & kAddressBits & ~0xFFFull) | (linear & 0xFFFu);
    }
  }

  bool writable = true, user = true, executable = true;
  for (unsigned i = 0; i < levels; ++i) {
    writable = writable && (entries[i].value & kWritable);
    user = user && (entries[i].value & kUser);
    executable = executable && !(mode.nx_enabled && (entries[i].value & kNoExecute));
  }
  // Supervisor writes ignore R/W unless CR0.WP is set (SDM Vol. 3A, 4.6.1).
  const bool may_write = writable || (!user_mode && !(mode.cr0 & kCr0Wp));
  if ((user_mode && !user) || (write && !may_write) || (fetch && !executable)) {
    return fault(kPfPresent);
  }
  for (unsigned i = 0; i < levels; ++i) SetBits(memory, entries[i], kAccessed);
  Entry& leaf = entries[levels - 1];
  if (write) SetBits(memory, leaf, kDirty);

  result.physical = physical;
  result.writable = may_write;
  result.user = user;
  result.executable = executable;
  result.dirty = leaf.value & kDirty;
  result.global = leaf.value & kGlobal;
  return result;
}

}  // namespace bt::mmu
