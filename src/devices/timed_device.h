// A device whose state moves with time (the PIT's counters, the RTC's clock
// and its interrupts). Nothing ticks by itself: every port access brings the
// device up to now first, and its owner calls Advance when the device said
// something falls due. Time is the owner's steady_clock, read through the
// `Now` function each device is given, so tests can move it by hand.
//
// Advance runs once per timer event, not per guest instruction, so it may be
// virtual.
#pragma once

#include <chrono>
#include <cstdint>

namespace bt::devices {

class TimedDevice {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  using Now = TimePoint (*)();
  // Receives the new time of the device's next deadline after a port access
  // moved it (TimePoint::max() when nothing is due any more).
  using DeadlineListener = void (*)(void* context, TimePoint deadline);

  virtual ~TimedDevice() = default;

  // Brings the device up to `now`, driving the interrupts that fell due;
  // returns when Advance is next needed, TimePoint::max() if never.
  virtual TimePoint Advance(TimePoint now) = 0;

  // The listener must not call back into the device.
  void SetDeadlineListener(DeadlineListener listener, void* context) {
    deadline_listener_ = listener;
    deadline_context_ = context;
  }

 protected:
  // A guest access moved the next deadline to `deadline`.
  void MoveDeadline(TimePoint deadline) const {
    if (deadline_listener_ != nullptr) deadline_listener_(deadline_context_, deadline);
  }

 private:
  DeadlineListener deadline_listener_ = nullptr;
  void* deadline_context_ = nullptr;
};

inline constexpr std::int64_t kNanosPerSecond = 1'000'000'000;

// Which tick of a `hz` clock started at time 0 is running at `ns`, and the
// first nanosecond of tick `tick`. The products are split at whole seconds so
// that they cannot overflow.
constexpr std::int64_t TickAtNanosecond(std::int64_t ns, std::int64_t hz) {
  return ns / kNanosPerSecond * hz + ns % kNanosPerSecond * hz / kNanosPerSecond;
}
constexpr std::int64_t NanosecondOfTick(std::int64_t tick, std::int64_t hz) {
  return tick / hz * kNanosPerSecond + (tick % hz * kNanosPerSecond + hz - 1) / hz;
}

}  // namespace bt::devices
