#include "devices/ps2_keyboard.h"

namespace bt::devices {
namespace {

constexpr std::uint8_t kSetLeds = 0xED;
constexpr std::uint8_t kEcho = 0xEE;
constexpr std::uint8_t kIdentify = 0xF2;
constexpr std::uint8_t kSetTypematicRate = 0xF3;
constexpr std::uint8_t kEnableScanning = 0xF4;
constexpr std::uint8_t kDisableScanning = 0xF5;
constexpr std::uint8_t kSetDefaults = 0xF6;
constexpr std::uint8_t kReset = 0xFF;
// An MF2 keyboard's ID.
constexpr std::uint8_t kIdFirst = 0xAB, kIdSecond = 0x83;

}  // namespace

void Ps2Keyboard::Receive(std::uint8_t byte) {
  if (awaiting_argument_) {
    awaiting_argument_ = false;
    Send({kAcknowledge});
    return;
  }
  switch (byte) {
    case kSetLeds:
    case kSetTypematicRate:
      awaiting_argument_ = true;
      Send({kAcknowledge});
      return;
    case kEcho: Send({kEcho}); return;
    case kIdentify: Send({kAcknowledge, kIdFirst, kIdSecond}); return;
    case kEnableScanning:
    case kDisableScanning:
    case kSetDefaults: Send({kAcknowledge}); return;
    case kReset:
      DiscardOutput();
      Send({kAcknowledge, kSelfTestPassed});
      return;
    default: Send({kResend}); return;
  }
}

}  // namespace bt::devices
