// How a device resets the PC (the keyboard controller, system control port A,
// the PIIX reset control register): it calls the SystemReset it was given,
// and the machine decides what a reset is. libbt has no firmware to start
// over from, so the run stops.
#pragma once

#include <functional>

namespace bt::devices {

using SystemReset = std::function<void()>;

}  // namespace bt::devices
