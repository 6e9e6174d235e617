#include "devices/mmio_bus.h"

#include <algorithm>
#include <cstdio>
#include <string>

namespace bt::devices {
namespace {

constexpr std::uint64_t kAddressSpace = std::uint64_t{1} << 32;

std::uint64_t SizeMask(unsigned size) {
  return size >= 8 ? ~std::uint64_t{0} : (std::uint64_t{1} << (size * 8)) - 1;
}

std::string RangeName(std::uint64_t base, std::uint64_t size) {
  char text[48];
  std::snprintf(text, sizeof(text), "0x%llx-0x%llx", static_cast<unsigned long long>(base),
                static_cast<unsigned long long>(base + size - 1));
  return text;
}

}  // namespace

Result<void> MmioBus::Register(std::uint64_t base, std::uint64_t size, MmioDevice& device,
                               std::uint64_t ram_end) {
  if (size == 0) return Error{"cannot claim an empty MMIO range"};
  if (base >= kAddressSpace || size > kAddressSpace - base) {
    return Error{"MMIO range " + RangeName(base, size) + " runs past 4 GiB"};
  }
  if (base < ram_end) {
    return Error{"MMIO range " + RangeName(base, size) + " overlaps guest RAM"};
  }
  const auto after = std::upper_bound(
      claims_.begin(), claims_.end(), base,
      [](std::uint64_t address, const Claim& claim) { return address < claim.base; });
  if ((after != claims_.end() && after->base < base + size) ||
      (after != claims_.begin() && (after - 1)->base + (after - 1)->size > base)) {
    const Claim& other =
        after != claims_.end() && after->base < base + size ? *after : *(after - 1);
    return Error{"MMIO range " + RangeName(base, size) + " overlaps " +
                 RangeName(other.base, other.size) + ", already claimed by another device"};
  }
  claims_.insert(after, Claim{&device, base, size});
  return {};
}

const MmioBus::Claim* MmioBus::Find(std::uint64_t address) const {
  const auto after =
      std::upper_bound(claims_.begin(), claims_.end(), address,
                       [](std::uint64_t value, const Claim& claim) { return value < claim.base; });
  if (after == claims_.begin()) return nullptr;
  const Claim& claim = *(after - 1);
  return address - claim.base < claim.size ? &claim : nullptr;
}

std::uint64_t MmioBus::Read(std::uint64_t address, unsigned size) {
  const Claim* claim = Find(address);
  if (!claim) {
    ++unclaimed_accesses_;
    return SizeMask(size);
  }
  return claim->device->MmioRead(address - claim->base, size) & SizeMask(size);
}

void MmioBus::Write(std::uint64_t address, unsigned size, std::uint64_t value) {
  const Claim* claim = Find(address);
  if (!claim) {
    ++unclaimed_accesses_;
    return;
  }
  claim->device->MmioWrite(address - claim->base, size, value & SizeMask(size));
}

}  // namespace bt::devices
