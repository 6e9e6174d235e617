#include "devices/keyboard_controller_8042.h"

#include <doctest/doctest.h>

#include <cstdint>
#include <vector>

namespace bt::devices {
namespace {

using Controller = KeyboardController8042;

struct ControllerFixture {
  // Every level change of IRQ1 and IRQ12, in order.
  std::vector<bool> keyboard_irq, aux_irq;
  unsigned resets = 0;
  Controller controller{[](void* self, bool level) {
                          static_cast<ControllerFixture*>(self)->keyboard_irq.push_back(level);
                        },
                        [](void* self, bool level) {
                          static_cast<ControllerFixture*>(self)->aux_irq.push_back(level);
                        },
                        this, [this] { ++resets; }};

  std::uint8_t Status() {
    return static_cast<std::uint8_t>(controller.command_port().PortRead(0, 1));
  }
  std::uint8_t Data() { return static_cast<std::uint8_t>(controller.data_port().PortRead(0, 1)); }
  void Command(std::uint8_t command) { controller.command_port().PortWrite(0, 1, command); }
  void WriteData(std::uint8_t value) { controller.data_port().PortWrite(0, 1, value); }
  // Reads everything in the output buffer, as a polling driver does.
  std::vector<std::uint8_t> Drain() {
    std::vector<std::uint8_t> bytes;
    while (Status() & Controller::kOutputBufferFull) bytes.push_back(Data());
    return bytes;
  }
  std::uint8_t CommandByte() {
    Command(0x20);
    return Data();
  }
  void SetCommandByte(std::uint8_t value) {
    Command(0x60);
    WriteData(value);
  }
  // Sends `byte` to the mouse through the controller.
  void ToAux(std::uint8_t byte) {
    Command(0xD4);
    WriteData(byte);
  }
};

using Bytes = std::vector<std::uint8_t>;

TEST_CASE_FIXTURE(ControllerFixture,
                  "i8042 status at power-on: empty, not inhibited, POST passed") {
  CHECK(Status() ==
        (Controller::kNotInhibited | Controller::kSystemFlag | Controller::kCommandWritten));
  CHECK(CommandByte() == 0x65);  // keyboard interrupt, system flag, aux disabled, translation
  CHECK(resets == 0);
}

TEST_CASE_FIXTURE(ControllerFixture, "i8042 self test and interface tests reply on the data port") {
  Command(0xAA);
  CHECK((Status() & Controller::kOutputBufferFull) != 0);
  CHECK((Status() & Controller::kAuxData) == 0);
  CHECK(Data() == 0x55);
  CHECK((Status() & Controller::kOutputBufferFull) == 0);
  Command(0xAB);
  Command(0xA9);
  CHECK(Drain() == Bytes{0x00, 0x00});
  // An empty output buffer reads its last byte again.
  CHECK(Data() == 0x00);
}

TEST_CASE_FIXTURE(ControllerFixture, "i8042 status tracks the last port written (A2)") {
  Command(0xAD);
  CHECK((Status() & Controller::kCommandWritten) != 0);
  WriteData(0xF4);
  CHECK((Status() & Controller::kCommandWritten) == 0);
  CHECK((Status() & Controller::kInputBufferFull) == 0);
}

TEST_CASE_FIXTURE(ControllerFixture,
                  "i8042 command byte: written, read back, system flag in status") {
  SetCommandByte(0x03);  // both interrupts, no system flag, translation off
  CHECK(CommandByte() == 0x03);
  CHECK((Status() & Controller::kSystemFlag) == 0);
  SetCommandByte(0x47);
  CHECK((Status() & Controller::kSystemFlag) != 0);
  // 0xAD/0xAE and 0xA7/0xA8 set and clear the disable bits.
  Command(0xAD);
  Command(0xA8);
  CHECK(CommandByte() == (0x47 | Controller::kKeyboardDisabled));
  Command(0xAE);
  Command(0xA7);
  CHECK(CommandByte() == (0x47 | Controller::kAuxDisabled));
}

TEST_CASE_FIXTURE(ControllerFixture, "i8042 keyboard answers the atkbd probe, translated or not") {
  SetCommandByte(0x05);  // translation off
  WriteData(0xFF);
  CHECK(Drain() == Bytes{0xFA, 0xAA});
  WriteData(0xF2);
  CHECK(Drain() == Bytes{0xFA, 0xAB, 0x83});
  for (std::uint8_t command : {0xF5, 0xF4, 0xF6}) {
    WriteData(command);
    CHECK(Drain() == Bytes{0xFA});
  }
  WriteData(0xED);  // LEDs, then their argument
  WriteData(0x07);
  WriteData(0xF3);  // typematic rate, then its argument
  WriteData(0x20);
  CHECK(Drain() == Bytes{0xFA, 0xFA, 0xFA, 0xFA});
  WriteData(0xEE);
  CHECK(Drain() == Bytes{0xEE});
  WriteData(0xE0);
  CHECK(Drain() == Bytes{0xFE});
  // Translated to set 1, the ID's second byte is 0x41; the rest are as sent.
  SetCommandByte(0x45);
  WriteData(0xF2);
  CHECK(Drain() == Bytes{0xFA, 0xAB, 0x41});
  CHECK(resets == 0);
}

TEST_CASE_FIXTURE(ControllerFixture, "i8042 holds keyboard bytes while the interface is disabled") {
  WriteData(0xF2);
  Command(0xAD);
  CHECK(Data() == 0xFA);  // already in the output buffer
  CHECK((Status() & Controller::kOutputBufferFull) == 0);
  // Controller replies still come through.
  Command(0xAA);
  CHECK(Drain() == Bytes{0x55});
  Command(0xAE);
  CHECK(Drain() == Bytes{0xAB, 0x41});
  // Sending to the keyboard enables its interface again.
  Command(0xAD);
  WriteData(0xF4);
  CHECK(Drain() == Bytes{0xFA});
  CHECK((CommandByte() & Controller::kKeyboardDisabled) == 0);
}

TEST_CASE_FIXTURE(ControllerFixture, "i8042 raises IRQ1 per keyboard byte while enabled") {
  WriteData(0xFF);
  // IRQ1 rose with FA, fell when it was read and rose again for AA.
  CHECK(keyboard_irq == std::vector<bool>{true});
  CHECK(Data() == 0xFA);
  CHECK(keyboard_irq == std::vector<bool>{true, false, true});
  CHECK(Data() == 0xAA);
  CHECK(keyboard_irq == std::vector<bool>{true, false, true, false});
  CHECK(aux_irq.empty());
  // With the interrupt disabled the byte waits without IRQ1.
  SetCommandByte(0x64);
  keyboard_irq.clear();
  WriteData(0xEE);
  CHECK(keyboard_irq.empty());
  CHECK((Status() & Controller::kOutputBufferFull) != 0);
  // Enabling it with a byte waiting raises the line at once.
  SetCommandByte(0x65);
  CHECK(keyboard_irq == std::vector<bool>{true});
}

TEST_CASE_FIXTURE(ControllerFixture, "i8042 aux loopback (0xD3) is aux data on IRQ12") {
  Command(0xD3);
  WriteData(0x5A);
  CHECK(Status() == (Controller::kOutputBufferFull | Controller::kAuxData |
                     Controller::kNotInhibited | Controller::kSystemFlag));
  CHECK(aux_irq.empty());  // the command byte disables the aux interrupt
  CHECK(Data() == 0x5A);
  SetCommandByte(0x47);  // both interrupts, aux port enabled
  Command(0xD3);
  WriteData(0xA5);
  CHECK(aux_irq == std::vector<bool>{true});
  CHECK(keyboard_irq.empty());
  CHECK(Data() == 0xA5);
  CHECK(aux_irq == std::vector<bool>{true, false});
  // 0xD2 is keyboard data.
  Command(0xD2);
  WriteData(0x33);
  CHECK(Status() ==
        (Controller::kOutputBufferFull | Controller::kNotInhibited | Controller::kSystemFlag));
  CHECK(keyboard_irq == std::vector<bool>{true});
  CHECK(Data() == 0x33);
}

TEST_CASE_FIXTURE(ControllerFixture, "i8042 mouse answers through 0xD4 as aux data") {
  SetCommandByte(0x47);
  ToAux(0xFF);
  CHECK((Status() & Controller::kAuxData) != 0);
  CHECK(Drain() == Bytes{0xFA, 0xAA, 0x00});
  CHECK(aux_irq == std::vector<bool>{true, false, true, false, true, false});
  ToAux(0xF2);
  CHECK(Drain() == Bytes{0xFA, 0x00});
  ToAux(0xF3);
  ToAux(200);
  ToAux(0xE8);
  ToAux(3);
  ToAux(0xE7);
  ToAux(0xF4);
  ToAux(0xE9);
  CHECK(Drain() == Bytes{0xFA, 0xFA, 0xFA, 0xFA, 0xFA, 0xFA, 0xFA, 0x30, 3, 200});
  ToAux(0xE6);
  ToAux(0xF5);
  ToAux(0xF0);
  ToAux(0xE9);
  CHECK(Drain() == Bytes{0xFA, 0xFA, 0xFA, 0xFA, 0x40, 3, 200});
  ToAux(0xF6);
  ToAux(0xE9);
  CHECK(Drain() == Bytes{0xFA, 0xFA, 0x00, 2, 100});
  ToAux(0xEB);  // read data: not emulated
  CHECK(Drain() == Bytes{0xFE});
  CHECK(keyboard_irq.empty());
}

TEST_CASE_FIXTURE(ControllerFixture, "i8042 holds mouse bytes while the aux port is disabled") {
  ToAux(0xF2);  // enables the port
  Command(0xA7);
  CHECK(Data() == 0xFA);
  CHECK((Status() & Controller::kOutputBufferFull) == 0);
  Command(0xA8);
  CHECK(Drain() == Bytes{0x00});
  Command(0xA7);
  ToAux(0xF5);
  CHECK(Drain() == Bytes{0xFA});
  CHECK((CommandByte() & Controller::kAuxDisabled) == 0);
}

TEST_CASE_FIXTURE(ControllerFixture, "i8042 input and output ports") {
  Command(0xC0);
  CHECK(Data() == 0x80);
  Command(0xD0);
  CHECK(Data() == 0xCF);  // not in reset, A20 on, lines idle, no IRQ
  Command(0xD1);
  WriteData(0xCD);  // A20 off: stored only
  Command(0xD0);
  CHECK(Data() == 0xCD);
  CHECK(resets == 0);
  // Bits 4 and 5 are the interrupt outputs.
  SetCommandByte(0x47);
  Command(0xD3);
  WriteData(0x01);
  Command(0xD0);
  CHECK(Data() == 0x01);
  CHECK(Data() == 0xED);
}

TEST_CASE_FIXTURE(ControllerFixture, "i8042 resets the machine through output port bit 0") {
  SUBCASE("0xFE pulses it") { Command(0xFE); }
  SUBCASE("any pulse command with bit 0 clear") { Command(0xF0); }
  SUBCASE("0xD1 writes it low") {
    Command(0xD1);
    WriteData(0xCE);
  }
  CHECK(resets == 1);
}

TEST_CASE_FIXTURE(ControllerFixture, "i8042 pulses that leave bit 0 alone do not reset") {
  Command(0xFF);
  Command(0xF1);
  Command(0xFD);
  Command(0xD1);
  WriteData(0xDF);
  CHECK(resets == 0);
}

}  // namespace
}  // namespace bt::devices
