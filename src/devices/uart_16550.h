// A 16550A UART (National Semiconductor PC16550D datasheet register set).
//
// Emulated subset: the transmit path and every status and control register,
// so that drivers which probe the chip (Linux's 8250 autoconfig, firmware and
// test guests polling LSR) find a working 16550A with FIFOs. Not emulated yet:
// the receive path (RBR always reads 0, LSR never reports data ready) and
// interrupts (IIR always reads "none pending", no IRQ line); both come with
// the Linux guest, which needs a console it can type into. The line is
// infinitely fast: the transmitter is always empty, and baud rate, word
// length and parity are stored for the guest to read back but change nothing.
#pragma once

#include <bt/port_device.h>

#include <cstdint>
#include <functional>
#include <string_view>
#include <utility>

namespace bt::devices {

class Uart16550 final : public PortDevice {
 public:
  // Receives every byte the guest transmits, as it is written.
  using OutputSink = std::function<void(std::string_view)>;

  explicit Uart16550(OutputSink output) : output_(std::move(output)) {}

  std::uint32_t PortRead(std::uint16_t offset, unsigned size) override;
  void PortWrite(std::uint16_t offset, unsigned size, std::uint32_t value) override;

 private:
  bool DivisorLatchAccess() const;
  std::uint8_t ModemStatus() const;

  OutputSink output_;
  std::uint16_t divisor_ = 0;
  std::uint8_t interrupt_enable_ = 0;
  std::uint8_t line_control_ = 0;
  std::uint8_t modem_control_ = 0;
  std::uint8_t scratch_ = 0;
  bool fifo_enabled_ = false;
};

}  // namespace bt::devices
