#include "devices/cmos_rtc.h"

#include <ctime>

namespace bt::devices {
namespace {

constexpr std::uint8_t kIndexMask = 0x7F;  // bit 7 of the index masks NMI
// Register A: 32.768 kHz time base, 1024 Hz periodic rate (the power-on
// values PC firmware leaves). Register B: 24-hour mode, BCD.
constexpr std::uint8_t kRegisterAReset = 0x26, kRegisterBReset = 0x02;
constexpr std::uint8_t kSet = 0x80, kBinary = 0x04, k24Hour = 0x02;
constexpr std::uint8_t kPm = 0x80;                 // in the hours register, 12-hour mode
constexpr std::uint8_t kValidRam = 0x80;           // Register D: the battery is fine
constexpr std::uint8_t kRegisterAWritable = 0x7F;  // UIP is read-only

std::tm Broken(std::int64_t seconds) {
  const std::time_t t = static_cast<std::time_t>(seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  return tm;
}

}  // namespace

CmosRtc::CmosRtc(Clock clock) : clock_(std::move(clock)) {
  ram_[kRegisterA] = kRegisterAReset;
  ram_[kRegisterB] = kRegisterBReset;
  ram_[kRegisterD] = kValidRam;
}

std::int64_t CmosRtc::GuestSeconds() const {
  const auto host = std::chrono::duration_cast<std::chrono::seconds>(clock_().time_since_epoch());
  return host.count() + offset_seconds_;
}

std::uint8_t CmosRtc::Encode(unsigned value) const {
  if (ram_[kRegisterB] & kBinary) return static_cast<std::uint8_t>(value);
  return static_cast<std::uint8_t>((value / 10) << 4 | value % 10);
}

unsigned CmosRtc::Decode(std::uint8_t value) const {
  if (ram_[kRegisterB] & kBinary) return value;
  return (value >> 4) * 10 + (value & 0xF);
}

std::uint32_t CmosRtc::PortRead(std::uint16_t offset, unsigned) {
  if (offset == 0) return 0xFF;  // the index port is write-only
  return ReadRegister(index_);
}

void CmosRtc::PortWrite(std::uint16_t offset, unsigned, std::uint32_t value) {
  if (offset == 0) {
    index_ = static_cast<std::uint8_t>(value) & kIndexMask;
    return;
  }
  WriteRegister(index_, static_cast<std::uint8_t>(value));
}

std::uint8_t CmosRtc::ReadRegister(std::uint8_t index) {
  // While SET holds the clock, the time registers read what the guest wrote.
  const bool running = !(ram_[kRegisterB] & kSet);
  if (index <= kYear || index == kCentury) {
    if (!running || index == 0x01 || index == 0x03 || index == 0x05) return ram_[index];
    const std::tm tm = Broken(GuestSeconds());
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
      default: break;
    }
  }
  if (index == kRegisterC) {
    const std::uint8_t flags = ram_[kRegisterC];
    ram_[kRegisterC] = 0;  // reading clears the flags
    return flags;
  }
  return ram_[index];
}

void CmosRtc::WriteRegister(std::uint8_t index, std::uint8_t value) {
  switch (index) {
    case kRegisterA: ram_[index] = value & kRegisterAWritable; return;
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
      ram_[kRegisterB] = value;
      if (was_set && !(value & kSet)) {
        // The clock starts again from what the guest wrote.
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
        const auto host =
            std::chrono::duration_cast<std::chrono::seconds>(clock_().time_since_epoch());
        offset_seconds_ = static_cast<std::int64_t>(timegm(&tm)) - host.count();
      }
      return;
    }
    default: ram_[index] = value; return;
  }
}

}  // namespace bt::devices
