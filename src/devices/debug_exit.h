// QEMU's isa-debug-exit device: lets a test guest end the run with a status.
// Emulated completely: a write of any size at any offset in the range calls
// the trigger with the value written; QEMU then exits with (value << 1) | 1,
// and so does btvm, so a test sees the same exit code under both. The device
// itself only reports the value: stopping the run is the runtime's business.
// Reads return all ones, as from an unclaimed port.
#pragma once

#include <bt/port_device.h>

#include <cstdint>
#include <functional>
#include <utility>

namespace bt::devices {

class DebugExit final : public PortDevice {
 public:
  using Trigger = std::function<void(std::uint32_t value)>;

  explicit DebugExit(Trigger trigger) : trigger_(std::move(trigger)) {}

  std::uint32_t PortRead(std::uint16_t offset, unsigned size) override;
  void PortWrite(std::uint16_t offset, unsigned size, std::uint32_t value) override;

 private:
  Trigger trigger_;
};

}  // namespace bt::devices
