#include "devices/uart_16550.h"

namespace bt::devices {
namespace {

// Register offsets; with LCR.DLAB set, offsets 0 and 1 are the divisor latch.
constexpr std::uint16_t kData = 0;               // RBR (read), THR (write), DLL
constexpr std::uint16_t kInterruptEnable = 1;    // IER, DLM
constexpr std::uint16_t kInterruptIdentity = 2;  // IIR (read), FCR (write)
constexpr std::uint16_t kLineControl = 3;        // LCR
constexpr std::uint16_t kModemControl = 4;       // MCR
constexpr std::uint16_t kLineStatus = 5;         // LSR
constexpr std::uint16_t kModemStatus = 6;        // MSR
constexpr std::uint16_t kScratch = 7;            // SCR

// IER: only bits 0-3 exist on a 16550A. Linux tells a 16550A from an XScale
// UART by whether bit 6 sticks, so the others must read back as zero.
constexpr std::uint8_t kIerMask = 0x0F;
constexpr std::uint8_t kFcrEnableFifo = 0x01;
// IIR bit 0 set means no interrupt pending; bits 6-7 are both set when the
// FIFOs are enabled, which is how software tells a 16550A from a 16450.
constexpr std::uint8_t kIirNoInterrupt = 0x01;
constexpr std::uint8_t kIirFifosEnabled = 0xC0;
constexpr std::uint8_t kLcrDivisorLatchAccess = 0x80;
// MCR: DTR, RTS, OUT1, OUT2, LOOP; bits 5-7 read as zero.
constexpr std::uint8_t kMcrMask = 0x1F;
constexpr std::uint8_t kMcrDtr = 0x01;
constexpr std::uint8_t kMcrRts = 0x02;
constexpr std::uint8_t kMcrOut1 = 0x04;
constexpr std::uint8_t kMcrOut2 = 0x08;
constexpr std::uint8_t kMcrLoopback = 0x10;
// LSR: the transmitter holding register and shift register are always empty.
constexpr std::uint8_t kLsrTransmitterIdle = 0x20 | 0x40;  // THRE | TEMT
constexpr std::uint8_t kMsrCts = 0x10;
constexpr std::uint8_t kMsrDsr = 0x20;
constexpr std::uint8_t kMsrRi = 0x40;
constexpr std::uint8_t kMsrDcd = 0x80;

}  // namespace

bool Uart16550::DivisorLatchAccess() const { return (line_control_ & kLcrDivisorLatchAccess) != 0; }

// In loopback mode the modem control outputs are wired to the modem status
// inputs (datasheet, MCR bit 4): RTS->CTS, DTR->DSR, OUT1->RI, OUT2->DCD.
// Linux's probe sets RTS|OUT2 in loopback and requires CTS|DCD back. Outside
// loopback the line looks like a connected terminal (DCD, DSR, CTS). The
// delta bits (0-3) stay clear: nothing on the line ever changes.
std::uint8_t Uart16550::ModemStatus() const {
  if ((modem_control_ & kMcrLoopback) == 0) return kMsrDcd | kMsrDsr | kMsrCts;
  std::uint8_t status = 0;
  if (modem_control_ & kMcrRts) status |= kMsrCts;
  if (modem_control_ & kMcrDtr) status |= kMsrDsr;
  if (modem_control_ & kMcrOut1) status |= kMsrRi;
  if (modem_control_ & kMcrOut2) status |= kMsrDcd;
  return status;
}

// Registers are one byte wide; a wider access reads the register into the
// low byte and writes its low byte.
std::uint32_t Uart16550::PortRead(std::uint16_t offset, unsigned /*size*/) {
  switch (offset) {
    case kData: return DivisorLatchAccess() ? divisor_ & 0xFF : 0;
    case kInterruptEnable: return DivisorLatchAccess() ? divisor_ >> 8 : interrupt_enable_;
    // IIR does not depend on DLAB; Linux's probe for ST16C650 EFR relies on
    // reading IIR here with DLAB set.
    case kInterruptIdentity: return kIirNoInterrupt | (fifo_enabled_ ? kIirFifosEnabled : 0);
    case kLineControl: return line_control_;
    case kModemControl: return modem_control_;
    case kLineStatus: return kLsrTransmitterIdle;
    case kModemStatus: return ModemStatus();
    case kScratch: return scratch_;
    default: return 0xFF;
  }
}

void Uart16550::PortWrite(std::uint16_t offset, unsigned /*size*/, std::uint32_t value) {
  const auto byte = static_cast<std::uint8_t>(value);
  switch (offset) {
    case kData:
      if (DivisorLatchAccess()) {
        divisor_ = static_cast<std::uint16_t>((divisor_ & 0xFF00) | byte);
      } else if ((modem_control_ & kMcrLoopback) == 0) {
        // In loopback the byte goes to the receiver, not the line; with no
        // receive path yet it is dropped.
        const char character = static_cast<char>(byte);
        if (output_) output_(std::string_view(&character, 1));
      }
      return;
    case kInterruptEnable:
      if (DivisorLatchAccess()) {
        divisor_ = static_cast<std::uint16_t>((divisor_ & 0x00FF) | (byte << 8));
      } else {
        interrupt_enable_ = byte & kIerMask;
      }
      return;
    // FCR: bits 1-2 reset the FIFOs (always empty here) and bits 6-7 set the
    // receive trigger level (no receive path yet); only the enable matters.
    case kInterruptIdentity: fifo_enabled_ = (byte & kFcrEnableFifo) != 0; return;
    case kLineControl: line_control_ = byte; return;
    case kModemControl: modem_control_ = byte & kMcrMask; return;
    case kScratch: scratch_ = byte; return;
    // LSR and MSR writes are factory-test only on the 16550A; ignore them.
    default: return;
  }
}

}  // namespace bt::devices
