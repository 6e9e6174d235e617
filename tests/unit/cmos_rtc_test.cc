#include "devices/cmos_rtc.h"

#include <doctest/doctest.h>

#include <chrono>
#include <vector>

namespace bt::devices {
namespace {

using TimePoint = CmosRtc::TimePoint;
using std::chrono::milliseconds;
using std::chrono::nanoseconds;
using std::chrono::seconds;

// 2026-11-21 08:13:05 UTC, a Saturday.
const auto kPowerOnTime = std::chrono::system_clock::from_time_t(1795248785);
constexpr TimePoint kNever = TimePoint::max();

// A steady clock the test moves by hand; the RTC reads the power-on time at
// kStart.
struct FakeClock {
  static inline TimePoint now;
  static TimePoint Now() { return now; }
  static constexpr TimePoint kStart = TimePoint(seconds(1000));

  FakeClock() { now = kStart; }
};

struct RtcFixture : FakeClock {
  std::vector<bool> irq;  // every level the RTC drove
  std::vector<TimePoint> deadlines;
  CmosRtc rtc{kPowerOnTime, &FakeClock::Now,
              [](void* self, bool level) { static_cast<RtcFixture*>(self)->irq.push_back(level); },
              this};

  RtcFixture() {
    rtc.SetDeadlineListener(
        [](void* self, TimePoint deadline) {
          static_cast<RtcFixture*>(self)->deadlines.push_back(deadline);
        },
        this);
  }

