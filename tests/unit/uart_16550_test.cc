#include "devices/uart_16550.h"

#include "devices/layout.h"
#include "devices/pic_8259.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

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
  // RI was on in the loopback just left: its trailing edge is reported once.
  CHECK(Read(kMsr) == 0xB4);
  CHECK(Read(kMsr) == 0xB0);
}

TEST_CASE_FIXTURE(UartFixture, "UART loopback wires MCR outputs to MSR inputs") {
  // Linux's 8250 probe: RTS | OUT2 in loopback must read back as CTS | DCD.
  Write(kMcr, 0x10 | 0x0A);
  CHECK((Read(kMsr) & 0xF0) == 0x90);
  // The low bits report changes since the last read: CTS, DSR and DCD
  // changed, RI went from on to off.
  Write(kMcr, 0x10 | 0x01);  // DTR -> DSR
  CHECK(Read(kMsr) == (0x20 | 0x0B));
  CHECK(Read(kMsr) == 0x20);
  Write(kMcr, 0x10 | 0x04);  // OUT1 -> RI: a rising RI is no trailing edge
  CHECK(Read(kMsr) == (0x40 | 0x02));
  Write(kMcr, 0x10);
  CHECK(Read(kMsr) == 0x04);
  CHECK(Read(kMsr) == 0x00);

  // Bytes sent in loopback never reach the line but come back in RBR.
  Write(kThr, 'L');
  CHECK(output.empty());
  CHECK(Read(kLsr) == 0x61);
  CHECK(Read(kThr) == 'L');
  Write(kMcr, 0x00);
  Write(kThr, 'N');
  CHECK(output == "N");
  CHECK(Read(kLsr) == 0x60);
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

// Bits of IER, IIR and MCR the tests below use.
constexpr std::uint8_t kErbfi = 0x01, kEtbei = 0x02, kElsi = 0x04, kEdssi = 0x08;
constexpr std::uint8_t kNoInterrupt = 0x01, kModemStatus = 0x00, kThrEmpty = 0x02,
                       kReceivedData = 0x04, kLineStatus = 0x06, kTimeout = 0x0C;
constexpr std::uint8_t kDtr = 0x01, kRts = 0x02, kOut2 = 0x08, kLoop = 0x10;

struct InterruptFixture {
  std::string output;
  std::vector<bool> edges;  // every level the IRQ line took
  int input_calls = 0;
  Uart16550 uart{
      [this](std::string_view bytes) { output += bytes; },
      [](void* self, bool level) { static_cast<InterruptFixture*>(self)->edges.push_back(level); },
      this};

  InterruptFixture() {
    uart.SetInputListener([](void* self) { ++static_cast<InterruptFixture*>(self)->input_calls; },
                          this);
  }
  std::uint32_t Read(std::uint16_t offset) { return uart.PortRead(offset, 1); }
  void Write(std::uint16_t offset, std::uint32_t value) { uart.PortWrite(offset, 1, value); }
  bool Line() const { return !edges.empty() && edges.back(); }
  // IIR without the FIFO bits.
  std::uint32_t Source() { return Read(kIir) & 0x0F; }
  void Type(std::string_view bytes) {
    uart.Receive(bytes);
    uart.ServiceInput();
  }
};

TEST_CASE_FIXTURE(InterruptFixture, "UART THRE interrupt: raised when enabled, cleared by IIR") {
  Write(kMcr, kOut2);
  CHECK(edges.empty());
  Write(kIer, kEtbei);  // THR is empty: enabling raises it
  CHECK(Line());
  CHECK(Read(kIir) == kThrEmpty);
  // Reading IIR while THRE is the source acknowledges it.
  CHECK_FALSE(Line());
  CHECK(Read(kIir) == kNoInterrupt);
  // Rewriting the enable bit that is already set does not raise it again...
  Write(kIer, kEtbei);
  CHECK(Source() == kNoInterrupt);
  // ...but turning it off and on does (Linux's UART_BUG_THRE test).
  Write(kIer, 0);
  Write(kIer, kEtbei);
  CHECK(Line());
  // Writing THR clears it; the byte leaves at once, so THR empties and it
  // is raised again.
  CHECK(Source() == kThrEmpty);
  Write(kThr, 'a');
  CHECK(Line());
  CHECK(output == "a");
  CHECK(edges == std::vector<bool>{true, false, true, false, true});
  // Disabling the source drops the line; the condition stays pending.
  Write(kIer, 0);
  CHECK_FALSE(Line());
  CHECK(Source() == kNoInterrupt);
}

TEST_CASE_FIXTURE(InterruptFixture, "UART interrupt line reaches the bus only with OUT2 set") {
  Write(kIer, kEtbei);
  CHECK(edges.empty());
  CHECK(Read(kIir) == kThrEmpty);  // pending inside the chip all the same
  Write(kIer, 0);
  Write(kIer, kEtbei);
  Write(kMcr, kDtr | kRts | kOut2);
  CHECK(Line());
  Write(kMcr, kDtr | kRts);
  CHECK_FALSE(Line());
  // Loopback forces OUT2 inactive, which also cuts the line.
  Write(kMcr, kOut2 | kLoop);
  CHECK_FALSE(Line());
  Write(kMcr, kOut2);
  CHECK(Line());
}

TEST_CASE_FIXTURE(InterruptFixture, "UART receive FIFO holds host input in order") {
  Write(kFcr, 0x07);  // FIFOs on, both reset, trigger at 1 byte
  Write(kMcr, kDtr | kRts | kOut2);
  Write(kIer, kErbfi);
  uart.Receive("hello");
  CHECK(input_calls == 1);
  CHECK(Read(kLsr) == 0x60);  // nothing arrives before the service runs
  uart.ServiceInput();
  CHECK(Line());
  CHECK(Read(kIir) == (0xC0 | kReceivedData));
  std::string received;
  while (Read(kLsr) & 0x01) received += static_cast<char>(Read(kThr));
  CHECK(received == "hello");
  CHECK_FALSE(Line());
  CHECK(Source() == kNoInterrupt);
  CHECK(Read(kThr) == 0);  // empty FIFO
}

TEST_CASE_FIXTURE(InterruptFixture, "UART waits for RTS and receiver room before taking input") {
  Write(kFcr, 0x01);
  Type("0123456789abcdefXYZ");
  CHECK((Read(kLsr) & 0x01) == 0);  // RTS low: the host holds its bytes
  Write(kMcr, kRts);
  CHECK((Read(kLsr) & 0x03) == 0x01);  // 16 bytes in, no overrun
  std::string received;
  while (Read(kLsr) & 0x01) received += static_cast<char>(Read(kThr));
  CHECK(received == "0123456789abcdefXYZ");
}

TEST_CASE_FIXTURE(InterruptFixture, "UART reports a timeout below the trigger level") {
  Write(kFcr, 0x81);  // FIFOs on, trigger at 8 bytes
  Write(kMcr, kRts | kOut2);
  Write(kIer, kErbfi);
  Type("abc");
  CHECK(Line());
  CHECK(Source() == kTimeout);
  Type("defgh");
  CHECK(Source() == kReceivedData);
  Read(kThr);
  CHECK(Source() == kTimeout);
  Write(kFcr, 0x83);  // resetting the receiver empties it
  CHECK((Read(kLsr) & 0x01) == 0);
  CHECK(Source() == kNoInterrupt);
  CHECK_FALSE(Line());
}

TEST_CASE_FIXTURE(InterruptFixture, "UART overruns in loopback and reports line status first") {
  Write(kMcr, kLoop);
  Write(kIer, kErbfi | kEtbei | kElsi);
  // FIFOs off: one byte of holding register, and the next overwrites it.
  Write(kThr, 'a');
  CHECK(Source() == kReceivedData);
  Write(kThr, 'b');
  CHECK(Source() == kLineStatus);
  CHECK(Read(kLsr) == 0x63);  // DR, OE, THRE, TEMT; reading clears OE
  CHECK(Source() == kReceivedData);
  CHECK(Read(kThr) == 'b');
  CHECK(Source() == kThrEmpty);
  CHECK(Source() == kNoInterrupt);

  // With FIFOs the 17th byte is lost instead.
  Write(kFcr, 0x01);
  for (char c = 'A'; c < 'A' + 17; ++c) Write(kThr, static_cast<unsigned char>(c));
  CHECK(Read(kLsr) == 0x63);
  std::string received;
  while (Read(kLsr) & 0x01) received += static_cast<char>(Read(kThr));
  CHECK(received == "ABCDEFGHIJKLMNOP");
  // Turning the FIFOs off empties them.
  Write(kThr, 'x');
  Write(kFcr, 0x00);
  CHECK((Read(kLsr) & 0x01) == 0);
}

TEST_CASE_FIXTURE(InterruptFixture, "UART modem status interrupt has the lowest priority") {
  Write(kMcr, kLoop);
  Read(kMsr);  // the inputs all changed entering loopback
  Write(kIer, kEdssi | kEtbei);
  Write(kMcr, kLoop | kRts);  // CTS rises
  CHECK(Source() == kThrEmpty);
  CHECK(Source() == kModemStatus);
  CHECK(Read(kMsr) == 0x11);  // CTS and its delta; reading clears the delta
  CHECK(Source() == kNoInterrupt);
}

TEST_CASE("UART interrupts reach the CPU through IRQ4 of the PIC") {
  Pic8259Pair pic;
  Uart16550 uart{
      {},
      [](void* pair, bool level) { static_cast<Pic8259Pair*>(pair)->SetIrq(kCom1Irq, level); },
      &pic};
  PortDevice& master = pic.master_ports();
  master.PortWrite(0, 1, 0x11);  // ICW1: edge, cascade, ICW4
  master.PortWrite(1, 1, 0x20);  // ICW2: vectors 0x20-0x27
  master.PortWrite(1, 1, 0x04);  // ICW3: slave on IR2
  master.PortWrite(1, 1, 0x01);  // ICW4: 8086 mode
  master.PortWrite(1, 1, 0xEF);  // unmask IRQ4 only

  uart.PortWrite(kMcr, 1, kRts | kOut2);
  uart.PortWrite(kIer, 1, kErbfi);
  CHECK_FALSE(pic.InterruptPending());
  uart.Receive("k");
  uart.ServiceInput();
  REQUIRE(pic.InterruptPending());
  CHECK(pic.Acknowledge() == 0x24);
  CHECK(uart.PortRead(kThr, 1) == 'k');
  master.PortWrite(0, 1, 0x20);  // non-specific EOI
  CHECK_FALSE(pic.InterruptPending());
}

}  // namespace
}  // namespace bt::devices
