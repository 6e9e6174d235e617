#include "devices/cmos_rtc.h"

#include <algorithm>
#include <ctime>

namespace bt::devices {
namespace {

constexpr std::uint8_t kIndexMask = 0x7F;  // bit 7 of the index masks NMI
// Register A: 32.768 kHz time base, 1024 Hz periodic rate (the power-on
// values PC firmware leaves). Register B: 24-hour mode, BCD.
constexpr std::uint8_t kRegisterAReset = 0x26, kRegisterBReset = 0x02;
constexpr std::uint8_t kRegisterAWritable = 0x7F;  // UIP is read-only
constexpr std::uint8_t kRateSelect = 0x0F;
// Register B.
constexpr std::uint8_t kSet = 0x80, kBinary = 0x04, k24Hour = 0x02;
constexpr std::uint8_t kUpdateEnable = 0x10;
// Register C; its flags sit at the same bits as their enables in Register B.
constexpr std::uint8_t kIrqFlag = 0x80, kPeriodicFlag = 0x40, kAlarmFlag = 0x20, kUpdateFlag = 0x10;
constexpr std::uint8_t kInterruptFlags = kPeriodicFlag | kAlarmFlag | kUpdateFlag;
constexpr std::uint8_t kPm = 0x80;        // in the hours register, 12-hour mode
constexpr std::uint8_t kValidRam = 0x80;  // Register D: the battery is fine
constexpr std::uint8_t kAlarmAny = 0xC0;  // alarm values 0xC0-0xFF match any value

constexpr std::int64_t kDividerHz = 32768;
// Any alarm that can match at all matches within a day.
constexpr std::int64_t kSecondsPerDay = 86400;

std::int64_t FloorDiv(std::int64_t value, std::int64_t divisor) {
  return value / divisor - (value % divisor < 0 ? 1 : 0);
}

std::tm Broken(std::int64_t seconds) {
  const std::time_t t = static_cast<std::time_t>(seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  return tm;
}

}  // namespace

CmosRtc::CmosRtc(std::chrono::system_clock::time_point power_on_time, Now now, IrqListener irq,
                 void* irq_context)
    : now_(now),
      irq_(irq),
      irq_context_(irq_context),
      epoch_(now()),
      power_on_ns_(
          std::chrono::duration_cast<std::chrono::nanoseconds>(power_on_time.time_since_epoch())
              .count()),
      synced_(epoch_) {
  ram_[kRegisterA] = kRegisterAReset;
  ram_[kRegisterB] = kRegisterBReset;
  ram_[kRegisterD] = kValidRam;
}

std::int64_t CmosRtc::GuestNanoseconds(TimePoint time) const {
  return power_on_ns_ +
         std::chrono::duration_cast<std::chrono::nanoseconds>(time - epoch_).count() +
         offset_seconds_ * kNanosPerSecond;
}

CmosRtc::TimePoint CmosRtc::TimeOfGuest(std::int64_t guest_ns) const {
  return epoch_ + std::chrono::duration_cast<TimePoint::duration>(std::chrono::nanoseconds(
                      guest_ns - power_on_ns_ - offset_seconds_ * kNanosPerSecond));
}

std::uint8_t CmosRtc::Encode(unsigned value) const {
  if (ram_[kRegisterB] & kBinary) return static_cast<std::uint8_t>(value);
  return static_cast<std::uint8_t>((value / 10) << 4 | value % 10);
}

unsigned CmosRtc::Decode(std::uint8_t value) const {
  if (ram_[kRegisterB] & kBinary) return value;
  return (value >> 4) * 10 + (value & 0xF);
}

std::uint8_t CmosRtc::TimeRegister(std::uint8_t index, std::int64_t seconds) const {
  const std::tm tm = Broken(seconds);
  switch (index) {
    case kSeconds: return Encode(static_cast<unsigned>(tm.tm_sec));
    case kMinutes: return Encode(static_cast<unsigned>(tm.tm_min));
    case kHours: {
      const auto hour = static_cast<unsigned>(tm.tm_hour);
      if (ram_[kRegisterB] & k24Hour) return Encode(hour);
      const unsigned twelve = hour % 12 == 0 ? 12 : hour % 12;
      return static_cast<std::uint8_t>(Encode(twelve) | (hour >= 12 ? kPm : 0));
    }
    case kDayOfWeek: return Encode(static_cast<unsigned>(tm.tm_wday) + 1);
    case kDayOfMonth: return Encode(static_cast<unsigned>(tm.tm_mday));
    case kMonth: return Encode(static_cast<unsigned>(tm.tm_mon) + 1);
    case kYear: return Encode(static_cast<unsigned>(tm.tm_year) % 100);
    case kCentury: return Encode(static_cast<unsigned>(tm.tm_year + 1900) / 100);
    default: return ram_[index];
  }
}

std::int64_t CmosRtc::PeriodTicks() const {
  const unsigned rate = ram_[kRegisterA] & kRateSelect;
  if (rate == 0) return 0;
  // Rates 1 and 2 repeat rates 8 and 9 (256 and 128 Hz); 3-15 run from
  // 8192 Hz down to 2 Hz.
  return std::int64_t{1} << (rate <= 2 ? rate + 6 : rate - 1);
}

bool CmosRtc::AlarmMatches(std::int64_t seconds) const {
  for (auto [time, alarm] : {std::pair{kSeconds, kSecondsAlarm}, std::pair{kMinutes, kMinutesAlarm},
                             std::pair{kHours, kHoursAlarm}}) {
    const std::uint8_t wanted = ram_[alarm];
    if ((wanted & kAlarmAny) != kAlarmAny && wanted != TimeRegister(time, seconds)) return false;
  }
  return true;
}

void CmosRtc::CatchUp(TimePoint now) {
  if (now <= synced_) return;
  const std::int64_t from = GuestNanoseconds(synced_), to = GuestNanoseconds(now);
  std::uint8_t flags = 0;
  if (const std::int64_t period = PeriodTicks();
      period != 0 && FloorDiv(TickAtNanosecond(to, kDividerHz), period) >
                         FloorDiv(TickAtNanosecond(from, kDividerHz), period)) {
    flags |= kPeriodicFlag;
  }
  // SET holds the clock: no update cycles, so no update or alarm flags.
  if (!(ram_[kRegisterB] & kSet)) {
    const std::int64_t first = FloorDiv(from, kNanosPerSecond) + 1;
    const std::int64_t last = FloorDiv(to, kNanosPerSecond);
    if (last >= first) flags |= kUpdateFlag;
    for (std::int64_t second = std::max(first, last - kSecondsPerDay + 1); second <= last;
         ++second) {
      if (AlarmMatches(second)) {
        flags |= kAlarmFlag;
        break;
      }
    }
  }
  synced_ = now;
  ram_[kRegisterC] |= flags;
  UpdateIrq();
}

void CmosRtc::UpdateIrq() {
  const bool irq = ram_[kRegisterC] & ram_[kRegisterB] & kInterruptFlags;
  ram_[kRegisterC] = irq ? ram_[kRegisterC] | kIrqFlag : ram_[kRegisterC] & ~kIrqFlag;
  if (irq == irq_level_) return;
  irq_level_ = irq;
  if (irq_ != nullptr) irq_(irq_context_, irq);
}

CmosRtc::TimePoint CmosRtc::NextDeadline() const {
  if (ram_[kRegisterC] & kIrqFlag) return TimePoint::max();
  const std::uint8_t enabled = ram_[kRegisterB] & kInterruptFlags;
  const std::int64_t now = GuestNanoseconds(synced_);
  TimePoint next = TimePoint::max();
  if (const std::int64_t period = PeriodTicks(); period != 0 && (enabled & kPeriodicFlag)) {
    const std::int64_t tick = (FloorDiv(TickAtNanosecond(now, kDividerHz), period) + 1) * period;
    next = TimeOfGuest(NanosecondOfTick(tick, kDividerHz));
  }
  if (!(ram_[kRegisterB] & kSet) && (enabled & (kUpdateFlag | kAlarmFlag))) {
    next = std::min(next, TimeOfGuest((FloorDiv(now, kNanosPerSecond) + 1) * kNanosPerSecond));
  }
  return next;
}

CmosRtc::TimePoint CmosRtc::Advance(TimePoint now) {
  CatchUp(now);
  deadline_ = NextDeadline();
  return deadline_;
}

void CmosRtc::ReportDeadline() {
  const TimePoint next = NextDeadline();
  if (next == deadline_) return;
  deadline_ = next;
  MoveDeadline(next);
}

std::uint32_t CmosRtc::PortRead(std::uint16_t offset, unsigned) {
  if (offset == 0) return 0xFF;  // the index port is write-only
  CatchUp(now_());
  return ReadRegister(index_);
}

void CmosRtc::PortWrite(std::uint16_t offset, unsigned, std::uint32_t value) {
  if (offset == 0) {
    index_ = static_cast<std::uint8_t>(value) & kIndexMask;
    return;
  }
  CatchUp(now_());
  WriteRegister(index_, static_cast<std::uint8_t>(value));
}

// The time registers read the clock at synced_, which port accesses bring up
// to now first.
std::uint8_t CmosRtc::ReadRegister(std::uint8_t index) {
  if (index <= kYear || index == kCentury) {
    // While SET holds the clock, the time registers read what the guest wrote.
    if ((ram_[kRegisterB] & kSet) || index == kSecondsAlarm || index == kMinutesAlarm ||
        index == kHoursAlarm) {
      return ram_[index];
    }
    return TimeRegister(index, FloorDiv(GuestNanoseconds(synced_), kNanosPerSecond));
  }
  if (index == kRegisterC) {
    const std::uint8_t flags = ram_[kRegisterC];
    ram_[kRegisterC] = 0;  // reading clears the flags
    UpdateIrq();
    ReportDeadline();
    return flags;
  }
  return ram_[index];
}

void CmosRtc::WriteRegister(std::uint8_t index, std::uint8_t value) {
  switch (index) {
    case kRegisterA:
      ram_[index] = value & kRegisterAWritable;
      ReportDeadline();
      return;
    case kRegisterC:
    case kRegisterD: return;  // read-only
    case kRegisterB: {
      const bool was_set = ram_[kRegisterB] & kSet;
      if (!was_set && (value & kSet)) {
        // Freeze the registers at the current time for the guest to edit.
        ram_[kRegisterB] = value & ~kSet;
        for (std::uint8_t time :
             {kSeconds, kMinutes, kHours, kDayOfWeek, kDayOfMonth, kMonth, kYear, kCentury}) {
          ram_[time] = ReadRegister(time);
        }
      }
      // Setting SET clears UIE (datasheet, Register B).
      if (value & kSet) value &= ~kUpdateEnable;
      ram_[kRegisterB] = value;
      if (was_set && !(value & kSet)) {
        // The clock runs on from what the guest wrote, in the same phase
        // within the second as before.
        std::tm tm{};
        tm.tm_sec = static_cast<int>(Decode(ram_[kSeconds]));
        tm.tm_min = static_cast<int>(Decode(ram_[kMinutes]));
        const std::uint8_t hours = ram_[kHours];
        unsigned hour = Decode(hours & ~kPm);
        if (!(value & k24Hour)) hour = hour % 12 + ((hours & kPm) ? 12 : 0);
        tm.tm_hour = static_cast<int>(hour);
        tm.tm_mday = static_cast<int>(Decode(ram_[kDayOfMonth]));
        tm.tm_mon = static_cast<int>(Decode(ram_[kMonth])) - 1;
        tm.tm_year = static_cast<int>(Decode(ram_[kCentury]) * 100 + Decode(ram_[kYear])) - 1900;
        offset_seconds_ += static_cast<std::int64_t>(timegm(&tm)) -
                           FloorDiv(GuestNanoseconds(synced_), kNanosPerSecond);
      }
      // Enabling an interrupt whose flag is already set raises IRQF at once.
      UpdateIrq();
      ReportDeadline();
      return;
    }
    default: ram_[index] = value; return;
  }
}

}  // namespace bt::devices