  std::uint8_t Read(std::uint8_t index) {
    rtc.PortWrite(0, 1, index);
    return static_cast<std::uint8_t>(rtc.PortRead(1, 1));
  }
  void Write(std::uint8_t index, std::uint8_t value) {
    rtc.PortWrite(0, 1, index);
    rtc.PortWrite(1, 1, value);
  }
  // Moves the clock to `time` and lets the RTC run there, as the vCPU does
  // when a deadline comes.
  TimePoint AdvanceTo(TimePoint time) {
    now = time;
    return rtc.Advance(time);
  }
};

constexpr std::uint8_t kRegisterA = 0x0A, kRegisterB = 0x0B, kRegisterC = 0x0C;
// Register B: 24-hour BCD with one interrupt enabled.
constexpr std::uint8_t kPeriodic = 0x42, kAlarm = 0x22, kUpdate = 0x12;
// Register C flags.
constexpr std::uint8_t kIrqf = 0x80, kPf = 0x40, kAf = 0x20, kUf = 0x10;
// 1024 Hz: 32 ticks of the 32.768 kHz divider, 976562.5 ns.
constexpr std::uint8_t kRate1024Hz = 0x26;
const nanoseconds k1024HzPeriod(976'563);  // the first whole nanosecond after it

TEST_CASE_FIXTURE(RtcFixture,
                  "the RTC reads the host's UTC time in BCD, 24-hour, with the century") {
  CHECK(Read(0x00) == 0x05);
  CHECK(Read(0x02) == 0x13);
  CHECK(Read(0x04) == 0x08);
  CHECK(Read(0x06) == 0x07);  // Saturday: day 7
  CHECK(Read(0x07) == 0x21);
  CHECK(Read(0x08) == 0x11);
  CHECK(Read(0x09) == 0x26);
  CHECK(Read(0x32) == 0x20);
  CHECK(Read(0x0A) == 0x26);         // UIP clear
  CHECK(Read(0x0D) == 0x80);         // valid RAM and time
  CHECK(Read(0x80 | 0x00) == 0x05);  // the NMI mask bit is not part of the index
  // The clock runs on the steady clock from power-on.
  now += seconds(61);
  CHECK(Read(0x00) == 0x06);
  CHECK(Read(0x02) == 0x14);
}

TEST_CASE_FIXTURE(RtcFixture, "binary and 12-hour modes; CMOS RAM keeps what is written") {
  Write(0x0B, 0x04);  // binary, 12-hour
  CHECK(Read(0x02) == 13);
  CHECK(Read(0x04) == 8);  // 8 AM
  Write(0x40, 0x5A);
  CHECK(Read(0x40) == 0x5A);
  Write(0x0D, 0x00);  // read-only
  CHECK(Read(0x0D) == 0x80);
}

TEST_CASE_FIXTURE(RtcFixture, "the guest sets the time with SET, and the clock runs on from it") {
  Write(0x0B, 0x82);  // SET, 24-hour, BCD
  Write(0x04, 0x23);
  Write(0x02, 0x59);
  Write(0x00, 0x50);
  CHECK(Read(0x04) == 0x23);  // held while SET
  Write(0x0B, 0x02);
  CHECK(Read(0x04) == 0x23);
  now += seconds(15);
  CHECK(Read(0x00) == 0x05);  // 23:59:50 + 15 s
  CHECK(Read(0x04) == 0x00);
  CHECK(Read(0x07) == 0x22);  // the next day
}

TEST_CASE_FIXTURE(RtcFixture, "RTC periodic interrupt: PF every period, IRQ8 while PIE and PF") {
  // Nothing enabled: no deadline, and flags still come with time.
  CHECK(rtc.Advance(now) == kNever);
  now += k1024HzPeriod;
  CHECK(Read(kRegisterC) == kPf);
  CHECK(Read(kRegisterC) == 0);  // cleared by the read
  CHECK(irq.empty());

  Write(kRegisterB, kPeriodic);
  REQUIRE(deadlines.size() == 1);
  const TimePoint first = kStart + 2 * k1024HzPeriod - nanoseconds(1);  // 1953125 ns in
  CHECK(deadlines.back() == first);
  CHECK(AdvanceTo(first - nanoseconds(1)) == first);
  CHECK(irq.empty());
  // At the deadline: PF, IRQF, the line up, and no deadline until C is read.
  CHECK(AdvanceTo(first) == kNever);
  CHECK(irq == std::vector<bool>{true});
  now += milliseconds(10);  // more periods pass unread: still one edge
  CHECK(rtc.Advance(now) == kNever);
  CHECK(irq == std::vector<bool>{true});
  CHECK(Read(kRegisterC) == (kIrqf | kPf));
  CHECK(irq == std::vector<bool>{true, false});
  // Reading C reports the next period boundary.
  CHECK(deadlines.back() > now);
  CHECK(deadlines.back() - now <= k1024HzPeriod);
}

TEST_CASE_FIXTURE(RtcFixture, "RTC periodic rates: 2 Hz, and rate 0 turns PF off") {
  Write(kRegisterA, 0x2F);  // rate 15: 500 ms
  Write(kRegisterB, kPeriodic);
  CHECK(deadlines.back() == kStart + milliseconds(500));
  Write(kRegisterA, 0x23);  // rate 3: 8192 Hz, 4 ticks
  CHECK(deadlines.back() == kStart + nanoseconds(122'071));
  Write(kRegisterA, 0x20);
  CHECK(deadlines.back() == kNever);
  now += seconds(1);
  CHECK((Read(kRegisterC) & kPf) == 0);
}

TEST_CASE_FIXTURE(RtcFixture, "enabling PIE with PF already set raises IRQ8 at once") {
  now += milliseconds(5);
  Write(kRegisterB, kPeriodic);
  CHECK(irq == std::vector<bool>{true});
  Write(kRegisterB, 0x02);  // IRQF follows the enables
  CHECK(irq == std::vector<bool>{true, false});
  CHECK(Read(kRegisterC) == kPf);
}

TEST_CASE_FIXTURE(RtcFixture, "RTC update-ended interrupt once per second") {
  Write(kRegisterA, 0x20);  // no periodic flags in the way
  Write(kRegisterB, kUpdate);
  CHECK(deadlines.back() == kStart + seconds(1));
  CHECK(AdvanceTo(kStart + milliseconds(999)) == kStart + seconds(1));
  CHECK(AdvanceTo(kStart + seconds(1)) == kNever);
  CHECK(irq == std::vector<bool>{true});
  CHECK(Read(0x00) == 0x06);  // the time registers moved with it
  CHECK(Read(kRegisterC) == (kIrqf | kUf));
  CHECK(deadlines.back() == kStart + seconds(2));
  CHECK(irq == std::vector<bool>{true, false});
}

TEST_CASE_FIXTURE(RtcFixture, "SET stops update cycles and clears UIE") {
  Write(kRegisterA, 0x20);
  Write(kRegisterB, kUpdate | 0x80);
  CHECK(Read(kRegisterB) == 0x82);
  CHECK(deadlines.empty());
  now += seconds(3);
  CHECK(Read(kRegisterC) == 0);
  Write(kRegisterB, 0x02);
  now += seconds(1);
  CHECK(Read(kRegisterC) == kUf);
}

TEST_CASE_FIXTURE(RtcFixture, "RTC alarm: AF when the time matches, 0xC0-0xFF match anything") {
  Write(kRegisterA, 0x20);
  Write(0x01, 0x08);  // 08:13:08: three seconds after power-on
  Write(0x03, 0x13);
  Write(0x05, 0x08);
  Write(kRegisterB, kAlarm);
  CHECK(deadlines.back() == kStart + seconds(1));
  AdvanceTo(kStart + seconds(1));
  CHECK(irq.empty());
  CHECK(Read(kRegisterC) == kUf);
  AdvanceTo(kStart + seconds(2));
  CHECK(irq.empty());
  CHECK(AdvanceTo(kStart + seconds(3)) == kNever);
  CHECK(irq == std::vector<bool>{true});
  CHECK(Read(kRegisterC) == (kIrqf | kAf | kUf));
  // Any hour, any minute, at 30 seconds.
  Write(0x01, 0x30);
  Write(0x03, 0xC0);
  Write(0x05, 0xFF);
  AdvanceTo(kStart + seconds(24));
  CHECK(Read(kRegisterC) == kUf);
  AdvanceTo(kStart + seconds(25));
  CHECK(Read(kRegisterC) == (kIrqf | kAf | kUf));
}

TEST_CASE_FIXTURE(RtcFixture, "after a long pause each flag is set once") {
  Write(0x01, 0xC0);
  Write(0x03, 0xC0);
  Write(0x05, 0xC0);
  now += std::chrono::hours(24 * 10);
  CHECK(Read(kRegisterC) == (kPf | kAf | kUf));
  CHECK(Read(kRegisterC) == 0);
  CHECK(irq.empty());
}

}  // namespace
}  // namespace bt::devices
