// The PC's pair of 8259A programmable interrupt controllers (Intel 8259A
// datasheet) and the PIIX edge/level control registers (ELCR) in front of them.
//
// The slave's INTR output is wired to the master's IR2, as on every PC/AT.
// Emulated: the ICW1-ICW4 initialization sequence (single/cascade, the ICW1
// LTIM bit, ICW4's 8086 mode, auto-EOI, buffered mode and SFNM bits), OCW1
// masks, every OCW2 command (non-specific/specific EOI, the rotations, set
// priority, rotate in auto-EOI), OCW3 (IRR/ISR read select, poll, special
// mask mode), priority resolution with rotation, special fully nested mode on
// the master, spurious IRQ7/IRQ15, and the ELCR (ports 0x4D0/0x4D1) with the
// PIIX's reserved bits (IRQ0-2, IRQ8 and IRQ13 are always edge-triggered).
//
// Left out or simplified, because no x86 guest can tell:
// - MCS-80/85 mode: vectors are always delivered the 8086 way (ICW2 & 0xF8 |
//   IR level); the ICW4 uPM bit and ICW1 ADI bit are stored and ignored.
// - Buffered mode and the master/slave pin only matter on a real bus; stored.
// - The cascade is fixed on IR2; ICW3 is stored, and the master asks the
//   slave for the vector when it is not in single mode and ICW3 bit 2 is set.
// - Edge-triggered requests stay latched in IRR once the edge is seen: a line
//   that falls again before the INTA cycle does not withdraw its request, as
//   it would on the chip. The emulated CPU answers at block boundaries and
//   the PIT catches up on time in jumps, so a short pulse (and the low half
//   of a mode 3 square wave) would otherwise lose timer ticks. A request still
//   disappears when it is masked before INTA, when a level-triggered line
//   drops, or when the slave's request goes away after the master latched IR2,
//   and the INTA cycle then returns the spurious IRQ7 / IRQ15 vector.
//
// Power-on state: the 8259A's is undefined and there is no BIOS here, so the
// chips start as a PC BIOS leaves them (vector bases 0x08 and 0x70, cascade
// on IR2, 8086 mode) except that every input is masked, so that a guest which
// never programs the PICs gets no interrupts on vectors that are CPU
// exceptions.
//
// Not thread-safe: every call comes from the thread that runs the guest.
#pragma once

#include <bt/port_device.h>

#include <cstdint>

namespace bt::devices {

class Pic8259Pair {
 public:
  // Called when INTR may have been asserted; see SetIntrListener.
  using IntrListener = void (*)(void* context);

  Pic8259Pair();
  Pic8259Pair(const Pic8259Pair&) = delete;
  Pic8259Pair& operator=(const Pic8259Pair&) = delete;

  // Register each at its own base (layout.h): the master's command/data pair
  // (0x20), the slave's (0xA0) and the two ELCR bytes (0x4D0).
  PortDevice& master_ports() { return master_ports_; }
  PortDevice& slave_ports() { return slave_ports_; }
  PortDevice& elcr_ports() { return elcr_ports_; }

  // Drives input line `irq` (0-15, not 2, which is the cascade; PC IRQ2
  // devices sit on IRQ9). An edge-triggered input requests on a rising edge,
  // a level-triggered one (ELCR or ICW1 LTIM) requests while high.
  void SetIrq(unsigned irq, bool level);

  // The master's INTR output: an unmasked request with higher priority than
  // every level in service.
  bool InterruptPending() const { return intr_; }

  // The INTA cycle: returns the vector, moves the winning request from IRR to
  // ISR (on both chips for a slave request; not at all in auto-EOI mode).
  // Returns the spurious vector (IRQ7 of the master, or IRQ15 when the
  // master picked the cascade) when no request is left.
  std::uint8_t Acknowledge();

  // `listener` is called (with `context`) whenever INTR is asserted: when it
  // rises, and after an Acknowledge that leaves another request pending. It
  // may be called when nothing changed; it must not call back into the PIC.
  void SetIntrListener(IntrListener listener, void* context) {
    listener_ = listener;
    listener_context_ = context;
  }

 private:
  // One 8259A. Public fields: the pair reaches into both chips.
  struct Chip {
    enum class InitStep : std::uint8_t { kReady, kIcw2, kIcw3, kIcw4 };

    bool LevelTriggered(unsigned irq) const;
    void SetLine(unsigned irq, bool level);
    // The IR level that wins priority resolution, or -1 when none may
    // interrupt.
    int Resolve() const;
    // Moves `irq` from IRR to ISR for an INTA cycle or poll.
    void Acknowledge(unsigned irq);
    void WriteCommand(std::uint8_t value);  // ICW1, OCW2, OCW3
    void WriteData(std::uint8_t value);     // ICW2-ICW4, OCW1
    std::uint8_t ReadCommand();             // IRR, ISR or the poll word
    void WriteElcr(std::uint8_t value);

    std::uint8_t irr = 0;
    std::uint8_t isr = 0;
    std::uint8_t imr = 0xFF;
    std::uint8_t lines = 0;  // input levels, for edge detection
    std::uint8_t elcr = 0;
    std::uint8_t elcr_mask = 0;  // the ELCR bits that exist
    bool is_master = false;      // special fully nested mode applies
    std::uint8_t vector_base = 0;
    std::uint8_t icw3 = 0;
    // Rotation: IR level `lowest_priority + 1` (mod 8) has the highest
    // priority; 7 gives the fixed order IR0 > IR1 > ... > IR7.
    std::uint8_t lowest_priority = 7;
    InitStep init_step = InitStep::kReady;
    bool single = false;
    bool icw4_needed = false;
    bool level_triggered_mode = false;  // ICW1 LTIM
    bool microprocessor_mode = true;    // ICW4 uPM (8086)
    bool auto_eoi = false;
    bool buffered = false;
    bool buffer_master = false;
    bool special_fully_nested = false;
    bool rotate_on_auto_eoi = false;
    bool special_mask = false;
    bool read_isr = false;
    bool poll = false;
  };

  class ChipPorts final : public PortDevice {
   public:
    ChipPorts(Pic8259Pair& pair, Chip& chip) : pair_(pair), chip_(chip) {}
    std::uint32_t PortRead(std::uint16_t offset, unsigned size) override;
    void PortWrite(std::uint16_t offset, unsigned size, std::uint32_t value) override;

   private:
    Pic8259Pair& pair_;
    Chip& chip_;
  };

  class ElcrPorts final : public PortDevice {
   public:
    explicit ElcrPorts(Pic8259Pair& pair) : pair_(pair) {}
    std::uint32_t PortRead(std::uint16_t offset, unsigned size) override;
    void PortWrite(std::uint16_t offset, unsigned size, std::uint32_t value) override;

   private:
    Pic8259Pair& pair_;
  };

  bool Cascaded() const;
  // Feeds the slave's INTR into the master's IR2, recomputes INTR and calls
  // the listener if it rose. Called after every change of state.
  void Update();

  Chip master_;
  Chip slave_;
  ChipPorts master_ports_{*this, master_};
  ChipPorts slave_ports_{*this, slave_};
  ElcrPorts elcr_ports_{*this};
  bool intr_ = false;
  IntrListener listener_ = nullptr;
  void* listener_context_ = nullptr;
};

}  // namespace bt::devices
