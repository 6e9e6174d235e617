#include "devices/cmos_rtc.h"

#include <doctest/doctest.h>

#include <ctime>

namespace bt::devices {
namespace {

// 2026-11-21 08:13:05 UTC, a Saturday.
std::chrono::system_clock::time_point g_now = std::chrono::system_clock::from_time_t(1795248785);

std::uint8_t Read(CmosRtc& rtc, std::uint8_t index) {
  rtc.PortWrite(0, 1, index);
  return static_cast<std::uint8_t>(rtc.PortRead(1, 1));
}

void Write(CmosRtc& rtc, std::uint8_t index, std::uint8_t value) {
  rtc.PortWrite(0, 1, index);
  rtc.PortWrite(1, 1, value);
}

TEST_CASE("the RTC reads the host's UTC time in BCD, 24-hour, with the century") {
  CmosRtc rtc([] { return g_now; });
  CHECK(Read(rtc, 0x00) == 0x05);
  CHECK(Read(rtc, 0x02) == 0x13);
  CHECK(Read(rtc, 0x04) == 0x08);
  CHECK(Read(rtc, 0x06) == 0x07);  // Saturday: day 7
  CHECK(Read(rtc, 0x07) == 0x21);
  CHECK(Read(rtc, 0x08) == 0x11);
  CHECK(Read(rtc, 0x09) == 0x26);
  CHECK(Read(rtc, 0x32) == 0x20);
  CHECK(Read(rtc, 0x0A) == 0x26);         // UIP clear
  CHECK(Read(rtc, 0x0D) == 0x80);         // valid RAM and time
  CHECK(Read(rtc, 0x80 | 0x00) == 0x05);  // the NMI mask bit is not part of the index
}

TEST_CASE("binary and 12-hour modes; CMOS RAM keeps what is written") {
  CmosRtc rtc([] { return g_now; });
  Write(rtc, 0x0B, 0x04);  // binary, 12-hour
  CHECK(Read(rtc, 0x02) == 13);
  CHECK(Read(rtc, 0x04) == 8);  // 8 AM
  Write(rtc, 0x40, 0x5A);
  CHECK(Read(rtc, 0x40) == 0x5A);
  Write(rtc, 0x0D, 0x00);  // read-only
  CHECK(Read(rtc, 0x0D) == 0x80);
}

TEST_CASE("the guest sets the time with SET, and the clock runs on from it") {
  CmosRtc rtc([] { return g_now; });
  Write(rtc, 0x0B, 0x82);  // SET, 24-hour, BCD
  Write(rtc, 0x04, 0x23);
  Write(rtc, 0x02, 0x59);
  Write(rtc, 0x00, 0x50);
  CHECK(Read(rtc, 0x04) == 0x23);  // held while SET
  Write(rtc, 0x0B, 0x02);
  CHECK(Read(rtc, 0x04) == 0x23);
  g_now += std::chrono::seconds(15);
  CHECK(Read(rtc, 0x00) == 0x05);  // 23:59:50 + 15 s
  CHECK(Read(rtc, 0x04) == 0x00);
  CHECK(Read(rtc, 0x07) == 0x22);  // the next day
  g_now -= std::chrono::seconds(15);
}

}  // namespace
}  // namespace bt::devices
