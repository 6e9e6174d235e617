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
constexpr std::uint8_t kIerReceivedData = 0x01;
constexpr std::uint8_t kIerThrEmpty = 0x02;
constexpr std::uint8_t kIerLineStatus = 0x04;
constexpr std::uint8_t kIerModemStatus = 0x08;
// IIR bit 0 set means no interrupt pending; bits 1-3 name the source; bits
// 6-7 are both set when the FIFOs are enabled, which is how software tells
// a 16550A from a 16450.
constexpr std::uint8_t kIirNoInterrupt = 0x01;
constexpr std::uint8_t kIirModemStatus = 0x00;
constexpr std::uint8_t kIirThrEmpty = 0x02;
constexpr std::uint8_t kIirReceivedData = 0x04;
constexpr std::uint8_t kIirLineStatus = 0x06;
constexpr std::uint8_t kIirCharacterTimeout = 0x0C;
constexpr std::uint8_t kIirFifosEnabled = 0xC0;
// FCR: the other bits are only programmed together with the enable bit.
constexpr std::uint8_t kFcrEnableFifo = 0x01;
constexpr std::uint8_t kFcrResetReceiver = 0x02;
constexpr std::uint8_t kFcrTriggerMask = 0xC0;
constexpr std::uint8_t kLcrDivisorLatchAccess = 0x80;
// MCR: DTR, RTS, OUT1, OUT2, LOOP; bits 5-7 read as zero.
constexpr std::uint8_t kMcrMask = 0x1F;
constexpr std::uint8_t kMcrDtr = 0x01;
constexpr std::uint8_t kMcrRts = 0x02;
constexpr std::uint8_t kMcrOut1 = 0x04;
constexpr std::uint8_t kMcrOut2 = 0x08;
constexpr std::uint8_t kMcrLoopback = 0x10;
constexpr std::uint8_t kLsrDataReady = 0x01;
constexpr std::uint8_t kLsrOverrun = 0x02;
// LSR: the transmitter holding register and shift register are always empty.
constexpr std::uint8_t kLsrTransmitterIdle = 0x20 | 0x40;  // THRE | TEMT
constexpr std::uint8_t kMsrCts = 0x10;
constexpr std::uint8_t kMsrDsr = 0x20;
constexpr std::uint8_t kMsrRi = 0x40;
constexpr std::uint8_t kMsrDcd = 0x80;
// MSR deltas: CTS, DSR and DCD changed; RI went from on to off.
constexpr std::uint8_t kMsrDeltaCts = 0x01;
constexpr std::uint8_t kMsrDeltaDsr = 0x02;
constexpr std::uint8_t kMsrTrailingEdgeRi = 0x04;
constexpr std::uint8_t kMsrDeltaDcd = 0x08;

constexpr unsigned kTriggerLevels[4] = {1, 4, 8, 14};

}  // namespace

bool Uart16550::DivisorLatchAccess() const { return (line_control_ & kLcrDivisorLatchAccess) != 0; }

bool Uart16550::Loopback() const { return (modem_control_ & kMcrLoopback) != 0; }

// In loopback mode the modem control outputs are wired to the modem status
// inputs (datasheet, MCR bit 4): RTS->CTS, DTR->DSR, OUT1->RI, OUT2->DCD.
// Linux's probe sets RTS|OUT2 in loopback and requires CTS|DCD back. Outside
// loopback the line looks like a connected terminal (DCD, DSR, CTS).
std::uint8_t Uart16550::ModemInputs() const {
  if (!Loopback()) return kMsrDcd | kMsrDsr | kMsrCts;
  std::uint8_t inputs = 0;
  if (modem_control_ & kMcrRts) inputs |= kMsrCts;
  if (modem_control_ & kMcrDtr) inputs |= kMsrDsr;
  if (modem_control_ & kMcrOut1) inputs |= kMsrRi;
  if (modem_control_ & kMcrOut2) inputs |= kMsrDcd;
  return inputs;
}

unsigned Uart16550::ReceiveCapacity() const {
  return (fifo_control_ & kFcrEnableFifo) ? kFifoBytes : 1;
}

unsigned Uart16550::TriggerLevel() const {
  if (!(fifo_control_ & kFcrEnableFifo)) return 1;
  return kTriggerLevels[fifo_control_ >> 6];
}

// Datasheet, LSR bit 1: with the FIFO full the new character overwrites the
// shift register and is lost; without FIFOs it overwrites RBR instead.
void Uart16550::PushReceived(std::uint8_t byte) {
  if (fifo_count_ == ReceiveCapacity()) {
    line_errors_ |= kLsrOverrun;
    if (!(fifo_control_ & kFcrEnableFifo)) fifo_[fifo_head_] = byte;
    return;
  }
  fifo_[(fifo_head_ + fifo_count_) % kFifoBytes] = byte;
  ++fifo_count_;
}

std::uint8_t Uart16550::ReadReceived() {
  if (fifo_count_ == 0) return 0;
  const std::uint8_t byte = fifo_[fifo_head_];
  fifo_head_ = (fifo_head_ + 1) % kFifoBytes;
  --fifo_count_;
  return byte;
}

void Uart16550::ResetReceiver() {
  fifo_head_ = 0;
  fifo_count_ = 0;
}

void Uart16550::Receive(std::string_view bytes) {
  {
    std::lock_guard lock(input_mutex_);
    input_.append(bytes);
  }
  if (input_listener_) input_listener_(input_context_);
}

