#include "devices/port_bus.h"

#include <cassert>
#include <cstdio>
#include <limits>
#include <string>

namespace bt::devices {
namespace {

std::uint32_t SizeMask(unsigned size) {
  assert(size == 1 || size == 2 || size == 4);
  return size == 4 ? 0xFFFFFFFFu : (1u << (size * 8)) - 1;
}

std::string Hex(std::uint32_t value) {
  char text[16];
  std::snprintf(text, sizeof(text), "0x%x", value);
  return text;
}

std::string RangeName(std::uint32_t base, std::uint32_t count) {
  return Hex(base) + "-" + Hex(base + count - 1);
}

}  // namespace

Result<void> PortBus::Register(std::uint16_t base, std::uint16_t count, PortDevice& device,
                               Code code) {
  if (count == 0) return Error{"cannot claim an empty I/O port range at " + Hex(base)};
  const std::uint32_t end = std::uint32_t{base} + count;
  if (end > 0x10000) {
    return Error{"I/O port range " + RangeName(base, count) + " runs past the last port, 0xffff"};
  }
  for (std::uint32_t port = base; port < end; ++port) {
    if (owner_[port] != kUnclaimed) {
      const Claim& other = claims_[owner_[port] - 1];
      return Error{"I/O ports " + RangeName(base, count) + " overlap ports " +
                   RangeName(other.base, other.count) + ", already claimed by another device"};
    }
  }
  if (claims_.size() == std::numeric_limits<std::uint8_t>::max()) {
    return Error{"cannot claim I/O ports " + RangeName(base, count) + ": the limit of " +
                 std::to_string(claims_.size()) + " port devices is reached"};
  }
  claims_.push_back(Claim{&device, base, count, code});
  for (std::uint32_t port = base; port < end; ++port) {
    owner_[port] = static_cast<std::uint8_t>(claims_.size());
  }
  return {};
}

std::uint32_t PortBus::Read(std::uint16_t port, unsigned size) {
  const std::uint32_t mask = SizeMask(size);
  const std::uint8_t owner = owner_[port];
  if (owner == kUnclaimed) {
    ++unclaimed_accesses_;
    return mask;
  }
  const Claim& claim = claims_[owner - 1];
  return claim.device->PortRead(static_cast<std::uint16_t>(port - claim.base), size) & mask;
}

void PortBus::Write(std::uint16_t port, unsigned size, std::uint32_t value) {
  const std::uint32_t mask = SizeMask(size);
  const std::uint8_t owner = owner_[port];
  if (owner == kUnclaimed) {
    ++unclaimed_accesses_;
    return;
  }
  const Claim& claim = claims_[owner - 1];
  claim.device->PortWrite(static_cast<std::uint16_t>(port - claim.base), size, value & mask);
}

}  // namespace bt::devices
