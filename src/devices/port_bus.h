// The guest I/O-port space: routes each in/out to the device that claimed the
// port, with the offset into that device's range. Devices never see absolute
// port numbers, so one device type can sit at several bases (COM1, COM2).
#pragma once

#include <bt/port_device.h>
#include <bt/result.h>

#include <array>
#include <cstdint>
#include <vector>

namespace bt::devices {

class PortBus {
 public:
  // Whose code a device runs when it is accessed: libbt's own only, or
  // (also) an application's - a device it added, or a callback it gave.
  enum class Code : std::uint8_t { kApplication, kLibbtOnly };

  // Claims ports [base, base + count) for `device`, which must outlive the
  // bus. Fails if the range is empty, runs past 0xFFFF or overlaps a range
  // already claimed.
  Result<void> Register(std::uint16_t base, std::uint16_t count, PortDevice& device,
                        Code code = Code::kApplication);
  // Whether an access to `port` may run application code (which must not
  // find the guest's x87 state in the FPU, see runtime/guest_fpu.h).
  bool RunsApplicationCode(std::uint16_t port) const {
    return owner_[port] != kUnclaimed && claims_[owner_[port] - 1].code == Code::kApplication;
  }

  // `size` is 1, 2 or 4. An access belongs to the device that owns its first
  // port, even if it spills past that device's range. Values are truncated
  // to `size` bytes both ways, so devices may ignore the upper bits. An
  // unclaimed port reads as all ones (an undriven ISA bus floats high) and
  // ignores writes.
  std::uint32_t Read(std::uint16_t port, unsigned size);
  void Write(std::uint16_t port, unsigned size, std::uint32_t value);

  // Reads and writes of ports no device claimed; a guest probing for
  // hardware makes some, a steady stream means a device is missing.
  std::uint64_t unclaimed_accesses() const { return unclaimed_accesses_; }

 private:
  struct Claim {
    PortDevice* device;
    std::uint16_t base;
    std::uint16_t count;
    Code code;
  };
  static constexpr std::uint8_t kUnclaimed = 0;

  // Per port, 1 + the index of its claim in claims_, or kUnclaimed: 64 KiB
  // that turns dispatch into two array loads with no search.
  std::array<std::uint8_t, 0x10000> owner_{};
  std::vector<Claim> claims_;
  std::uint64_t unclaimed_accesses_ = 0;
};

}  // namespace bt::devices
