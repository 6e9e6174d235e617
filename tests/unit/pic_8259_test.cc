#include "devices/pic_8259.h"

#include <doctest/doctest.h>

#include <cstdint>

namespace bt::devices {
namespace {

constexpr std::uint16_t kCommand = 0, kData = 1;
// OCW2 commands and OCW3 register selects.
constexpr std::uint8_t kNonSpecificEoi = 0x20, kSpecificEoi = 0x60, kRotateNonSpecificEoi = 0xA0,
                       kSetPriority = 0xC0;
constexpr std::uint8_t kReadIrr = 0x0A, kReadIsr = 0x0B, kPoll = 0x0C;

struct PicFixture {
  Pic8259Pair pic;
  int intr_calls = 0;

  PicFixture() {
    pic.SetIntrListener([](void* context) { ++static_cast<PicFixture*>(context)->intr_calls; },
                        this);
  }

  void Master(std::uint16_t offset, std::uint8_t value) {
    pic.master_ports().PortWrite(offset, 1, value);
  }
  void Slave(std::uint16_t offset, std::uint8_t value) {
    pic.slave_ports().PortWrite(offset, 1, value);
  }
  std::uint8_t ReadMaster(std::uint16_t offset) {
    return static_cast<std::uint8_t>(pic.master_ports().PortRead(offset, 1));
  }
  std::uint8_t ReadSlave(std::uint16_t offset) {
    return static_cast<std::uint8_t>(pic.slave_ports().PortRead(offset, 1));
  }
  std::uint8_t MasterIsr() {
    Master(kCommand, kReadIsr);
    const std::uint8_t isr = ReadMaster(kCommand);
    Master(kCommand, kReadIrr);
    return isr;
  }
  std::uint8_t SlaveIsr() {
    Slave(kCommand, kReadIsr);
    const std::uint8_t isr = ReadSlave(kCommand);
    Slave(kCommand, kReadIrr);
    return isr;
  }
  void Pulse(unsigned irq) {
    pic.SetIrq(irq, true);
    pic.SetIrq(irq, false);
  }

