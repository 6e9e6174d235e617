// A PS/2 mouse that never moves: what stands behind the keyboard controller's
// auxiliary port.
//
// A mouse rather than an empty port, because an empty port is the case
// drivers handle worst: the controller has to report a timeout for every
// byte sent to it, and Linux's psmouse probes (and PC firmware) wait for
// answers that never come. A standard mouse answers every probe at once and
// is what QEMU's PC has there, so a guest sees the same machine under both.
//
// Emulated: reset (0xFF: ACK, self-test passed 0xAA, ID 0x00), identify
// (0xF2: ACK, 0x00 - a standard mouse, no wheel), set sample rate and
// resolution (0xF3, 0xE8: ACK, then ACK for the argument), scaling 1:1 and
// 2:1, stream and remote mode, enable and disable reporting, set defaults
// (0xE6, 0xE7, 0xEA, 0xF0, 0xF4, 0xF5, 0xF6: ACK) and status request (0xE9:
// ACK, then the mode byte, the resolution and the sample rate). Anything
// else is answered with 0xFE (resend).
//
// Left out, because the host's mouse is not connected: movement and buttons,
// so no data packets are ever sent (stream mode sends none, and read data,
// 0xEB, is not answered), and the wrap (echo) mode.
#pragma once

#include "devices/ps2_device.h"

#include <cstdint>

namespace bt::devices {

class Ps2Mouse final : public Ps2Device {
 public:
  // A command, or the argument of the one before.
  void Receive(std::uint8_t byte);

 private:
  // The settings a reset and set defaults restore.
  void SetDefaults();

  // 0xF3 or 0xE8 while it waits for its argument, else 0.
  std::uint8_t awaiting_argument_ = 0;
  std::uint8_t sample_rate_ = 100;  // reports per second
  std::uint8_t resolution_ = 2;     // 4 counts per millimetre
  bool scaling_2to1_ = false;
  bool reporting_ = false;
  bool remote_mode_ = false;
};

}  // namespace bt::devices
