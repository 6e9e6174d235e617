// The PC's CMOS RAM and real-time clock (Motorola MC146818A, as PC chipsets
// still model it): index port 0x70 (bit 7 masks NMI, which libbt does not
// raise), data port 0x71; registers 0-9 hold the time and date, A-D the
// clock's control and status, the rest of the 128 bytes are plain CMOS RAM.
//
// The clock starts at the host's time (UTC, as Linux's default) when the
// machine is made and runs on the owner's steady clock from there, as the
// chip counts on from its battery-backed time; the guest sets its own time
// by writing the time registers under SET. An update never appears to be in
// progress (UIP reads 0): the time registers change between reads only as
// time does, and the update cycle takes no time at the second boundary.
//
// Interrupts, on one output (the machine wires it to IRQ8), with Register C's
// flags as the datasheet sets them: PF at every period of the rate Register
// A selects (the taps of the 32.768 kHz divider chain, in step with the
// second boundaries), UF at every update (each second, not while SET holds
// the clock), AF at an update whose time matches the alarm registers (values
// 0xC0-0xFF match any). Flags are set whether or not their interrupt is
// enabled; IRQF and the output follow (PF and PIE) or (AF and AIE) or (UF and
// UIE), and reading Register C clears them all. After a long pause (a
// stopped guest) each flag is set once, not once per event missed.
//
// Left out: the divider control bits of Register A are stored but the
// divider always runs at 32.768 kHz (no divider reset, no other time bases);
// the square-wave output (SQWE) and daylight saving (DSE) are stored only.
//
// Not thread-safe: every call comes from the thread that runs the guest.
#pragma once

#include "devices/timed_device.h"

#include <bt/port_device.h>

#include <array>
#include <chrono>
#include <cstdint>

namespace bt::devices {

class CmosRtc final : public PortDevice, public TimedDevice {
 public:
  // Receives the interrupt output's level. Called from port accesses and
  // Advance; must not call back into the RTC. May be null.
  using IrqListener = void (*)(void* context, bool level);

  // The clock reads `power_on_time` at the instant `now` first returns.
  CmosRtc(std::chrono::system_clock::time_point power_on_time, Now now, IrqListener irq,
          void* irq_context);

  std::uint32_t PortRead(std::uint16_t offset, unsigned size) override;
  void PortWrite(std::uint16_t offset, unsigned size, std::uint32_t value) override;

  // Sets the flags of what happened until `now`; returns when an enabled
  // interrupt can next happen, TimePoint::max() while IRQF is already set
  // (nothing can change the output until Register C is read) or when none
  // is enabled.
  TimePoint Advance(TimePoint now) override;

 private:
  // Register numbers (MC146818A datasheet).
  enum : std::uint8_t {
    kSeconds = 0x00,
    kSecondsAlarm = 0x01,
    kMinutes = 0x02,
    kMinutesAlarm = 0x03,
    kHours = 0x04,
    kHoursAlarm = 0x05,
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
  // The guest's time at `time`: nanoseconds since the epoch.
  std::int64_t GuestNanoseconds(TimePoint time) const;
  // When the guest's clock reads `guest_ns`.
  TimePoint TimeOfGuest(std::int64_t guest_ns) const;
  // The time register `index` (seconds, minutes, hours...) at guest second
  // `seconds`, encoded as Register B says.
  std::uint8_t TimeRegister(std::uint8_t index, std::int64_t seconds) const;
  std::uint8_t Encode(unsigned value) const;  // BCD or binary per Register B
  unsigned Decode(std::uint8_t value) const;
  // The periodic interrupt's period in 32.768 kHz ticks, 0 if off.
  std::int64_t PeriodTicks() const;
  bool AlarmMatches(std::int64_t seconds) const;
  // Sets the flags of the events in (synced_, now] and drives the output.
  void CatchUp(TimePoint now);
  // When an enabled interrupt can next happen, as Advance returns it.
  TimePoint NextDeadline() const;
  // Reports the deadline to the owner if a register access moved it.
  void ReportDeadline();
  // Sets IRQF from the flags and their enables, and drives the output.
  void UpdateIrq();

  Now now_;
  IrqListener irq_;
  void* irq_context_;
  TimePoint epoch_;                        // when the clock read power_on_ns_
  std::int64_t power_on_ns_;               // host time at epoch_, since the Unix epoch
  std::int64_t offset_seconds_ = 0;        // what the guest's settings of the time added
  TimePoint synced_;                       // flags hold every event up to here
  TimePoint deadline_ = TimePoint::max();  // as last told to the owner
  bool irq_level_ = false;
  std::uint8_t index_ = 0;
  std::array<std::uint8_t, 128> ram_{};
};

}  // namespace bt::devices
