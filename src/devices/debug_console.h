// The Bochs/QEMU "port 0xE9 hack": a one-port console with no registers, no
// status and no setup, so that a guest can print before it has a UART driver.
// Emulated completely: writes print their low byte, reads return 0xE9, the
// Bochs convention a guest uses to detect the port.
#pragma once

#include <bt/port_device.h>

#include <cstdint>
#include <functional>
#include <string_view>
#include <utility>

namespace bt::devices {

class DebugConsole final : public PortDevice {
 public:
  // Receives every byte the guest writes, as it is written.
  using OutputSink = std::function<void(std::string_view)>;

  static constexpr std::uint8_t kSignature = 0xE9;

  explicit DebugConsole(OutputSink output) : output_(std::move(output)) {}

  std::uint32_t PortRead(std::uint16_t offset, unsigned size) override;
  void PortWrite(std::uint16_t offset, unsigned size, std::uint32_t value) override;

 private:
  OutputSink output_;
};

}  // namespace bt::devices