  // arch/x86/kernel/i8259.c init_8259A(): mask everything, ICW1 0x11 (edge,
  // cascade, ICW4), ICW2 vector bases, ICW3 cascade on IR2 / slave ID 2,
  // ICW4 0x01 (8086, normal EOI), then restore the masks.
  void InitLikeLinux(std::uint8_t icw4 = 0x01, std::uint8_t master_mask = 0x00,
                     std::uint8_t slave_mask = 0x00) {
    Master(kData, 0xFF);
    Slave(kData, 0xFF);
    Master(kCommand, 0x11);
    Master(kData, 0x20);
    Master(kData, 0x04);
    Master(kData, icw4);
    Slave(kCommand, 0x11);
    Slave(kData, 0x28);
    Slave(kData, 0x02);
    Slave(kData, 0x01);
    Master(kData, master_mask);
    Slave(kData, slave_mask);
  }
};

TEST_CASE_FIXTURE(PicFixture, "PIC powers up masked with the BIOS vector bases") {
  CHECK(ReadMaster(kData) == 0xFF);
  CHECK(ReadSlave(kData) == 0xFF);
  pic.SetIrq(0, true);
  CHECK_FALSE(pic.InterruptPending());
  CHECK(intr_calls == 0);
  // Unmasking lets the latched edge through.
  Master(kData, 0xFE);
  CHECK(pic.InterruptPending());
  CHECK(intr_calls == 1);
  CHECK(pic.Acknowledge() == 0x08);
}

TEST_CASE_FIXTURE(PicFixture, "PIC takes the BIOS init sequence") {
  Master(kCommand, 0x11);
  Master(kData, 0x08);
  Master(kData, 0x04);
  Master(kData, 0x01);
  Slave(kCommand, 0x11);
  Slave(kData, 0x70);
  Slave(kData, 0x02);
  Slave(kData, 0x01);
  // ICW1 cleared the masks.
  CHECK(ReadMaster(kData) == 0x00);
  CHECK(ReadSlave(kData) == 0x00);
  Pulse(1);
  CHECK(pic.Acknowledge() == 0x09);
  Master(kCommand, kNonSpecificEoi);
  Pulse(8);
  CHECK(pic.Acknowledge() == 0x70);
  Pulse(14);
  Slave(kCommand, kNonSpecificEoi);
  Master(kCommand, kNonSpecificEoi);
  CHECK(pic.Acknowledge() == 0x76);
}

TEST_CASE_FIXTURE(PicFixture, "PIC takes Linux's init sequence and mask probe") {
  InitLikeLinux(0x01, 0xFB, 0xFF);
  // probe_8259A(): the mask reads back.
  CHECK(ReadMaster(kData) == 0xFB);
  CHECK(ReadSlave(kData) == 0xFF);
  Master(kData, 0xFA);  // unmask the timer
  pic.SetIrq(0, true);
  CHECK(pic.InterruptPending());
  CHECK(pic.Acknowledge() == 0x20);
  CHECK(MasterIsr() == 0x01);
  // mask_and_ack_8259A(): specific EOI.
  Master(kCommand, kSpecificEoi | 0);
  CHECK(MasterIsr() == 0x00);
  CHECK_FALSE(pic.InterruptPending());
}

TEST_CASE_FIXTURE(PicFixture, "PIC masking holds requests back until unmasked") {
  InitLikeLinux(0x01, 0xFF, 0xFF);
  Pulse(3);
  Pulse(10);
  CHECK_FALSE(pic.InterruptPending());
  CHECK(ReadMaster(kCommand) == 0x08);  // IRR shows masked requests
  Master(kData, 0xFB);                  // cascade open, slave still masked
  CHECK_FALSE(pic.InterruptPending());
  Slave(kData, 0xFB);  // IRQ10
  CHECK(pic.InterruptPending());
  CHECK(pic.Acknowledge() == 0x2A);
}

TEST_CASE_FIXTURE(PicFixture, "PIC serves simultaneous requests in priority order") {
  InitLikeLinux();
  Pulse(5);
  Pulse(1);
  Pulse(3);
  CHECK(ReadMaster(kCommand) == 0x2A);
  CHECK(pic.Acknowledge() == 0x21);
  // IRQ3 and IRQ5 have lower priority than IRQ1 in service.
  CHECK_FALSE(pic.InterruptPending());
  const int calls = intr_calls;
  Master(kCommand, kNonSpecificEoi);
  CHECK(pic.InterruptPending());
  CHECK(intr_calls == calls + 1);
  CHECK(pic.Acknowledge() == 0x23);
  Master(kCommand, kNonSpecificEoi);
  CHECK(pic.Acknowledge() == 0x25);
  Master(kCommand, kNonSpecificEoi);
  CHECK_FALSE(pic.InterruptPending());
  CHECK(MasterIsr() == 0);
}

TEST_CASE_FIXTURE(PicFixture, "PIC nests a higher-priority interrupt inside one in service") {
  InitLikeLinux();
  Pulse(4);
  CHECK(pic.Acknowledge() == 0x24);
  Pulse(6);  // lower: waits
  CHECK_FALSE(pic.InterruptPending());
  Pulse(1);  // higher: interrupts the IRQ4 handler
  CHECK(pic.InterruptPending());
  CHECK(pic.Acknowledge() == 0x21);
  CHECK(MasterIsr() == 0x12);
  // A non-specific EOI ends the highest level in service, the nested one.
  Master(kCommand, kNonSpecificEoi);
  CHECK(MasterIsr() == 0x10);
  CHECK_FALSE(pic.InterruptPending());
  Master(kCommand, kNonSpecificEoi);
  CHECK(pic.Acknowledge() == 0x26);
}

TEST_CASE_FIXTURE(PicFixture, "PIC delivers a slave IRQ through the cascade and needs both EOIs") {
  InitLikeLinux();
  pic.SetIrq(12, true);
  CHECK(pic.InterruptPending());
  CHECK(ReadMaster(kCommand) == 0x04);  // IR2 requests for the slave
  CHECK(pic.Acknowledge() == 0x2C);
  CHECK(MasterIsr() == 0x04);
  CHECK(SlaveIsr() == 0x10);
  // The cascade in service holds off the lower master levels.
  Pulse(3);
  CHECK_FALSE(pic.InterruptPending());
  Slave(kCommand, kSpecificEoi | 4);
  CHECK_FALSE(pic.InterruptPending());
  Master(kCommand, kSpecificEoi | 2);
  CHECK(MasterIsr() == 0);
  CHECK(SlaveIsr() == 0);
  CHECK(pic.Acknowledge() == 0x23);
  // Slave IRQs rank at IR2: above IRQ3, below IRQ1.
  Master(kCommand, kNonSpecificEoi);
  Pulse(3);
  Pulse(9);
  Pulse(1);
  CHECK(pic.Acknowledge() == 0x21);
  Master(kCommand, kNonSpecificEoi);
  CHECK(pic.Acknowledge() == 0x29);
  Slave(kCommand, kNonSpecificEoi);
  Master(kCommand, kNonSpecificEoi);
  CHECK(pic.Acknowledge() == 0x23);
}

TEST_CASE_FIXTURE(PicFixture, "PIC in auto-EOI mode sets no ISR bit") {
  InitLikeLinux(0x03);  // Linux's init_8259A(auto_eoi = 1)
  Pulse(4);
  Pulse(6);
  CHECK(pic.Acknowledge() == 0x24);
  CHECK(MasterIsr() == 0);
  // No EOI needed: the next request is already pending, and an Acknowledge
  // that leaves INTR asserted tells the listener again.
  CHECK(pic.InterruptPending());
  const int calls = intr_calls;
  CHECK(pic.Acknowledge() == 0x26);
  CHECK_FALSE(pic.InterruptPending());
  Pulse(3);
  CHECK(intr_calls == calls + 1);
}

TEST_CASE_FIXTURE(PicFixture, "PIC answers INTA with spurious IRQ7 when the request went away") {
  InitLikeLinux();
  // A level-triggered request that drops between INTR and INTA.
  pic.elcr_ports().PortWrite(0, 1, 0x20);  // IRQ5 level-triggered
  pic.SetIrq(5, true);
  CHECK(pic.InterruptPending());
  pic.SetIrq(5, false);
  CHECK(pic.Acknowledge() == 0x27);
  CHECK(MasterIsr() == 0);  // no ISR bit for a spurious interrupt
  // A request masked between INTR and INTA.
  Pulse(3);
  CHECK(pic.InterruptPending());
  Master(kData, 0x08);
  CHECK(pic.Acknowledge() == 0x27);
  CHECK(MasterIsr() == 0);
  // Nothing pending at all.
  CHECK(pic.Acknowledge() == 0x27);
  // A real IRQ7 is told apart by its ISR bit, as Linux's handler does.
  Pulse(7);
  CHECK(pic.Acknowledge() == 0x27);
  CHECK(MasterIsr() == 0x80);
}

TEST_CASE_FIXTURE(PicFixture, "PIC answers spurious IRQ15 when the slave's request went away") {
  InitLikeLinux();
  pic.elcr_ports().PortWrite(1, 1, 0x04);  // IRQ10 level-triggered
  pic.SetIrq(10, true);
  CHECK(pic.InterruptPending());
  pic.SetIrq(10, false);
  // The master latched the cascade's edge and asks the slave, which has
  // nothing: IRQ15's vector, the master's IR2 in service, the slave's not.
  CHECK(pic.Acknowledge() == 0x2F);
  CHECK(MasterIsr() == 0x04);
  CHECK(SlaveIsr() == 0x00);
  Master(kCommand, kSpecificEoi | 2);
  CHECK(MasterIsr() == 0);
  CHECK_FALSE(pic.InterruptPending());
}

TEST_CASE_FIXTURE(PicFixture, "PIC reads IRR or ISR as OCW3 selects") {
  InitLikeLinux();
  Pulse(1);
  Pulse(6);
  CHECK(ReadMaster(kCommand) == 0x42);  // IRR after ICW1
  CHECK(pic.Acknowledge() == 0x21);
  Master(kCommand, kReadIsr);
  CHECK(ReadMaster(kCommand) == 0x02);
  CHECK(ReadMaster(kCommand) == 0x02);  // the select sticks
  CHECK(ReadMaster(kData) == 0x00);     // the data port is always IMR
  Master(kCommand, kReadIrr);
  CHECK(ReadMaster(kCommand) == 0x40);
  // OCW3 without RR keeps the selection.
  Master(kCommand, 0x08);
  CHECK(ReadMaster(kCommand) == 0x40);
}

TEST_CASE_FIXTURE(PicFixture, "PIC poll command acknowledges through a read") {
  InitLikeLinux(0x01, 0xFF, 0xFF);  // polled systems keep INTR masked
  Master(kData, 0xF7);
  Pulse(3);
  Master(kCommand, kPoll);
  CHECK(ReadMaster(kCommand) == 0x83);
  CHECK(MasterIsr() == 0x08);
  CHECK(ReadMaster(kCommand) == 0x00);  // the poll was used up: IRR again
  Master(kCommand, kPoll);
  CHECK(ReadMaster(kCommand) == 0x00);  // nothing to report
}

TEST_CASE_FIXTURE(PicFixture, "PIC level-triggered inputs re-request while held") {
  InitLikeLinux();
  pic.elcr_ports().PortWrite(0, 2, 0xFFFF);
  // The PIIX's timer, keyboard, cascade, RTC and FPU inputs stay edge.
  CHECK(pic.elcr_ports().PortRead(0, 1) == 0xF8);
  CHECK(pic.elcr_ports().PortRead(1, 1) == 0xDE);
  pic.elcr_ports().PortWrite(0, 1, 0x00);
  pic.elcr_ports().PortWrite(1, 1, 0x08);  // IRQ11
  CHECK(pic.elcr_ports().PortRead(0, 2) == 0x0800);

  pic.SetIrq(11, true);
  CHECK(pic.Acknowledge() == 0x2B);
  CHECK_FALSE(pic.InterruptPending());
  Slave(kCommand, kNonSpecificEoi);
  Master(kCommand, kNonSpecificEoi);
  // Still high: requests again.
  CHECK(pic.InterruptPending());
  CHECK(pic.Acknowledge() == 0x2B);
  pic.SetIrq(11, false);
  Slave(kCommand, kNonSpecificEoi);
  Master(kCommand, kNonSpecificEoi);
  CHECK_FALSE(pic.InterruptPending());
}

TEST_CASE_FIXTURE(PicFixture, "PIC edge-triggered input needs a new rising edge") {
  InitLikeLinux();
  pic.SetIrq(4, true);
  CHECK(pic.Acknowledge() == 0x24);
  Master(kCommand, kNonSpecificEoi);
  pic.SetIrq(4, true);  // still high: no new edge
  CHECK_FALSE(pic.InterruptPending());
  pic.SetIrq(4, false);
  pic.SetIrq(4, true);
  CHECK(pic.InterruptPending());
  // An edge that arrives while its level is in service waits for the EOI.
  CHECK(pic.Acknowledge() == 0x24);
  pic.SetIrq(4, false);
  Pulse(4);
  CHECK_FALSE(pic.InterruptPending());
  Master(kCommand, kNonSpecificEoi);
  CHECK(pic.Acknowledge() == 0x24);
}

TEST_CASE_FIXTURE(PicFixture, "PIC rotation makes the serviced level the lowest") {
  InitLikeLinux();
  Pulse(1);
  CHECK(pic.Acknowledge() == 0x21);
  Master(kCommand, kRotateNonSpecificEoi);  // IR1 lowest, IR2 highest
  Pulse(1);
  Pulse(5);
  CHECK(pic.Acknowledge() == 0x25);
  Master(kCommand, kNonSpecificEoi);
  CHECK(pic.Acknowledge() == 0x21);
  Master(kCommand, kNonSpecificEoi);
  // Set priority: IR7 lowest again, the fixed order.
  Master(kCommand, kSetPriority | 7);
  Pulse(5);
  Pulse(1);
  CHECK(pic.Acknowledge() == 0x21);
}

TEST_CASE_FIXTURE(PicFixture, "PIC special mask mode lets lower levels through") {
  InitLikeLinux();
  Pulse(3);
  CHECK(pic.Acknowledge() == 0x23);
  Master(kData, 0x08);     // mask the level in service
  Master(kCommand, 0x68);  // OCW3: set special mask mode
  Pulse(6);
  CHECK(pic.InterruptPending());
  CHECK(pic.Acknowledge() == 0x26);
  Master(kCommand, 0x48);  // reset special mask mode
  CHECK(MasterIsr() == 0x48);
}

TEST_CASE_FIXTURE(PicFixture, "PIC special fully nested mode lets the slave nest") {
  InitLikeLinux(0x11);  // ICW4: 8086, SFNM
  pic.SetIrq(12, true);
  CHECK(pic.Acknowledge() == 0x2C);
  // A higher slave level interrupts the slave handler despite master IR2.
  pic.SetIrq(9, true);
  CHECK(pic.InterruptPending());
  CHECK(pic.Acknowledge() == 0x29);
  CHECK(SlaveIsr() == 0x12);
  // Lower slave levels still wait.
  pic.SetIrq(13, true);
  CHECK_FALSE(pic.InterruptPending());
}

TEST_CASE_FIXTURE(PicFixture, "PIC ICW1 restarts initialization at any time") {
  InitLikeLinux();
  Pulse(3);
  CHECK(pic.Acknowledge() == 0x23);
  Pulse(5);
  // Single mode, no ICW4: ICW2 then ready; ISR, IRR and IMR are cleared.
  Master(kCommand, 0x12);
  Master(kData, 0x40);
  Master(kData, 0x3F);  // OCW1 now, not ICW3
  CHECK(ReadMaster(kData) == 0x3F);
  CHECK(MasterIsr() == 0);
  CHECK(ReadMaster(kCommand) == 0);
  Pulse(6);
  CHECK(pic.Acknowledge() == 0x46);
}

}  // namespace
}  // namespace bt::devices
