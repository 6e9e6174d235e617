// A PS/2 (MF2) keyboard with no keys pressed: what stands behind the keyboard
// controller's first port so that an OS finds a keyboard there.
//
// Emulated: the commands Linux's atkbd driver and PC firmware send, with the
// replies of an MF2 keyboard - reset (0xFF: ACK, then the self-test result
// 0xAA), identify (0xF2: ACK, 0xAB 0x83), enable and disable scanning and
// set defaults (0xF4, 0xF5, 0xF6: ACK), set LEDs and set typematic rate
// (0xED, 0xF3: ACK, then ACK for the argument) and echo (0xEE: 0xEE).
// Anything else is answered with 0xFE (resend), as a keyboard does with a
// command it does not know.
//
// Left out, because the host's keyboard is not connected (the console is
// the serial port): key presses, so no scan codes are ever sent, and with
// them the scan code sets (0xF0) and set 3's per-key modes (0xF7-0xFD); the
// LED and typematic settings are acknowledged and dropped.
#pragma once

#include "devices/ps2_device.h"

#include <cstdint>

namespace bt::devices {

class Ps2Keyboard final : public Ps2Device {
 public:
  // A command, or the argument of the one before.
  void Receive(std::uint8_t byte);

 private:
  // After 0xED or 0xF3: the next byte is their argument.
  bool awaiting_argument_ = false;
};

}  // namespace bt::devices
