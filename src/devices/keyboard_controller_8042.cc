#include "devices/keyboard_controller_8042.h"

#include <utility>

namespace bt::devices {
namespace {

// Controller commands (written to port 0x64).
constexpr std::uint8_t kReadCommandByte = 0x20;
constexpr std::uint8_t kWriteCommandByte = 0x60;
constexpr std::uint8_t kDisableAux = 0xA7;
constexpr std::uint8_t kEnableAux = 0xA8;
constexpr std::uint8_t kTestAuxInterface = 0xA9;
constexpr std::uint8_t kSelfTest = 0xAA;
constexpr std::uint8_t kTestKeyboardInterface = 0xAB;
constexpr std::uint8_t kDisableKeyboard = 0xAD;
constexpr std::uint8_t kEnableKeyboard = 0xAE;
constexpr std::uint8_t kReadInputPort = 0xC0;
constexpr std::uint8_t kReadOutputPort = 0xD0;
constexpr std::uint8_t kWriteOutputPort = 0xD1;
constexpr std::uint8_t kWriteKeyboardOutput = 0xD2;
constexpr std::uint8_t kWriteAuxOutput = 0xD3;
constexpr std::uint8_t kWriteToAux = 0xD4;
// 0xF0-0xFF pulse the output port bits 0-3 whose command bits are clear.
constexpr std::uint8_t kPulseOutputPort = 0xF0;

constexpr std::uint8_t kControllerTestPassed = 0x55;
constexpr std::uint8_t kInterfaceOk = 0x00;
// Input port: bit 7 set, the keyboard is not inhibited; the jumpers in the
// other bits read 0, as on QEMU's controller.
constexpr std::uint8_t kInputPort = 0x80;

// Output port bits. Bit 0 low holds the CPU in reset; bits 4 and 5 are the
// IRQ1 and IRQ12 outputs; the others (A20 and the idle clock and data lines
// of both ports) start high.
constexpr std::uint8_t kOutputPortReset = 0x01;
constexpr std::uint8_t kOutputPortKeyboardIrq = 0x10;
constexpr std::uint8_t kOutputPortAuxIrq = 0x20;
constexpr std::uint8_t kOutputPortPowerOn = 0xCF;

// As firmware leaves the command byte after POST: keyboard interrupts and
// translation on, the aux port off, the system flag set.
constexpr std::uint8_t kCommandBytePowerOn =
    KeyboardController8042::kKeyboardInterrupt | KeyboardController8042::kSystemFlag |
    KeyboardController8042::kAuxDisabled | KeyboardController8042::kTranslate;

// Set 2 to set 1 translation of the bytes a keyboard sends without keys:
// replies above 0x80 translate to themselves, except the ID's 0x83.
std::uint8_t TranslateReply(std::uint8_t byte) { return byte == 0x83 ? 0x41 : byte; }

}  // namespace

KeyboardController8042::KeyboardController8042(IrqListener keyboard_irq, IrqListener aux_irq,
                                               void* irq_context, SystemReset reset)
    : keyboard_irq_(keyboard_irq),
      aux_irq_(aux_irq),
      irq_context_(irq_context),
      reset_(std::move(reset)),
      command_byte_(kCommandBytePowerOn),
      output_port_(kOutputPortPowerOn) {}

std::uint32_t KeyboardController8042::ReadStatus(std::uint16_t, unsigned) {
  std::uint8_t status = kNotInhibited | (command_byte_ & kSystemFlag);
  if (command_written_) status |= kCommandWritten;
  if (output_full_) status |= output_.aux ? kOutputBufferFull | kAuxData : kOutputBufferFull;
  return status;
}

std::uint32_t KeyboardController8042::ReadData(std::uint16_t, unsigned) {
  if (!output_full_) return output_.value;
  output_full_ = false;
  // The lines fall before the next byte moves in, so that it raises a new
  // edge at the edge-triggered PIC inputs.
  UpdateIrqs();
  const std::uint8_t value = output_.value;
  Refill();
  return value;
}

void KeyboardController8042::WriteData(std::uint16_t, unsigned, std::uint32_t data) {
  const auto value = static_cast<std::uint8_t>(data);
  command_written_ = false;
  switch (std::exchange(awaiting_data_, 0)) {
    case kWriteCommandByte: command_byte_ = value; break;
    case kWriteOutputPort: WriteOutputPort(value); return;
    case kWriteKeyboardOutput: replies_.Push({value, false}); break;
    case kWriteAuxOutput: replies_.Push({value, true}); break;
    case kWriteToAux:
      command_byte_ &= ~kAuxDisabled;
      mouse_.Receive(value);
      break;
    default:
      command_byte_ &= ~kKeyboardDisabled;
      keyboard_.Receive(value);
      break;
  }
  Refill();
}

void KeyboardController8042::WriteCommand(std::uint16_t, unsigned, std::uint32_t value) {
  const auto command = static_cast<std::uint8_t>(value);
  command_written_ = true;
  awaiting_data_ = 0;
  if ((command & kPulseOutputPort) == kPulseOutputPort) {
    if (!(command & kOutputPortReset) && reset_) reset_();
    return;
  }
  switch (command) {
    case kReadCommandByte: Reply(command_byte_); return;
    case kWriteCommandByte:
    case kWriteOutputPort:
    case kWriteKeyboardOutput:
    case kWriteAuxOutput:
    case kWriteToAux: awaiting_data_ = command; return;
    case kDisableAux: command_byte_ |= kAuxDisabled; return;
    case kEnableAux: command_byte_ &= ~kAuxDisabled; break;
    case kTestAuxInterface:
    case kTestKeyboardInterface: Reply(kInterfaceOk); return;
    case kSelfTest: Reply(kControllerTestPassed); return;
    case kDisableKeyboard: command_byte_ |= kKeyboardDisabled; return;
    case kEnableKeyboard: command_byte_ &= ~kKeyboardDisabled; break;
    case kReadInputPort: Reply(kInputPort); return;
    case kReadOutputPort: {
      std::uint8_t port = output_port_ & ~(kOutputPortKeyboardIrq | kOutputPortAuxIrq);
      if (keyboard_irq_level_) port |= kOutputPortKeyboardIrq;
      if (aux_irq_level_) port |= kOutputPortAuxIrq;
      Reply(port);
      return;
    }
    default: return;
  }
  Refill();
}

void KeyboardController8042::WriteOutputPort(std::uint8_t value) {
  output_port_ = value;
  if (!(value & kOutputPortReset) && reset_) reset_();
}

void KeyboardController8042::Reply(std::uint8_t value) {
  replies_.Push({value, false});
  Refill();
}

void KeyboardController8042::Refill() {
  if (!output_full_) {
    if (!replies_.empty()) {
      output_ = replies_.Pop();
      output_full_ = true;
    } else if (!(command_byte_ & kKeyboardDisabled) && keyboard_.HasOutput()) {
      const std::uint8_t byte = keyboard_.TakeOutput();
      output_ = {(command_byte_ & kTranslate) ? TranslateReply(byte) : byte, false};
      output_full_ = true;
    } else if (!(command_byte_ & kAuxDisabled) && mouse_.HasOutput()) {
      output_ = {mouse_.TakeOutput(), true};
      output_full_ = true;
    }
  }
  UpdateIrqs();
}

void KeyboardController8042::UpdateIrqs() {
  const bool keyboard = output_full_ && !output_.aux && (command_byte_ & kKeyboardInterrupt);
  const bool aux = output_full_ && output_.aux && (command_byte_ & kAuxInterrupt);
  if (keyboard != keyboard_irq_level_) {
    keyboard_irq_level_ = keyboard;
    if (keyboard_irq_) keyboard_irq_(irq_context_, keyboard);
  }
  if (aux != aux_irq_level_) {
    aux_irq_level_ = aux;
    if (aux_irq_) aux_irq_(irq_context_, aux);
  }
}

}  // namespace bt::devices
