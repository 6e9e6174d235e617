// What the keyboard controller sees of a device on one of its PS/2 ports: the
// bytes the device has queued to send back. Ps2Keyboard and Ps2Mouse add
// Receive, for the bytes the controller sends them.
//
// A device answers at once here: there is no serial line to clock bits over,
// so a reply is queued in the same call that took the command, and the
// controller moves it into its output buffer as soon as that is empty.
#pragma once

#include "devices/bounded_queue.h"

#include <cstdint>
#include <initializer_list>

namespace bt::devices {

class Ps2Device {
 public:
  bool HasOutput() const { return !output_.empty(); }
  // The oldest byte not sent yet; only when HasOutput().
  std::uint8_t TakeOutput() { return output_.Pop(); }

  // Replies every PS/2 device uses.
  static constexpr std::uint8_t kAcknowledge = 0xFA;
  static constexpr std::uint8_t kResend = 0xFE;  // the command was not understood
  static constexpr std::uint8_t kSelfTestPassed = 0xAA;

 protected:
  void Send(std::initializer_list<std::uint8_t> bytes) {
    for (std::uint8_t byte : bytes) output_.Push(byte);
  }
  // A reset drops what was not sent yet.
  void DiscardOutput() { output_.Clear(); }

 private:
  // Both devices buffer 16 bytes.
  BoundedQueue<std::uint8_t, 16> output_;
};

}  // namespace bt::devices
