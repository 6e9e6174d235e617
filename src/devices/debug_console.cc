#include "devices/debug_console.h"

namespace bt::devices {

std::uint32_t DebugConsole::PortRead(std::uint16_t /*offset*/, unsigned /*size*/) {
  return kSignature;
}

void DebugConsole::PortWrite(std::uint16_t /*offset*/, unsigned /*size*/, std::uint32_t value) {
  const char character = static_cast<char>(value);
  if (output_) output_(std::string_view(&character, 1));
}

}  // namespace bt::devices
