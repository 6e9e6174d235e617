#include "devices/debug_exit.h"

namespace bt::devices {

// The port bus truncates this to the access size.
std::uint32_t DebugExit::PortRead(std::uint16_t /*offset*/, unsigned /*size*/) {
  return 0xFFFFFFFFu;
}

void DebugExit::PortWrite(std::uint16_t /*offset*/, unsigned /*size*/, std::uint32_t value) {
  if (trigger_) trigger_(value);
}

}  // namespace bt::devices
