// The PC's CMOS RAM and real-time clock (Motorola MC146818A, as PC chipsets
// still model it): index port 0x70 (bit 7 masks NMI, which libbt does not
// raise), data port 0x71; registers 0-9 hold the time and date, A-D the
// clock's control and status, the rest of the 128 bytes are plain CMOS RAM.
//
// The time is the host's (UTC, as Linux's default) plus whatever offset the
// guest sets by writing the time registers. An update never appears to be in
// progress (UIP reads 0): registers change between reads only as time does.
// Not emulated yet: the periodic, alarm and update-ended interrupts on IRQ8
// (Register C reports no flags) and the square-wave output.
#pragma once

#include <bt/port_device.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>

namespace bt::devices {

class CmosRtc final : public PortDevice {
 public:
  using Clock = std::function<std::chrono::system_clock::time_point()>;

  explicit CmosRtc(Clock clock);

  std::uint32_t PortRead(std::uint16_t offset, unsigned size) override;
  void PortWrite(std::uint16_t offset, unsigned size, std::uint32_t value) override;

 private:
  // Register numbers (MC146818A datasheet).
  enum : std::uint8_t {
    kSeconds = 0x00,
    kMinutes = 0x02,
    kHours = 0x04,
    kDayOfWeek = 0x06,
    kDayOfMonth = 0x07,
    kMonth = 0x08,
    kYear = 0x09,
    kRegisterA = 0x0A,
    kRegisterB = 0x0B,
    kRegisterC = 0x0C,
    kRegisterD = 0x0D,
    kCentury = 0x32,  // the PC/AT BIOS's century byte
  };

  std::uint8_t ReadRegister(std::uint8_t index);
  void WriteRegister(std::uint8_t index, std::uint8_t value);
  // The guest's current time, in seconds since the epoch.
  std::int64_t GuestSeconds() const;
  std::uint8_t Encode(unsigned value) const;  // BCD or binary per Register B
  unsigned Decode(std::uint8_t value) const;

  Clock clock_;
  std::int64_t offset_seconds_ = 0;  // guest time minus host time
  std::uint8_t index_ = 0;
  std::array<std::uint8_t, 128> ram_{};
};

}  // namespace bt::devices
