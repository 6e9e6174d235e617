#include "devices/pit_8254.h"

#include "devices/pic_8259.h"

#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <vector>

namespace bt::devices {
namespace {

using TimePoint = Pit8254::TimePoint;
using std::chrono::nanoseconds;

constexpr std::uint16_t kCounter0 = 0, kCounter2 = 2, kControl = 3;
constexpr TimePoint kNever = TimePoint::max();

// A steady_clock the test moves by hand. Constructed before the PIT, which
// reads it once to fix tick 0.
struct FakeClock {
  static inline TimePoint now;
  static TimePoint Now() { return now; }
  static constexpr TimePoint kStart = TimePoint(std::chrono::seconds(1000));

  FakeClock() { now = kStart; }

  // When PIT clock tick `tick` starts: the first nanosecond at or after
  // tick / 1,193,182 s.
  static TimePoint TickTime(std::int64_t tick) {
    return kStart + nanoseconds((tick * 1'000'000'000 + Pit8254::kClockHz - 1) / Pit8254::kClockHz);
  }
  static void At(std::int64_t tick) { now = TickTime(tick); }
};

struct PitFixture : FakeClock {
  std::vector<bool> out0;  // every level the PIT reported on OUT0
  std::vector<TimePoint> deadlines;
  Pit8254 pit{
      &FakeClock::Now,
      [](void* context, bool level) { static_cast<PitFixture*>(context)->out0.push_back(level); },
      this};

  PitFixture() {
    pit.SetDeadlineListener(
        [](void* context, TimePoint deadline) {
          static_cast<PitFixture*>(context)->deadlines.push_back(deadline);
        },
        this);
  }

  void Write(std::uint16_t port, std::uint8_t value) { pit.PortWrite(port, 1, value); }
  std::uint8_t Read(std::uint16_t port) { return static_cast<std::uint8_t>(pit.PortRead(port, 1)); }
  void WriteCount(std::uint16_t port, std::uint32_t count) {
    Write(port, count & 0xFF);
    Write(port, (count >> 8) & 0xFF);
  }
  std::uint16_t ReadCount(std::uint16_t port) {
    const std::uint8_t low = Read(port);
    return static_cast<std::uint16_t>(low | Read(port) << 8);
  }
  std::uint8_t Port61() { return static_cast<std::uint8_t>(pit.port61().PortRead(0, 1)); }
  void SetPort61(std::uint8_t value) { pit.port61().PortWrite(0, 1, value); }
  TimePoint AdvanceTo(std::int64_t tick) {
    At(tick);
    return pit.Advance(now);
  }
};

TEST_CASE_FIXTURE(PitFixture, "PIT does not count before it is programmed") {
  CHECK(pit.Advance(now) == kNever);
  CHECK(AdvanceTo(1'000'000) == kNever);
  CHECK(out0.empty());
  CHECK((Port61() & 0x20) == 0);
}

TEST_CASE_FIXTURE(PitFixture, "PIT mode 2 raises IRQ0 once per period") {
  // Linux's pit_set_periodic(): counter 0, LSB then MSB, mode 2, HZ=1000.
  Write(kControl, 0x34);
  WriteCount(kCounter0, 1193);
  CHECK(out0 == std::vector<bool>{true});  // OUT goes high on the control word
  // Loaded on the next clock, then 1193 clocks to each rise.
  REQUIRE(deadlines.size() == 1);
  CHECK(deadlines[0] == TickTime(1 + 1193));
  CHECK(pit.Advance(now) == TickTime(1194));

  // OUT is low for the one clock at count 1, then rises as the count reloads.
  CHECK(pit.Advance(TickTime(1193) - nanoseconds(1)) == TickTime(1194));
  CHECK(out0.size() == 1);
  CHECK(pit.Advance(TickTime(1194) - nanoseconds(1)) == TickTime(1194));
  CHECK(out0 == std::vector<bool>{true, false});
  CHECK(AdvanceTo(1194) == TickTime(1194 + 1193));
  CHECK(out0 == std::vector<bool>{true, false, true});
  CHECK(AdvanceTo(1194 + 1193) == TickTime(1194 + 2 * 1193));
  CHECK(out0.size() == 5);
  CHECK(out0.back());

  // A guest that was not run for 100 periods gets one edge, not 100.
  const std::int64_t later = 1194 + 101 * 1193 + 7;
  CHECK(AdvanceTo(later) == TickTime(1194 + 102 * 1193));
  CHECK(out0.size() == 7);
  CHECK(out0.back());
}

TEST_CASE_FIXTURE(PitFixture, "PIT counter reads decrease and the latch holds its value") {
  Write(kControl, 0x34);
  WriteCount(kCounter0, 1000);
  At(1);
  CHECK(ReadCount(kCounter0) == 1000);
  At(101);
  CHECK(ReadCount(kCounter0) == 900);
  At(999);
  CHECK(ReadCount(kCounter0) == 2);
  At(1000);
  CHECK(ReadCount(kCounter0) == 1);
  At(1001);
  CHECK(ReadCount(kCounter0) == 1000);  // reloaded
  At(1301);
  Write(kControl, 0x00);  // counter latch command for counter 0
  At(1501);
  CHECK(Read(kCounter0) == (700 & 0xFF));
  At(1601);
  Write(kControl, 0x00);  // ignored: the latch is half read
  CHECK(Read(kCounter0) == (700 >> 8));
  CHECK(ReadCount(kCounter0) == 400);  // live again
}

TEST_CASE_FIXTURE(PitFixture, "PIT mode 0 raises OUT once at terminal count") {
  Write(kControl, 0x30);
  WriteCount(kCounter0, 1000);
  CHECK(out0.empty());  // OUT low, as at power-on
  CHECK(pit.Advance(now) == TickTime(1001));
  CHECK(AdvanceTo(1000) == TickTime(1001));
  CHECK(out0.empty());
  CHECK(AdvanceTo(1001) == kNever);
  CHECK(out0 == std::vector<bool>{true});
  // The counter wraps and keeps counting; OUT stays high.
  At(1011);
  CHECK(ReadCount(kCounter0) == 0xFFF6);
  CHECK(AdvanceTo(1001 + 70000) == kNever);
  CHECK(out0 == std::vector<bool>{true});
  // A new control word sets OUT low again.
  Write(kControl, 0x30);
  CHECK(out0 == std::vector<bool>{true, false});
}

TEST_CASE_FIXTURE(PitFixture, "PIT mode 0 two-byte write stops counting at the first byte") {
  Write(kControl, 0x30);
  WriteCount(kCounter0, 1000);
  At(500);
  Write(kCounter0, 0x10);
  At(5000);
  CHECK(pit.Advance(now) == kNever);
  CHECK(out0.empty());
  Write(kCounter0, 0x00);  // count 0x0010
  CHECK(pit.Advance(now) == TickTime(5000 + 1 + 16));
}

TEST_CASE_FIXTURE(PitFixture, "PIT mode 3 square wave has the programmed period") {
  Write(kControl, 0x36);
  WriteCount(kCounter0, 1000);
  CHECK(out0 == std::vector<bool>{true});
  CHECK(pit.Advance(now) == TickTime(1001));
  At(250);
  CHECK(ReadCount(kCounter0) == 1000 - 2 * 249);  // counts down by two
  CHECK(AdvanceTo(500) == TickTime(1001));
  CHECK(out0 == std::vector<bool>{true});
  CHECK(AdvanceTo(501) == TickTime(1001));  // low half
  CHECK(out0 == std::vector<bool>{true, false});
  CHECK(AdvanceTo(1001) == TickTime(2001));
  CHECK(out0 == std::vector<bool>{true, false, true});

  // An odd count is high one clock longer than low.
  Write(kControl, 0x36);
  WriteCount(kCounter0, 1001);
  const std::int64_t load = 1002;
  CHECK(AdvanceTo(load + 500) == TickTime(load + 1001));
  CHECK(out0.back());
  CHECK(AdvanceTo(load + 501) == TickTime(load + 1001));
  CHECK_FALSE(out0.back());
}

TEST_CASE_FIXTURE(PitFixture, "PIT takes a new mode 2 count at the next reload") {
  Write(kControl, 0x34);
  WriteCount(kCounter0, 1000);
  At(500);
  WriteCount(kCounter0, 300);
  Write(kControl, 0xE2);                 // read-back: status of counter 0
  CHECK((Read(kCounter0) & 0x40) != 0);  // null count until the reload
  CHECK(pit.Advance(now) == TickTime(1001));
  CHECK(AdvanceTo(1001) == TickTime(1301));
  Write(kControl, 0xE2);
  CHECK((Read(kCounter0) & 0x40) == 0);
  CHECK(AdvanceTo(1301) == TickTime(1601));
}

TEST_CASE_FIXTURE(PitFixture, "PIT takes a new mode 3 count at the end of the half-cycle") {
  Write(kControl, 0x36);
  WriteCount(kCounter0, 1000);  // high over ticks 1-500, low over 501-1000
  At(200);
  WriteCount(kCounter0, 400);
  // The high half ends at 501; the new count goes on with its low half.
  CHECK(pit.Advance(now) == TickTime(701));
  CHECK(AdvanceTo(501) == TickTime(701));
  CHECK(out0 == std::vector<bool>{true, false});
  CHECK(AdvanceTo(701) == TickTime(1101));
  CHECK(out0 == std::vector<bool>{true, false, true});
  // Written in a low half, the count starts with the next high half.
  At(1000);
  WriteCount(kCounter0, 1000);
  CHECK(pit.Advance(now) == TickTime(1101));
  CHECK(AdvanceTo(1101) == TickTime(2101));
}

TEST_CASE_FIXTURE(PitFixture, "PIT mode 1 one-shot is triggered by counter 2's gate") {
  Write(kControl, 0xB2);
  WriteCount(kCounter2, 100);
  At(50);
  CHECK((Port61() & 0x20) == 0x20);  // OUT high, waiting for a trigger
  SetPort61(0x01);
  At(51);
  CHECK((Port61() & 0x20) == 0);
  At(150);
  CHECK(ReadCount(kCounter2) == 1);
  CHECK((Port61() & 0x20) == 0);
  At(151);
  CHECK((Port61() & 0x20) == 0x20);
  // Retriggering restarts the count.
  SetPort61(0x00);
  SetPort61(0x01);
  At(152);
  CHECK((Port61() & 0x20) == 0);
  CHECK(ReadCount(kCounter2) == 100);
}

TEST_CASE_FIXTURE(PitFixture, "PIT access modes: LSB only, MSB only, LSB then MSB") {
  Write(kControl, 0x14);  // LSB only, mode 2
  Write(kCounter0, 0x50);
  CHECK(pit.Advance(now) == TickTime(1 + 0x50));
  At(1 + 0x10);
  CHECK(Read(kCounter0) == 0x40);
  CHECK(Read(kCounter0) == 0x40);

  Write(kControl, 0x24);  // MSB only
  Write(kCounter0, 0x12);
  const std::int64_t load = 1 + 0x10 + 1;
  CHECK(pit.Advance(now) == TickTime(load + 0x1200));
  At(load + 0x100);
  CHECK(Read(kCounter0) == 0x11);
  Write(kControl, 0x00);
  CHECK(Read(kCounter0) == 0x11);  // the latch gives one byte

  Write(kControl, 0x34);  // LSB then MSB, with separate read and write pointers
  Write(kCounter0, 0x34);
  At(load + 0x200);
  CHECK(Read(kCounter0) == 0x00);  // the counter is stopped: shows the old count
  Write(kCounter0, 0x12);
  At(load + 0x200 + 1 + 0x34);
  // Reads and writes have separate byte pointers: this read is an MSB.
  CHECK(Read(kCounter0) == 0x12);
  CHECK(ReadCount(kCounter0) == 0x1234 - 0x34);
}

TEST_CASE_FIXTURE(PitFixture, "PIT count 0 means 65536") {
  Write(kControl, 0x34);
  WriteCount(kCounter0, 0);
  CHECK(pit.Advance(now) == TickTime(1 + 65536));
  At(1);
  CHECK(ReadCount(kCounter0) == 0);
  At(2);
  CHECK(ReadCount(kCounter0) == 0xFFFF);
}

TEST_CASE_FIXTURE(PitFixture, "PIT read-back latches status and count") {
  Write(kControl, 0x34);
  WriteCount(kCounter0, 1000);
  // Status: OUT high, null count (the count loads on the next clock), LSB
  // then MSB, mode 2, binary.
  Write(kControl, 0xE2);
  CHECK(Read(kCounter0) == 0xF4);
  At(1);
  Write(kControl, 0xE2);
  CHECK(Read(kCounter0) == 0xB4);
  // Status and count of counters 0 and 2 at once: status first, then count.
  Write(kControl, 0xB6);  // counter 2: LSB then MSB, mode 3, binary
  At(100);
  Write(kControl, 0xC0 | 0x08 | 0x02);
  At(200);
  CHECK(Read(kCounter0) == 0xB4);
  CHECK(ReadCount(kCounter0) == 901);
  CHECK(Read(kCounter2) == 0xF6);  // OUT high, null count, mode 3
  CHECK(ReadCount(kCounter2) == 0);
  // Modes 6 and 7 are 2 and 3 but read back as written; BCD reads back.
  Write(kControl, 0x3D);
  Write(kControl, 0xE2);
  CHECK(Read(kCounter0) == 0xFD);
}

TEST_CASE_FIXTURE(PitFixture, "PIT counter 2 gate and OUT through port 0x61 (pit_calibrate_tsc)") {
  // arch/x86/kernel/tsc.c pit_calibrate_tsc(): gate high, speaker off,
  // counter 2 mode 0 with a 50 ms count, then poll bit 5 of port 0x61.
  SetPort61(static_cast<std::uint8_t>((Port61() & ~0x02) | 0x01));
  Write(kControl, 0xB0);
  constexpr std::int64_t kLatch = Pit8254::kClockHz / 20;  // 59659
  WriteCount(kCounter2, kLatch);
  CHECK((Port61() & 0x01) == 0x01);
  CHECK((Port61() & 0x20) == 0);
  now = TickTime(1 + kLatch) - nanoseconds(1);
  CHECK((Port61() & 0x20) == 0);
  now = TickTime(1 + kLatch);
  CHECK((Port61() & 0x20) == 0x20);
  CHECK((Port61() & 0x20) == 0x20);
  // 50 ms after the write, to the nanosecond rounding.
  CHECK(now - kStart == nanoseconds(50'000'755));
  // Counter 2 is not IRQ0.
  CHECK(out0.empty());
  CHECK(deadlines.empty());
  // Bit 4 toggles on each read; bits 1-3 are stored.
  SetPort61(0x0E);
  const std::uint8_t first = Port61();
  CHECK((first & 0x0F) == 0x0E);
  CHECK(((Port61() ^ first) & 0x10) == 0x10);
}

TEST_CASE_FIXTURE(PitFixture, "PIT counter 2 counts down as quick_pit_calibrate reads it") {
  SetPort61(0x01);
  Write(kControl, 0xB0);
  Write(kCounter2, 0xFF);
  Write(kCounter2, 0xFF);
  // pit_verify_msb(): read LSB, then compare the MSB.
  for (int i = 0; i < 200; ++i) {
    At(1 + 256 * i + 128);
    Read(kCounter2);
    CHECK(Read(kCounter2) == 0xFF - i);
  }
}

TEST_CASE_FIXTURE(PitFixture, "PIT gate low stops counter 2") {
  Write(kControl, 0xB0);  // mode 0 with the gate low: loaded, not counting
  WriteCount(kCounter2, 100);
  At(1000);
  CHECK(ReadCount(kCounter2) == 100);
  SetPort61(0x01);
  At(1050);
  CHECK(ReadCount(kCounter2) == 50);
  SetPort61(0x00);
  At(5000);
  CHECK(ReadCount(kCounter2) == 50);
  CHECK((Port61() & 0x20) == 0);
  SetPort61(0x01);
  At(5050);
  CHECK((Port61() & 0x20) == 0x20);

  // Mode 2: gate low forces OUT high; rising restarts the count.
  Write(kControl, 0xB4);
  WriteCount(kCounter2, 10);
  At(5060);
  CHECK((Port61() & 0x20) == 0);  // count reached 1: OUT low
  SetPort61(0x00);
  CHECK((Port61() & 0x20) == 0x20);
  SetPort61(0x01);
  At(5061);
  CHECK(ReadCount(kCounter2) == 10);
}

TEST_CASE_FIXTURE(PitFixture, "PIT mode 4 strobes once (Linux one-shot)") {
  Write(kControl, 0x38);
  WriteCount(kCounter0, 500);
  CHECK(out0 == std::vector<bool>{true});
  CHECK(pit.Advance(now) == TickTime(502));
  CHECK(AdvanceTo(501) == TickTime(502));
  CHECK(out0 == std::vector<bool>{true, false});
  CHECK(AdvanceTo(502) == kNever);
  CHECK(out0 == std::vector<bool>{true, false, true});
  // Writing a new count retriggers.
  WriteCount(kCounter0, 10);
  CHECK(deadlines.back() == TickTime(502 + 12));
}

TEST_CASE_FIXTURE(PitFixture, "PIT drives IRQ0 of the PIC") {
  Pic8259Pair pic;
  Pit8254 timer(
      &FakeClock::Now,
      [](void* context, bool level) { static_cast<Pic8259Pair*>(context)->SetIrq(0, level); },
      &pic);
  pic.master_ports().PortWrite(0, 1, 0x11);
  pic.master_ports().PortWrite(1, 1, 0x20);
  pic.master_ports().PortWrite(1, 1, 0x04);
  pic.master_ports().PortWrite(1, 1, 0x01);
  timer.PortWrite(kControl, 1, 0x34);
  timer.PortWrite(kCounter0, 1, 100);
  timer.PortWrite(kCounter0, 1, 0);
  // The control word raised OUT0 from its power-on low: one edge now.
  CHECK(pic.Acknowledge() == 0x20);
  pic.master_ports().PortWrite(0, 1, 0x20);
  CHECK_FALSE(pic.InterruptPending());
  now = TickTime(50);
  timer.Advance(now);
  CHECK_FALSE(pic.InterruptPending());
  now = TickTime(101);
  timer.Advance(now);
  CHECK(pic.InterruptPending());
  CHECK(pic.Acknowledge() == 0x20);
  // Not acknowledged by EOI: the next tick waits behind the one in service.
  now = TickTime(201);
  timer.Advance(now);
  CHECK_FALSE(pic.InterruptPending());
  pic.master_ports().PortWrite(0, 1, 0x20);
  CHECK(pic.InterruptPending());
}

}  // namespace
}  // namespace bt::devices
