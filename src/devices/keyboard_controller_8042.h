// The PC's keyboard controller (Intel 8042 and its PS/2 successors, as PC
// chipsets still model it), with a keyboard on its first port and a mouse on
// its auxiliary port: data port 0x60, status (read) and command (write) port
// 0x64. Linux's i8042 and atkbd drivers probe it at boot, and reboot through
// it.
//
// Emulated:
// - The status register: output buffer full, with which port the byte came
//   from (AUXB); the system flag (the command byte's bit 2, which firmware
//   sets after POST); A2 (whether the last write went to the command port);
//   the keyboard not inhibited (no keylock).
// - The command byte (0x20 read, 0x60 write): the keyboard and aux interrupt
//   enables, the system flag, the two interface disable bits and
//   translation.
// - The controller commands: self test (0xAA: 0x55), the interface tests
//   (0xAB, 0xA9: 0x00, no fault), disable and enable the keyboard and aux
//   interfaces (0xAD, 0xAE, 0xA7, 0xA8), read the input port (0xC0), read
//   and write the output port (0xD0, 0xD1), write the output buffer as if
//   from the keyboard or the aux device (0xD2, 0xD3: the aux loopback Linux
//   tests IRQ12 with), send the next byte to the aux device (0xD4), and
//   pulse output port bits (0xF0-0xFF). Other commands are ignored.
// - One output buffer byte, refilled from the controller's own replies
//   first, then from the keyboard and the mouse while their interfaces are
//   enabled; IRQ1 while it holds a keyboard-side byte and IRQ12 while it
//   holds an aux byte, when the command byte enables them. Reading port 0x60
//   with the buffer empty returns the last byte again.
// - Reset: the output port's bit 0 driven low (a 0xD1 write with bit 0
//   clear, or a pulse of it, 0xFE) resets the machine.
//
// Simplified:
// - The controller takes every byte at once, so the input buffer is always
//   empty (IBF reads 0) and no timeout or parity error ever happens.
// - Translation to scan code set 1 (command byte bit 6) applies to the
//   keyboard's bytes, which are only command replies here (no keys are ever
//   pressed): they all translate to themselves except the second ID byte,
//   0x83, which becomes 0x41.
// - Sending a byte to a device enables its interface again, as QEMU's
//   controller does and drivers expect.
// - The A20 bit of the output port is stored and read back only: libbt has
//   no A20 gate, addresses never wrap at 1 MiB.
// - The controller RAM beyond the command byte (0x21-0x3F, 0x61-0x7F),
//   passwords and the vendor commands are not there.
//
// Not thread-safe: every call comes from the thread that runs the guest.
#pragma once

#include "devices/bounded_queue.h"
#include "devices/port_facet.h"
#include "devices/ps2_keyboard.h"
#include "devices/ps2_mouse.h"
#include "devices/system_reset.h"

#include <bt/port_device.h>

#include <cstdint>

namespace bt::devices {

class KeyboardController8042 {
 public:
  // Receives the level of an interrupt output (the machine wires the
  // keyboard's to IRQ1 and the aux device's to IRQ12). Called from port
  // accesses; must not call back into the controller. May be null.
  using IrqListener = void (*)(void* context, bool level);

  KeyboardController8042(IrqListener keyboard_irq, IrqListener aux_irq, void* irq_context,
                         SystemReset reset);
  KeyboardController8042(const KeyboardController8042&) = delete;
  KeyboardController8042& operator=(const KeyboardController8042&) = delete;

  // Register each at its own port (layout.h): the data port (0x60) and the
  // status/command port (0x64). Both are one byte wide.
  PortDevice& data_port() { return data_port_; }
  PortDevice& command_port() { return command_port_; }

  // Status register bits.
  static constexpr std::uint8_t kOutputBufferFull = 0x01;
  static constexpr std::uint8_t kInputBufferFull = 0x02;
  static constexpr std::uint8_t kSystemFlag = 0x04;
  static constexpr std::uint8_t kCommandWritten = 0x08;  // A2
  static constexpr std::uint8_t kNotInhibited = 0x10;
  static constexpr std::uint8_t kAuxData = 0x20;  // AUXB
  // Command byte bits.
  static constexpr std::uint8_t kKeyboardInterrupt = 0x01;
  static constexpr std::uint8_t kAuxInterrupt = 0x02;
  static constexpr std::uint8_t kKeyboardDisabled = 0x10;
  static constexpr std::uint8_t kAuxDisabled = 0x20;
  static constexpr std::uint8_t kTranslate = 0x40;

 private:
  // A byte on its way to the output buffer, and which port it counts as.
  struct OutputByte {
    std::uint8_t value = 0;
    bool aux = false;
  };

  // Port 0x60 and port 0x64; both one byte wide.
  std::uint32_t ReadData(std::uint16_t offset, unsigned size);
  void WriteData(std::uint16_t offset, unsigned size, std::uint32_t value);
  std::uint32_t ReadStatus(std::uint16_t offset, unsigned size);
  void WriteCommand(std::uint16_t offset, unsigned size, std::uint32_t value);
  void WriteOutputPort(std::uint8_t value);
  // Queues a controller reply for the output buffer.
  void Reply(std::uint8_t value);
  // Moves the next waiting byte into an empty output buffer, then drives the
  // interrupt lines to match.
  void Refill();
  void UpdateIrqs();

  IrqListener keyboard_irq_;
  IrqListener aux_irq_;
  void* irq_context_;
  SystemReset reset_;
  PortFacet<KeyboardController8042, &KeyboardController8042::ReadData,
            &KeyboardController8042::WriteData>
      data_port_{*this};
  PortFacet<KeyboardController8042, &KeyboardController8042::ReadStatus,
            &KeyboardController8042::WriteCommand>
      command_port_{*this};
  Ps2Keyboard keyboard_;
  Ps2Mouse mouse_;

  std::uint8_t command_byte_;
  std::uint8_t output_port_;
  // A command (0x60, 0xD1-0xD4) whose data byte the next port 0x60 write is,
  // else 0.
  std::uint8_t awaiting_data_ = 0;
  bool command_written_ = true;  // A2: the last write went to port 0x64
  bool output_full_ = false;
  OutputByte output_;
  // Controller replies (and 0xD2/0xD3 bytes) waiting for the output buffer:
  // a guest may issue several commands before it reads.
  BoundedQueue<OutputByte, 16> replies_;
  bool keyboard_irq_level_ = false;
  bool aux_irq_level_ = false;
};

}  // namespace bt::devices
