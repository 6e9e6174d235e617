#include "devices/reset_register.h"

#include <utility>

namespace bt::devices {

ResetRegister::ResetRegister(Bits bits, SystemReset reset)
    : bits_(bits), reset_(std::move(reset)), value_(bits.power_on) {}

std::uint32_t ResetRegister::PortRead(std::uint16_t, unsigned) { return value_; }

void ResetRegister::PortWrite(std::uint16_t, unsigned, std::uint32_t value) {
  value_ = static_cast<std::uint8_t>(value) & bits_.stored;
  if ((value & bits_.reset) && reset_) reset_();
}

}  // namespace bt::devices