// The host side only sends while the guest asserts RTS (hardware flow
// control), and never into the loopback.
void Uart16550::ServiceInput() {
  if ((modem_control_ & kMcrRts) && !Loopback()) {
    std::lock_guard lock(input_mutex_);
    std::size_t taken = 0;
    while (taken < input_.size() && fifo_count_ < ReceiveCapacity()) {
      PushReceived(static_cast<std::uint8_t>(input_[taken++]));
    }
    input_.erase(0, taken);
  }
  UpdateIrq();
}

void Uart16550::WriteModemControl(std::uint8_t value) {
  const std::uint8_t before = ModemInputs();
  modem_control_ = value & kMcrMask;
  const std::uint8_t changed = before ^ ModemInputs();
  if (changed & kMsrCts) modem_deltas_ |= kMsrDeltaCts;
  if (changed & kMsrDsr) modem_deltas_ |= kMsrDeltaDsr;
  if (changed & before & kMsrRi) modem_deltas_ |= kMsrTrailingEdgeRi;
  if (changed & kMsrDcd) modem_deltas_ |= kMsrDeltaDcd;
  // Raising RTS may let queued host input in.
  ServiceInput();
}

// Datasheet table IV: line status, then received data (or its timeout),
// then THR empty, then modem status.
std::uint8_t Uart16550::InterruptIdentity() const {
  const std::uint8_t fifos = (fifo_control_ & kFcrEnableFifo) ? kIirFifosEnabled : 0;
  if ((interrupt_enable_ & kIerLineStatus) && line_errors_) return fifos | kIirLineStatus;
  if ((interrupt_enable_ & kIerReceivedData) && fifo_count_ > 0) {
    return fifos | (fifo_count_ >= TriggerLevel() ? kIirReceivedData : kIirCharacterTimeout);
  }
  if ((interrupt_enable_ & kIerThrEmpty) && thre_pending_) return fifos | kIirThrEmpty;
  if ((interrupt_enable_ & kIerModemStatus) && modem_deltas_) return fifos | kIirModemStatus;
  return fifos | kIirNoInterrupt;
}

// On a PC the UART's INTRPT pin reaches the bus only through a buffer that
// OUT2 enables; loopback forces OUT2 inactive, so the line is cut there too.
void Uart16550::UpdateIrq() {
  const bool level = !(InterruptIdentity() & kIirNoInterrupt) &&
                     (modem_control_ & (kMcrOut2 | kMcrLoopback)) == kMcrOut2;
  if (level == irq_level_) return;
  irq_level_ = level;
  if (irq_) irq_(irq_context_, level);
}

// Registers are one byte wide; a wider access reads the register into the
// low byte and writes its low byte.
std::uint32_t Uart16550::PortRead(std::uint16_t offset, unsigned /*size*/) {
  switch (offset) {
    case kData: {
      if (DivisorLatchAccess()) return divisor_ & 0xFF;
      const std::uint8_t byte = ReadReceived();
      ServiceInput();
      return byte;
    }
    case kInterruptEnable: return DivisorLatchAccess() ? divisor_ >> 8 : interrupt_enable_;
    // IIR does not depend on DLAB; Linux's probe for ST16C650 EFR relies on
    // reading IIR here with DLAB set. Reading it acknowledges a THR empty
    // interrupt it reports.
    case kInterruptIdentity: {
      const std::uint8_t identity = InterruptIdentity();
      if ((identity & 0x0F) == kIirThrEmpty) {
        thre_pending_ = false;
        UpdateIrq();
      }
      return identity;
    }
    case kLineControl: return line_control_;
    case kModemControl: return modem_control_;
    case kLineStatus: {
      const std::uint8_t status =
          (fifo_count_ > 0 ? kLsrDataReady : 0) | line_errors_ | kLsrTransmitterIdle;
      line_errors_ = 0;
      UpdateIrq();
      return status;
    }
    case kModemStatus: {
      const std::uint8_t status = ModemInputs() | modem_deltas_;
      modem_deltas_ = 0;
      UpdateIrq();
      return status;
    }
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
        return;
      }
      if (Loopback()) {
        PushReceived(byte);
      } else if (output_) {
        const char character = static_cast<char>(byte);
        output_(std::string_view(&character, 1));
      }
      // Sent at once: THR is empty again, which raises THRE anew.
      thre_pending_ = true;
      break;
    case kInterruptEnable:
      if (DivisorLatchAccess()) {
        divisor_ = static_cast<std::uint16_t>((divisor_ & 0x00FF) | (byte << 8));
        return;
      }
      // Enabling the THRE interrupt while THR is empty raises it even if
      // reading IIR acknowledged it before: not in the datasheet, but what
      // 16550s do and Linux's startup test checks (UART_BUG_THRE).
      if (byte & ~interrupt_enable_ & kIerThrEmpty) thre_pending_ = true;
      interrupt_enable_ = byte & kIerMask;
      break;
    // FCR. Changing the enable bit empties both FIFOs; the other bits are
    // written only with it set. The transmitter FIFO is always empty, so its
    // reset bit (2) and the DMA mode bit (3) change nothing.
    case kInterruptIdentity:
      if ((byte ^ fifo_control_) & kFcrEnableFifo) ResetReceiver();
      if (!(byte & kFcrEnableFifo)) {
        fifo_control_ = 0;
        break;
      }
      if (byte & kFcrResetReceiver) ResetReceiver();
      fifo_control_ = byte & (kFcrEnableFifo | kFcrTriggerMask);
      ServiceInput();
      break;
    case kLineControl: line_control_ = byte; return;
    case kModemControl: WriteModemControl(byte); return;
    case kScratch: scratch_ = byte; return;
    // LSR and MSR writes are factory-test only on the 16550A; ignore them.
    default: return;
  }
  UpdateIrq();
}

}  // namespace bt::devices
