#include "devices/pit_8254.h"

#include <algorithm>

namespace bt::devices {
namespace {

// Control word: SC1 SC0 RW1 RW0 M2 M1 M0 BCD (datasheet, "Control Word
// Format"). SC = 3 is the read-back command, RW = 0 the counter latch.
constexpr unsigned kReadBack = 3;
constexpr std::uint8_t kAccessLsb = 1;
constexpr std::uint8_t kAccessMsb = 2;
constexpr std::uint8_t kAccessWord = 3;
// Read-back: 1 1 /COUNT /STATUS CNT2 CNT1 CNT0 0.
constexpr std::uint8_t kReadBackNoCount = 0x20;
constexpr std::uint8_t kReadBackNoStatus = 0x10;
// Status byte: OUT, NULL COUNT, then the control word's low six bits.
constexpr std::uint8_t kStatusOut = 0x80;
constexpr std::uint8_t kStatusNullCount = 0x40;
constexpr std::uint8_t kControlBits = 0x3F;

constexpr unsigned kControlPort = 3;
// Port 0x61: the bits a write stores, gate 2 among them; the read-only
// refresh toggle and counter 2's OUT.
constexpr std::uint8_t kPort61Writable = 0x0F;
constexpr std::uint8_t kPort61Gate2 = 0x01;
constexpr std::uint8_t kPort61Refresh = 0x10;
constexpr std::uint8_t kPort61Out2 = 0x20;

bool Periodic(unsigned mode) { return mode == 2 || mode == 3; }

// A running counter, `elapsed` ticks after it was loaded with `n` (which is
// -1 on the tick the count is written, before the load; datasheet, "Counter
// operation": a count is loaded on the next CLK pulse).
bool OutAt(unsigned mode, std::uint32_t n, std::int64_t elapsed) {
  if (elapsed < 0) return mode != 0;
  switch (mode) {
    case 0:  // high from terminal count until reprogrammed
    case 1: return elapsed >= n;
    case 2: return elapsed % n != n - 1;       // low for the one clock at count 1
    case 3: return elapsed % n < (n + 1) / 2;  // high for the longer half
    default: return elapsed != n;              // modes 4, 5: one-clock strobe
  }
}

std::uint16_t ValueAt(unsigned mode, std::uint32_t n, std::int64_t elapsed) {
  if (elapsed < 0) return static_cast<std::uint16_t>(n);
  switch (mode) {
    case 2: return static_cast<std::uint16_t>(n - elapsed % n);
    case 3: {
      // Decrements by two, reloading at each half-cycle.
      const std::int64_t into_period = elapsed % n;
      const std::int64_t high = (n + 1) / 2;
      const std::int64_t into_half = into_period < high ? into_period : into_period - high;
      return static_cast<std::uint16_t>((n & ~1u) - 2 * into_half);
    }
    // Modes 0, 1, 4, 5 wrap past zero and keep counting.
    default: return static_cast<std::uint16_t>(n - elapsed);
  }
}

std::int64_t NextRiseAt(unsigned mode, std::uint32_t n, std::int64_t load_tick, std::int64_t tick,
                        std::int64_t never) {
  const std::int64_t elapsed = tick - load_tick;
  switch (mode) {
    case 0:
    case 1: return elapsed < n ? load_tick + n : never;
    case 2:
    case 3: return load_tick + (elapsed < 0 ? 1 : elapsed / n + 1) * n;
    default: return elapsed <= n ? load_tick + n + 1 : never;
  }
}

}  // namespace

bool Pit8254::Counter::Out(std::int64_t tick) const {
  switch (phase) {
    case Phase::kIdle: return idle_out;
    case Phase::kPaused: return OutAt(mode, initial, paused_elapsed);
    case Phase::kRunning: break;
  }
  return OutAt(mode, initial, tick - load_tick);
}

std::uint16_t Pit8254::Counter::Value(std::int64_t tick) const {
  switch (phase) {
    case Phase::kIdle: return idle_value;
    case Phase::kPaused: return ValueAt(mode, initial, paused_elapsed);
    case Phase::kRunning: break;
  }
  return ValueAt(mode, initial, tick - load_tick);
}

std::uint8_t Pit8254::Counter::Status(std::int64_t tick) const {
  std::uint8_t status = control & kControlBits;
  if (Out(tick)) status |= kStatusOut;
  if (tick < cr_load_tick) status |= kStatusNullCount;
  return status;
}

std::int64_t Pit8254::Counter::NextRise(std::int64_t tick) const {
  if (phase != Phase::kRunning) return kNever;
  const std::int64_t rise = NextRiseAt(mode, initial, load_tick, tick, kNever);
  // A pending count starts at a reload (mode 2), where the old count's OUT
  // rises anyway, or at the end of a half-cycle (mode 3).
  if (!pending || rise <= switch_tick) return rise;
  return NextRiseAt(mode, pending_initial, pending_load_tick, switch_tick, kNever);
}

void Pit8254::Counter::Sync(std::int64_t tick) {
  if (!pending || tick < switch_tick) return;
  initial = pending_initial;
  load_tick = pending_load_tick;
  pending = false;
}

void Pit8254::Counter::Stop(std::int64_t tick, bool out) {
  idle_value = Value(tick);
  idle_out = out;
  phase = Phase::kIdle;
  pending = false;
}

void Pit8254::Counter::Load(std::int64_t tick, std::uint32_t count) {
  initial = Periodic(mode) ? std::max<std::uint32_t>(count, 2) : count;
  load_tick = tick;
  phase = Phase::kRunning;
  pending = false;
  cr_load_tick = tick;
}

// Writing a control word resets the counter's control logic and sets OUT to
// its initial level (low in mode 0, high otherwise); nothing counts until a
// count is written. Modes 6 and 7 are modes 2 and 3.
void Pit8254::Counter::WriteControl(std::uint8_t value, std::int64_t tick) {
  Stop(tick, false);  // freezes the count the old mode shows
  control = value & kControlBits;
  mode = (value >> 1) & 7;
  if (mode > 5) mode -= 4;
  access = (value >> 4) & 3;
  idle_out = mode != 0;
  count_written = false;
  write_msb_next = false;
  read_msb_next = false;
  count_latched = false;
  status_latched = false;
  cr_load_tick = kNever;
}

void Pit8254::Counter::WriteData(std::uint8_t byte, std::int64_t tick) {
  std::uint32_t count;
  switch (access) {
    case kAccessLsb: count = byte; break;
    case kAccessMsb: count = static_cast<std::uint32_t>(byte) << 8; break;
    default:
      if (!write_msb_next) {
        write_lsb = byte;
        write_msb_next = true;
        // Mode 0: the first byte of a two-byte count stops the counter and
        // sets OUT low at once.
        if (mode == 0) Stop(tick, false);
        return;
      }
      write_msb_next = false;
      count = write_lsb | static_cast<std::uint32_t>(byte) << 8;
      break;
  }
  NewCount(count == 0 ? 0x10000 : count, tick);
}

void Pit8254::Counter::NewCount(std::uint32_t count, std::int64_t tick) {
  count_register = count;
  count_written = true;
  switch (mode) {
    case 0:
    case 4:
      // Loaded on the next clock even with the gate low, which only stops
      // the counting.
      Load(tick + 1, count);
      if (!gate) {
        paused_elapsed = 0;  // loaded, and counting from when the gate rises
        phase = Phase::kPaused;
      }
      return;
    case 1:
    case 5: cr_load_tick = kNever; return;  // loaded by the next gate trigger
    default: break;
  }
  if (phase != Phase::kRunning || tick < load_tick) {
    if (gate) {
      Load(tick + 1, count);
    } else {
      cr_load_tick = kNever;  // loaded when the gate rises
    }
    return;
  }
  // Modes 2 and 3 finish the current cycle (mode 2) or half-cycle (mode 3)
  // with the old count.
  const std::uint32_t next = std::max<std::uint32_t>(count, 2);
  const std::int64_t elapsed = tick - load_tick;
  const std::int64_t period_start = tick - elapsed % initial;
  if (mode == 2) {
    switch_tick = period_start + initial;
    pending_load_tick = switch_tick;
  } else if (elapsed % initial < (initial + 1) / 2) {
    // Ends the high half; the new count starts with its low half.
    switch_tick = period_start + (initial + 1) / 2;
    pending_load_tick = switch_tick - (next + 1) / 2;
  } else {
    switch_tick = period_start + initial;
    pending_load_tick = switch_tick;
  }
  pending = true;
  pending_initial = next;
  cr_load_tick = switch_tick;
}

std::uint8_t Pit8254::Counter::ReadData(std::int64_t tick) {
  if (status_latched) {
    status_latched = false;
    return latched_status;
  }
  const bool latched = count_latched;
  const std::uint16_t value = latched ? latched_count : Value(tick);
  const auto low = static_cast<std::uint8_t>(value);
  const auto high = static_cast<std::uint8_t>(value >> 8);
  if (access == kAccessWord) {
    // Least significant byte first, with its own pointer for the latch.
    bool& msb_next = latched ? latch_msb_next : read_msb_next;
    msb_next = !msb_next;
    if (msb_next) return low;
    count_latched = false;
    return high;
  }
  count_latched = false;
  return access == kAccessMsb ? high : low;
}

// A second latch before the first is read is ignored (datasheet, "Counter
// Latch Command" and "Read-Back Command").
void Pit8254::Counter::LatchCount(std::int64_t tick) {
  if (count_latched) return;
  count_latched = true;
  latch_msb_next = false;
  latched_count = Value(tick);
}

void Pit8254::Counter::LatchStatus(std::int64_t tick) {
  if (status_latched) return;
  status_latched = true;
  latched_status = Status(tick);
}

void Pit8254::Counter::SetGate(bool level, std::int64_t tick) {
  if (level == gate) return;
  gate = level;
  switch (mode) {
    case 0:
    case 4:  // the gate enables counting
      if (!level && phase == Phase::kRunning) {
        paused_elapsed = tick - load_tick;
        phase = Phase::kPaused;
      } else if (level && phase == Phase::kPaused) {
        load_tick = tick - paused_elapsed;
        phase = Phase::kRunning;
      }
      return;
    case 1:
    case 5:  // a rising edge (re)triggers
      if (level && count_written) Load(tick + 1, count_register);
      return;
    default:  // modes 2, 3: low stops counting with OUT high, rising reloads
      if (!level) {
        Stop(tick, true);
      } else if (count_written) {
        Load(tick + 1, count_register);
      }
      return;
  }
}

Pit8254::Pit8254(Now now, OutputListener out0, void* out0_context)
    : now_(now), out0_(out0), out0_context_(out0_context), epoch_(now()) {
  // Counter 2's gate comes from port 0x61 bit 0, clear at power-on.
  counters_[2].gate = false;
}

// Tick k starts at the first nanosecond at or after k / kClockHz seconds.
std::int64_t Pit8254::TickAt(TimePoint time) const {
  const std::int64_t ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(time - epoch_).count();
  if (ns <= 0) return 0;
  return TickAtNanosecond(ns, kClockHz);
}

Pit8254::TimePoint Pit8254::TimeOfTick(std::int64_t tick) const {
  if (tick == kNever) return TimePoint::max();
  return epoch_ + std::chrono::duration_cast<TimePoint::duration>(
                      std::chrono::nanoseconds(NanosecondOfTick(tick, kClockHz)));
}

void Pit8254::SetOut0(bool level) {
  out0_level_ = level;
  if (out0_ != nullptr) out0_(out0_context_, level);
}

void Pit8254::DriveOut0(bool rose) {
  if (rose) {
    if (out0_level_) SetOut0(false);
    SetOut0(true);
  }
  const bool level = counters_[0].Out(synced_tick_);
  if (level != out0_level_) SetOut0(level);
}

void Pit8254::CatchUp(std::int64_t tick) {
  tick = std::max(tick, synced_tick_);
  const bool rose = counters_[0].NextRise(synced_tick_) <= tick;
  for (Counter& counter : counters_) counter.Sync(tick);
  synced_tick_ = tick;
  DriveOut0(rose);
}

Pit8254::TimePoint Pit8254::Advance(TimePoint now) {
  CatchUp(TickAt(now));
  deadline_tick_ = counters_[0].NextRise(synced_tick_);
  return TimeOfTick(deadline_tick_);
}

void Pit8254::ReportDeadline() {
  const std::int64_t next = counters_[0].NextRise(synced_tick_);
  if (next == deadline_tick_) return;
  deadline_tick_ = next;
  MoveDeadline(TimeOfTick(next));
}

void Pit8254::WriteControlWord(std::uint8_t value) {
  const unsigned select = value >> 6;
  if (select == kReadBack) {
    for (unsigned i = 0; i < counters_.size(); ++i) {
      if ((value & (2u << i)) == 0) continue;
      if ((value & kReadBackNoCount) == 0) counters_[i].LatchCount(synced_tick_);
      if ((value & kReadBackNoStatus) == 0) counters_[i].LatchStatus(synced_tick_);
    }
  } else if ((value & 0x30) == 0) {
    counters_[select].LatchCount(synced_tick_);
  } else {
    counters_[select].WriteControl(value, synced_tick_);
  }
}

// The ports are one byte wide; a wider access touches the following ports
// one byte at a time, as on the ISA bus. Bytes past the range float high.
std::uint32_t Pit8254::PortRead(std::uint16_t offset, unsigned size) {
  CatchUp(TickAt(now_()));
  std::uint32_t value = 0;
  for (unsigned i = 0; i < size; ++i) {
    const unsigned port = offset + i;
    // The control word register cannot be read; the bus floats.
    const std::uint32_t byte = port < kControlPort ? counters_[port].ReadData(synced_tick_) : 0xFF;
    value |= byte << (8 * i);
  }
  return value;
}

void Pit8254::PortWrite(std::uint16_t offset, unsigned size, std::uint32_t value) {
  CatchUp(TickAt(now_()));
  for (unsigned i = 0; i < size; ++i) {
    const unsigned port = offset + i;
    const auto byte = static_cast<std::uint8_t>(value >> (8 * i));
    if (port < kControlPort) {
      counters_[port].WriteData(byte, synced_tick_);
    } else if (port == kControlPort) {
      WriteControlWord(byte);
    }
  }
  DriveOut0(false);
  ReportDeadline();
}

std::uint32_t Pit8254::SystemControlPort::PortRead(std::uint16_t offset, unsigned size) {
  pit_.CatchUp(pit_.TickAt(pit_.now_()));
  std::uint32_t value = 0;
  for (unsigned i = 0; i < size; ++i) {
    std::uint32_t byte = 0xFF;
    if (offset + i == 0) {
      byte = pit_.port61_bits_;
      if (pit_.refresh_toggle_) byte |= kPort61Refresh;
      if (pit_.counters_[2].Out(pit_.synced_tick_)) byte |= kPort61Out2;
      pit_.refresh_toggle_ = !pit_.refresh_toggle_;
    }
    value |= byte << (8 * i);
  }
  return value;
}

void Pit8254::SystemControlPort::PortWrite(std::uint16_t offset, unsigned /*size*/,
                                           std::uint32_t value) {
  if (offset != 0) return;
  pit_.CatchUp(pit_.TickAt(pit_.now_()));
  pit_.port61_bits_ = value & kPort61Writable;
  pit_.counters_[2].SetGate((value & kPort61Gate2) != 0, pit_.synced_tick_);
}

}  // namespace bt::devices
