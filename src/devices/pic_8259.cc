#include "devices/pic_8259.h"

#include <bit>
#include <cassert>

namespace bt::devices {
namespace {

constexpr unsigned kCascadeIrq = 2;
constexpr std::uint8_t kCascadeBit = 1 << kCascadeIrq;
constexpr unsigned kSpuriousIrq = 7;

// Command port (offset 0) writes: bit 4 set is ICW1; otherwise bit 3 tells
// OCW3 (set) from OCW2 (clear). Datasheet, "Operation Command Words".
constexpr std::uint8_t kIcw1 = 0x10;
constexpr std::uint8_t kOcw3 = 0x08;
constexpr std::uint8_t kIcw1Icw4Needed = 0x01;
constexpr std::uint8_t kIcw1Single = 0x02;
constexpr std::uint8_t kIcw1LevelTriggered = 0x08;
constexpr std::uint8_t kIcw4Microprocessor = 0x01;
constexpr std::uint8_t kIcw4AutoEoi = 0x02;
constexpr std::uint8_t kIcw4BufferMaster = 0x04;
constexpr std::uint8_t kIcw4Buffered = 0x08;
constexpr std::uint8_t kIcw4SpecialFullyNested = 0x10;
constexpr std::uint8_t kOcw3ReadIsr = 0x01;
constexpr std::uint8_t kOcw3ReadRegister = 0x02;
constexpr std::uint8_t kOcw3Poll = 0x04;
constexpr std::uint8_t kOcw3SpecialMask = 0x20;
constexpr std::uint8_t kOcw3SetSpecialMask = 0x40;
constexpr std::uint8_t kPollInterrupt = 0x80;

// OCW2 bits 7-5 (R, SL, EOI).
enum Ocw2 : std::uint8_t {
  kClearRotateAutoEoi = 0,
  kNonSpecificEoi = 1,
  kNoOperation = 2,
  kSpecificEoi = 3,
  kSetRotateAutoEoi = 4,
  kRotateNonSpecificEoi = 5,
  kSetPriority = 6,
  kRotateSpecificEoi = 7,
};

// PIIX ELCR: IRQ0 (timer), IRQ1 (keyboard), IRQ2 (cascade), IRQ8 (RTC) and
// IRQ13 (FPU error) are wired edge-triggered; their bits read as zero.
constexpr std::uint8_t kMasterElcrMask = 0xF8;
constexpr std::uint8_t kSlaveElcrMask = 0xDE;

// The ports are one byte wide; a wider access touches the following ports
// one byte at a time, as on the ISA bus. Bytes past the range float high.
constexpr unsigned kChipPorts = 2;

}  // namespace

bool Pic8259Pair::Chip::LevelTriggered(unsigned irq) const {
  return level_triggered_mode || (elcr & (1u << irq)) != 0;
}

void Pic8259Pair::Chip::SetLine(unsigned irq, bool level) {
  const auto bit = static_cast<std::uint8_t>(1u << irq);
  if (level) {
    if (LevelTriggered(irq) || (lines & bit) == 0) irr |= bit;
    lines |= bit;
  } else {
    lines &= ~bit;
    if (LevelTriggered(irq)) irr &= ~bit;
  }
}

namespace {

// Priority of the highest-priority bit of `mask`, 0 (highest) to 7, or 8 when
// `mask` is empty, with IR `highest` at priority 0.
int Priority(std::uint8_t mask, unsigned highest) {
  return std::countr_zero(std::rotr(mask, static_cast<int>(highest)));
}

}  // namespace

int Pic8259Pair::Chip::Resolve() const {
  const unsigned highest = (lowest_priority + 1u) & 7;
  const int request = Priority(static_cast<std::uint8_t>(irr & ~imr), highest);
  if (request == 8) return -1;
  std::uint8_t in_service = isr;
  // Special mask mode: a masked level in service does not hold off lower
  // levels (datasheet, "Special Mask Mode").
  if (special_mask) in_service &= ~imr;
  // Special fully nested mode: the slave may interrupt again while the
  // cascade is in service; the slave's own ISR keeps its order.
  if (is_master && special_fully_nested) in_service &= ~kCascadeBit;
  if (request >= Priority(in_service, highest)) return -1;
  return static_cast<int>((static_cast<unsigned>(request) + highest) & 7);
}

void Pic8259Pair::Chip::Acknowledge(unsigned irq) {
  const auto bit = static_cast<std::uint8_t>(1u << irq);
  if (auto_eoi) {
    if (rotate_on_auto_eoi) lowest_priority = static_cast<std::uint8_t>(irq);
  } else {
    isr |= bit;
  }
  // A level-triggered request stays in IRR while the line is high; ISR keeps
  // it from interrupting again until the EOI.
  if (!LevelTriggered(irq)) irr &= ~bit;
}

void Pic8259Pair::Chip::WriteCommand(std::uint8_t value) {
  if (value & kIcw1) {
    // ICW1 resets the chip (datasheet, "Initialization Command Word 1"): the
    // edge sense is reset so an input that is already high must go low and
    // high again, IMR is cleared, IR7 gets the lowest priority, special mask
    // mode is off, reads select IRR, and ICW4's functions are cleared.
    icw4_needed = (value & kIcw1Icw4Needed) != 0;
    single = (value & kIcw1Single) != 0;
    level_triggered_mode = (value & kIcw1LevelTriggered) != 0;
    irr = 0;
    for (unsigned irq = 0; irq < 8; ++irq) {
      if (LevelTriggered(irq)) irr |= lines & (1u << irq);
    }
    isr = 0;
    imr = 0;
    lowest_priority = 7;
    special_mask = false;
    read_isr = false;
    poll = false;
    microprocessor_mode = false;
    auto_eoi = false;
    buffered = false;
    buffer_master = false;
    special_fully_nested = false;
    rotate_on_auto_eoi = false;
    init_step = InitStep::kIcw2;
    return;
  }
  if (value & kOcw3) {
    if (value & kOcw3Poll) poll = true;
    if (value & kOcw3ReadRegister) read_isr = (value & kOcw3ReadIsr) != 0;
    if (value & kOcw3SetSpecialMask) special_mask = (value & kOcw3SpecialMask) != 0;
    return;
  }
  const unsigned level = value & 7;
  switch (value >> 5) {
    case kClearRotateAutoEoi: rotate_on_auto_eoi = false; return;
    case kSetRotateAutoEoi: rotate_on_auto_eoi = true; return;
    case kNonSpecificEoi:
    case kRotateNonSpecificEoi: {
      // Ends the highest-priority level in service.
      const unsigned highest = (lowest_priority + 1u) & 7;
      const int priority = Priority(isr, highest);
      if (priority == 8) return;
      const unsigned irq = (static_cast<unsigned>(priority) + highest) & 7;
      isr &= ~(1u << irq);
      if ((value >> 5) == kRotateNonSpecificEoi) lowest_priority = static_cast<std::uint8_t>(irq);
      return;
    }
    case kSpecificEoi: isr &= ~(1u << level); return;
    case kRotateSpecificEoi:
      isr &= ~(1u << level);
      lowest_priority = static_cast<std::uint8_t>(level);
      return;
    case kSetPriority: lowest_priority = static_cast<std::uint8_t>(level); return;
    case kNoOperation:
    default: return;
  }
}

void Pic8259Pair::Chip::WriteData(std::uint8_t value) {
  switch (init_step) {
    case InitStep::kReady: imr = value; return;
    case InitStep::kIcw2:
      vector_base = value & 0xF8;
      if (!single) {
        init_step = InitStep::kIcw3;
      } else {
        init_step = icw4_needed ? InitStep::kIcw4 : InitStep::kReady;
      }
      return;
    case InitStep::kIcw3:
      icw3 = value;
      init_step = icw4_needed ? InitStep::kIcw4 : InitStep::kReady;
      return;
    case InitStep::kIcw4:
      microprocessor_mode = (value & kIcw4Microprocessor) != 0;
      auto_eoi = (value & kIcw4AutoEoi) != 0;
      buffer_master = (value & kIcw4BufferMaster) != 0;
      buffered = (value & kIcw4Buffered) != 0;
      special_fully_nested = (value & kIcw4SpecialFullyNested) != 0;
      init_step = InitStep::kReady;
      return;
  }
}

// With a poll pending (OCW3 P), the read is the INTA of the poll command and
// returns the poll word: bit 7 set if a request won, with its level in bits
// 0-2. The poll takes precedence over the IRR/ISR read select.
std::uint8_t Pic8259Pair::Chip::ReadCommand() {
  if (poll) {
    poll = false;
    const int irq = Resolve();
    if (irq < 0) return 0;
    Acknowledge(static_cast<unsigned>(irq));
    return static_cast<std::uint8_t>(kPollInterrupt | irq);
  }
  return read_isr ? isr : irr;
}

void Pic8259Pair::Chip::WriteElcr(std::uint8_t value) {
  elcr = value & elcr_mask;
  // Inputs that became level-triggered request exactly while their line is
  // high; inputs that became edge-triggered keep what they have.
  for (unsigned irq = 0; irq < 8; ++irq) {
    const auto bit = static_cast<std::uint8_t>(1u << irq);
    if (LevelTriggered(irq)) irr = static_cast<std::uint8_t>((irr & ~bit) | (lines & bit));
  }
}

Pic8259Pair::Pic8259Pair() {
  master_.is_master = true;
  master_.vector_base = 0x08;
  master_.icw3 = kCascadeBit;
  master_.elcr_mask = kMasterElcrMask;
  slave_.vector_base = 0x70;
  slave_.icw3 = kCascadeIrq;
  slave_.elcr_mask = kSlaveElcrMask;
}

bool Pic8259Pair::Cascaded() const { return !master_.single && (master_.icw3 & kCascadeBit) != 0; }

void Pic8259Pair::Update() {
  master_.SetLine(kCascadeIrq, slave_.Resolve() >= 0);
  const bool intr = master_.Resolve() >= 0;
  const bool rose = intr && !intr_;
  intr_ = intr;
  if (rose && listener_ != nullptr) listener_(listener_context_);
}

void Pic8259Pair::SetIrq(unsigned irq, bool level) {
  assert(irq < 16 && irq != kCascadeIrq && "IRQ2 is the cascade input");
  (irq < 8 ? master_ : slave_).SetLine(irq & 7, level);
  Update();
}

std::uint8_t Pic8259Pair::Acknowledge() {
  std::uint8_t vector;
  const int irq = master_.Resolve();
  if (irq < 0) {
    vector = master_.vector_base | kSpuriousIrq;
  } else {
    master_.Acknowledge(static_cast<unsigned>(irq));
    if (irq == static_cast<int>(kCascadeIrq) && Cascaded()) {
      const int slave_irq = slave_.Resolve();
      if (slave_irq < 0) {
        vector = slave_.vector_base | kSpuriousIrq;
      } else {
        slave_.Acknowledge(static_cast<unsigned>(slave_irq));
        vector = static_cast<std::uint8_t>(slave_.vector_base | slave_irq);
      }
      // The slave's INTR drops during the INTA cycle, so a request it still
      // has (auto-EOI, special mask mode) is a new edge at the master's IR2.
      master_.lines &= ~kCascadeBit;
    } else {
      vector = static_cast<std::uint8_t>(master_.vector_base | irq);
    }
  }
  // An INTR that is still asserted after the cycle counts as a new one.
  intr_ = false;
  Update();
  return vector;
}

std::uint32_t Pic8259Pair::ChipPorts::PortRead(std::uint16_t offset, unsigned size) {
  std::uint32_t value = 0;
  for (unsigned i = 0; i < size; ++i) {
    const unsigned port = offset + i;
    std::uint32_t byte = 0xFF;
    if (port == 0) {
      byte = chip_.ReadCommand();
      pair_.Update();  // a poll acknowledges
    } else if (port < kChipPorts) {
      byte = chip_.imr;
    }
    value |= byte << (8 * i);
  }
  return value;
}

void Pic8259Pair::ChipPorts::PortWrite(std::uint16_t offset, unsigned size, std::uint32_t value) {
  for (unsigned i = 0; i < size; ++i) {
    const unsigned port = offset + i;
    const auto byte = static_cast<std::uint8_t>(value >> (8 * i));
    if (port == 0) {
      chip_.WriteCommand(byte);
    } else if (port < kChipPorts) {
      chip_.WriteData(byte);
    }
  }
  pair_.Update();
}

std::uint32_t Pic8259Pair::ElcrPorts::PortRead(std::uint16_t offset, unsigned size) {
  std::uint32_t value = 0;
  for (unsigned i = 0; i < size; ++i) {
    const unsigned port = offset + i;
    const std::uint32_t byte = port == 0   ? pair_.master_.elcr
                               : port == 1 ? pair_.slave_.elcr
                                           : 0xFF;
    value |= byte << (8 * i);
  }
  return value;
}

void Pic8259Pair::ElcrPorts::PortWrite(std::uint16_t offset, unsigned size, std::uint32_t value) {
  for (unsigned i = 0; i < size; ++i) {
    const unsigned port = offset + i;
    const auto byte = static_cast<std::uint8_t>(value >> (8 * i));
    if (port == 0) pair_.master_.WriteElcr(byte);
    if (port == 1) pair_.slave_.WriteElcr(byte);
  }
  pair_.Update();
}

}  // namespace bt::devices
