#include "devices/ps2_mouse.h"

namespace bt::devices {
namespace {

constexpr std::uint8_t kSetScaling1To1 = 0xE6;
constexpr std::uint8_t kSetScaling2To1 = 0xE7;
constexpr std::uint8_t kSetResolution = 0xE8;
constexpr std::uint8_t kStatusRequest = 0xE9;
constexpr std::uint8_t kSetStreamMode = 0xEA;
constexpr std::uint8_t kSetRemoteMode = 0xF0;
constexpr std::uint8_t kIdentify = 0xF2;
constexpr std::uint8_t kSetSampleRate = 0xF3;
constexpr std::uint8_t kEnableReporting = 0xF4;
constexpr std::uint8_t kDisableReporting = 0xF5;
constexpr std::uint8_t kSetDefaults = 0xF6;
constexpr std::uint8_t kReset = 0xFF;
constexpr std::uint8_t kStandardMouseId = 0x00;
// The first status byte (no buttons are ever down).
constexpr std::uint8_t kStatusRemoteMode = 0x40;
constexpr std::uint8_t kStatusReporting = 0x20;
constexpr std::uint8_t kStatusScaling2To1 = 0x10;

}  // namespace

void Ps2Mouse::SetDefaults() {
  sample_rate_ = 100;
  resolution_ = 2;
  scaling_2to1_ = false;
  reporting_ = false;
  remote_mode_ = false;
}

void Ps2Mouse::Receive(std::uint8_t byte) {
  if (awaiting_argument_ != 0) {
    (awaiting_argument_ == kSetSampleRate ? sample_rate_ : resolution_) = byte;
    awaiting_argument_ = 0;
    Send({kAcknowledge});
    return;
  }
  switch (byte) {
    case kSetResolution:
    case kSetSampleRate:
      awaiting_argument_ = byte;
      Send({kAcknowledge});
      return;
    case kSetScaling1To1:
    case kSetScaling2To1: scaling_2to1_ = byte == kSetScaling2To1; break;
    case kStatusRequest: {
      const auto mode = static_cast<std::uint8_t>((remote_mode_ ? kStatusRemoteMode : 0) |
                                                  (reporting_ ? kStatusReporting : 0) |
                                                  (scaling_2to1_ ? kStatusScaling2To1 : 0));
      Send({kAcknowledge, mode, resolution_, sample_rate_});
      return;
    }
    case kSetStreamMode:
    case kSetRemoteMode: remote_mode_ = byte == kSetRemoteMode; break;
    case kIdentify: Send({kAcknowledge, kStandardMouseId}); return;
    case kEnableReporting:
    case kDisableReporting: reporting_ = byte == kEnableReporting; break;
    case kSetDefaults: SetDefaults(); break;
    case kReset:
      SetDefaults();
      DiscardOutput();
      Send({kAcknowledge, kSelfTestPassed, kStandardMouseId});
      return;
    default: Send({kResend}); return;
  }
  Send({kAcknowledge});
}

}  // namespace bt::devices
