// Guest-physical addresses without RAM: routes each access to the device
// that claimed the range, with the offset into it. The runtime comes here
// for guest accesses the shadow MMU cannot map (runtime/adaptive.cc).
#pragma once

#include <bt/mmio_device.h>
#include <bt/result.h>

#include <cstdint>
#include <vector>

namespace bt::devices {

class MmioBus {
 public:
  // Claims guest-physical [base, base + size) for `device`, which must
  // outlive the bus. Fails for an empty range, one past 4 GiB, or one that
  // overlaps RAM (below `ram_end`) or a range already claimed.
  Result<void> Register(std::uint64_t base, std::uint64_t size, MmioDevice& device,
                        std::uint64_t ram_end);

  // `size` is 1, 2, 4 or 8. An access belongs to the device that owns its
  // first byte. An unclaimed address reads as all ones and ignores writes.
  std::uint64_t Read(std::uint64_t address, unsigned size);
  void Write(std::uint64_t address, unsigned size, std::uint64_t value);

  std::uint64_t unclaimed_accesses() const { return unclaimed_accesses_; }

 private:
  struct Claim {
    MmioDevice* device;
    std::uint64_t base;
    std::uint64_t size;
  };
  const Claim* Find(std::uint64_t address) const;

  std::vector<Claim> claims_;  // sorted by base
  std::uint64_t unclaimed_accesses_ = 0;
};

}  // namespace bt::devices
