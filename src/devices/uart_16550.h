// A 16550A UART (National Semiconductor PC16550D datasheet register set).
//
// Emulated: every register, the 16-byte receive FIFO with its trigger levels
// (one byte of holding register with the FIFOs off), overrun, the four
// interrupt sources in their priority order (receiver line status, received
// data available or character timeout, THR empty, modem status) on one
// output line, MCR.OUT2 gating that line as the PC's interrupt buffer does,
// and loopback (THR to the receiver, MCR outputs to the MSR inputs, with
// the delta bits). Linux's 8250 driver and an interactive shell need all of
// that; nothing else is modelled.
//
// Simplified, because no time passes on the line here:
// - The line is infinitely fast: a byte written to THR is sent at once, so
//   the transmitter is always empty and the THRE interrupt comes back right
//   after each THR write. Baud rate, word length and parity are stored for
//   the guest to read back but change nothing.
// - The character timeout (four character times without receiving or
//   reading) has always passed: data below the trigger level is reported as
//   a timeout at once.
// - Host input waits in a queue outside the chip until the receiver has
//   room and the guest asserts RTS, as a terminal honouring hardware flow
//   control would. Bytes typed before the guest's driver is ready are not
//   lost to its FIFO resets, and pasted text never overruns.
// - No parity, framing or break errors: the host line never has them.
//
// Threading: Receive may be called on any thread; everything else on the
// thread that runs the guest, which picks queued input up in ServiceInput.
#pragma once

#include <bt/port_device.h>

#include <array>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>

namespace bt::devices {

class Uart16550 final : public PortDevice {
 public:
  // Receives every byte the guest transmits, as it is written.
  using OutputSink = std::function<void(std::string_view)>;
  // Receives the interrupt output's level (the machine wires it to IRQ4).
  // Called from port accesses and ServiceInput; must not call back into the
  // UART. May be null: the interrupt then goes nowhere.
  using IrqListener = void (*)(void* context, bool level);
  // Told, on the thread that called Receive, that ServiceInput has work.
  using InputListener = void (*)(void* context);

  explicit Uart16550(OutputSink output, IrqListener irq = nullptr, void* irq_context = nullptr)
      : output_(std::move(output)), irq_(irq), irq_context_(irq_context) {}

  std::uint32_t PortRead(std::uint16_t offset, unsigned size) override;
  void PortWrite(std::uint16_t offset, unsigned size, std::uint32_t value) override;

  // Thread-safe: bytes arriving on the line from the host.
  void Receive(std::string_view bytes);
  // Moves queued host input into the receiver as far as it has room.
  void ServiceInput();
  void SetInputListener(InputListener listener, void* context) {
    input_listener_ = listener;
    input_context_ = context;
  }

 private:
  static constexpr unsigned kFifoBytes = 16;

  bool DivisorLatchAccess() const;
  bool Loopback() const;
  // The modem status inputs (MSR bits 4-7).
  std::uint8_t ModemInputs() const;
  unsigned ReceiveCapacity() const;
  unsigned TriggerLevel() const;
  // A byte reaching the receiver from the line or the loopback.
  void PushReceived(std::uint8_t byte);
  std::uint8_t ReadReceived();
  void ResetReceiver();
  void WriteModemControl(std::uint8_t value);
  // The IIR value: the highest-priority pending source, FIFO bits included.
  std::uint8_t InterruptIdentity() const;
  // Drives the output line after any change of state.
  void UpdateIrq();

  OutputSink output_;
  IrqListener irq_;
  void* irq_context_;
  InputListener input_listener_ = nullptr;
  void* input_context_ = nullptr;

  std::uint16_t divisor_ = 0;
  std::uint8_t interrupt_enable_ = 0;
  std::uint8_t line_control_ = 0;
  std::uint8_t modem_control_ = 0;
  std::uint8_t scratch_ = 0;
  std::uint8_t fifo_control_ = 0;  // the enable and trigger bits as written
  std::uint8_t line_errors_ = 0;   // LSR bits 1-4, cleared by reading LSR
  std::uint8_t modem_deltas_ = 0;  // MSR bits 0-3, cleared by reading MSR
  bool thre_pending_ = false;
  bool irq_level_ = false;
  std::array<std::uint8_t, kFifoBytes> fifo_{};
  unsigned fifo_head_ = 0;
  unsigned fifo_count_ = 0;

  std::mutex input_mutex_;
  std::string input_;  // host bytes not yet in the receiver (under input_mutex_)
};

}  // namespace bt::devices
