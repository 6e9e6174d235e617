#include "mmu/physical_memory.h"

#include <string>

namespace bt::mmu {

Result<PhysicalMemory> PhysicalMemory::Create(std::uint64_t bytes) {
  constexpr std::uint64_t kMinimum = 1u << 20;
  constexpr std::uint64_t kMaximum = std::uint64_t{3} << 30;
  if (bytes < kMinimum || bytes > kMaximum || bytes % kPageSize != 0) {
    return Error{"guest RAM must be a multiple of 4 KiB between 1 MiB and 3 GiB (got " +
                 std::to_string(bytes) + " bytes)"};
  }
  auto memory = platform::SharedMemory::Create(bytes, "bt-guest-ram");
  if (!memory) return Error{memory.error()};
  return PhysicalMemory(std::move(memory.value()));
}

}  // namespace bt::mmu
