#include "devices/uart_16550.h"

#include <doctest/doctest.h>

#include <string>

namespace bt::devices {
namespace {

constexpr std::uint16_t kThr = 0, kIer = 1, kIir = 2, kLcr = 3, kMcr = 4, kLsr = 5, kMsr = 6,
                        kScr = 7;
constexpr std::uint16_t kDll = 0, kDlm = 1, kFcr = 2;

struct UartFixture {
  std::string output;
  Uart16550 uart{[this](std::string_view bytes) { output += bytes; }};

  std::uint32_t Read(std::uint16_t offset) { return uart.PortRead(offset, 1); }
  void Write(std::uint16_t offset, std::uint32_t value) { uart.PortWrite(offset, 1, value); }
};

TEST_CASE_FIXTURE(UartFixture, "UART sends transmitted bytes to the sink in order") {
  for (char c : std::string("Hi\n")) Write(kThr, static_cast<unsigned char>(c));
  CHECK(output == "Hi\n");
  // A wider access transmits its low byte.
  uart.PortWrite(kThr, 4, 0x41424344);
  uart.PortWrite(kThr, 2, 0x0145);
  CHECK(output == "Hi\nDE");
}

TEST_CASE_FIXTURE(UartFixture, "UART is always ready to transmit and never has data") {
  CHECK(Read(kLsr) == 0x60);  // THRE | TEMT, DR clear
  Write(kThr, 'x');
  CHECK(Read(kLsr) == 0x60);
  CHECK(Read(kThr) == 0);
  // LSR writes are factory test only.
  Write(kLsr, 0x01);
  CHECK(Read(kLsr) == 0x60);
}

TEST_CASE_FIXTURE(UartFixture, "UART divisor latch is reached through LCR.DLAB") {
  Write(kIer, 0x05);
  Write(kLcr, 0x83);  // DLAB, 8 data bits
  Write(kDll, 0x0C);
  Write(kDlm, 0x01);
  CHECK(output.empty());
  CHECK(Read(kDll) == 0x0C);
  CHECK(Read(kDlm) == 0x01);
  CHECK(Read(kLcr) == 0x83);
  // With DLAB set IIR is still IIR, not part of the latch.
  CHECK(Read(kIir) == 0x01);

  Write(kLcr, 0x03);
  CHECK(Read(kLcr) == 0x03);
  CHECK(Read(kIer) == 0x05);
  CHECK(Read(kThr) == 0);
  Write(kThr, 'A');
  CHECK(output == "A");

  // The latch kept its value and each half is written separately.
  Write(kLcr, 0x80);
  CHECK(Read(kDll) == 0x0C);
  Write(kDlm, 0x00);
  CHECK(Read(kDll) == 0x0C);
  CHECK(Read(kDlm) == 0x00);
}

TEST_CASE_FIXTURE(UartFixture, "UART IER keeps only the four 16550A enable bits") {
  Write(kIer, 0xFF);
  CHECK(Read(kIer) == 0x0F);
  Write(kIer, 0x00);
  CHECK(Read(kIer) == 0x00);
}

TEST_CASE_FIXTURE(UartFixture, "UART IIR reports no interrupt and reflects the FIFO enable") {
  CHECK(Read(kIir) == 0x01);
  Write(kFcr, 0xC7);  // enable, reset both FIFOs, 14-byte trigger
  CHECK(Read(kIir) == 0xC1);
  Write(kFcr, 0x06);
  CHECK(Read(kIir) == 0x01);
}

TEST_CASE_FIXTURE(UartFixture, "UART modem lines look connected outside loopback") {
  CHECK(Read(kMsr) == 0xB0);  // DCD | DSR | CTS
  Write(kMcr, 0xFF);
  CHECK(Read(kMcr) == 0x1F);
  Write(kMcr, 0x0B);
  CHECK(Read(kMcr) == 0x0B);
  CHECK(Read(kMsr) == 0xB0);
}

TEST_CASE_FIXTURE(UartFixture, "UART loopback wires MCR outputs to MSR inputs") {
  // Linux's 8250 probe: RTS | OUT2 in loopback must read back as CTS | DCD.
  Write(kMcr, 0x10 | 0x0A);
  CHECK((Read(kMsr) & 0xF0) == 0x90);
  Write(kMcr, 0x10 | 0x01);  // DTR -> DSR
  CHECK(Read(kMsr) == 0x20);
  Write(kMcr, 0x10 | 0x04);  // OUT1 -> RI
  CHECK(Read(kMsr) == 0x40);
  Write(kMcr, 0x10);
  CHECK(Read(kMsr) == 0x00);

  // Bytes sent in loopback never reach the line.
  Write(kThr, 'L');
  CHECK(output.empty());
  Write(kMcr, 0x00);
  Write(kThr, 'N');
  CHECK(output == "N");
}

TEST_CASE_FIXTURE(UartFixture, "UART scratch register holds a byte") {
  CHECK(Read(kScr) == 0);
  Write(kScr, 0x1A5);
  CHECK(Read(kScr) == 0xA5);
}

TEST_CASE("UART without a sink drops output") {
  Uart16550 uart{Uart16550::OutputSink{}};
  uart.PortWrite(kThr, 1, 'x');
  CHECK(uart.PortRead(kLsr, 1) == 0x60);
}

}  // namespace
}  // namespace bt::devices
