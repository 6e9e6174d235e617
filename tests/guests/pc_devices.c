// The PC platform devices an OS probes, at the ports a PC has them: the 8042
// keyboard controller (self and interface tests, the command byte, the
// keyboard's replies with and without translation, its reset answered on
// IRQ1 through the PIC, the aux loopback and the mouse on IRQ12), PCI
// configuration mechanism #1 on bus 0, the RTC's periodic interrupt on IRQ8
// with Register C, ports 0x80 and 0x92; then a reset through the keyboard
// controller ends the run (btvm exits with status 7, QEMU with -no-reboot
// exits with 0).
//
// Not printed, because QEMU's PC differs from libbt's there: what firmware
// (SeaBIOS under QEMU) leaves in the command byte, the status register's
// system flag and the PCI command registers; bus 0 past its first two
// devices (QEMU has IDE, power management, VGA and a NIC there) and the
// header type's multifunction bit of 00:01.0 (the PIIX3's other functions).
#include "guest.h"
#include "idt.h"

enum {
  kMasterBase = 0x20,
  kSlaveBase = 0x28,
  kKeyboardIrq = 1,
  kRtcIrq = 8,
  kAuxIrq = 12,
  kCascadeIrq = 2,
  kClocksPerMs = 1193,  // PIT clocks
  // 8042.
  kKbcData = 0x60,
  kKbcStatus = 0x64,
  kKbcCommand = 0x64,
  kStatusOutputFull = 0x01,
  kStatusInputFull = 0x02,
  kStatusAuxData = 0x20,
  // Command byte: interrupts, system flag, interface disables, translation.
  kCbKeyboardInterrupt = 0x01,
  kCbAuxInterrupt = 0x02,
  kCbSystem = 0x04,
  kCbKeyboardDisabled = 0x10,
  kCbAuxDisabled = 0x20,
  kCbTranslate = 0x40,
  // PCI configuration mechanism #1.
  kPciAddress = 0xCF8,
  kPciData = 0xCFC,
  kPciEnable = 0x80000000u,
  // CMOS RTC.
  kCmosIndex = 0x70,
  kCmosData = 0x71,
  kRtcRegisterA = 0x0A,
  kRtcRegisterB = 0x0B,
  kRtcRegisterC = 0x0C,
  kRtcPeriodicEnable = 0x40,
  kRtcIrqFlag = 0x80,
  kRtcPeriodicFlag = 0x40,
};

// ---- 8042 ----

static void kbc_wait_writable(void) {
  while (guest_inb(kKbcStatus) & kStatusInputFull) {
  }
}

static void kbc_command(uint8_t command) {
  kbc_wait_writable();
  guest_outb(kKbcCommand, command);
}

static void kbc_write(uint8_t value) {
  kbc_wait_writable();
  guest_outb(kKbcData, value);
}

// The next byte of the output buffer, or -1 after 100 ms without one.
static int kbc_read(void) {
  for (int i = 0; i < 100 * 10; i++) {
    if (guest_inb(kKbcStatus) & kStatusOutputFull) return guest_inb(kKbcData);
    guest_pit_busy_wait(kClocksPerMs / 10);
  }
  return -1;
}

// Reads what the output buffer holds until it stays empty.
static void kbc_flush(void) {
  while (kbc_read() >= 0) {
  }
}

static uint8_t command_byte(void) {
  kbc_command(0x20);
  return (uint8_t)kbc_read();
}

static void set_command_byte(uint8_t value) {
  kbc_command(0x60);
  kbc_write(value);
}

// Sends `command` to the keyboard and reads `count` bytes of reply into
// `reply`, polling; prints them after `what`.
static void keyboard_polled(const char *what, uint8_t command, int *reply, unsigned count) {
  kbc_write(command);
  guest_printf("%s:", what);
  for (unsigned i = 0; i < count; i++) {
    reply[i] = kbc_read();
    guest_printf(" %02x", reply[i] & 0xFF);
  }
  guest_printf("\n");
}

static void test_controller(void) {
  kbc_command(0xAD);  // keyboard and aux interfaces off while probing
  kbc_command(0xA7);
  kbc_flush();
  kbc_command(0xAA);
  int self_test = kbc_read();
  kbc_command(0xAB);
  int keyboard_test = kbc_read();
  kbc_command(0xA9);
  int aux_test = kbc_read();
  guest_printf("i8042 self test %02x, keyboard interface %02x, aux interface %02x\n", self_test,
               keyboard_test, aux_test);
  check_eq("self test", 0x55, (uint32_t)self_test);
  check_eq("keyboard interface test", 0x00, (uint32_t)keyboard_test);
  check_eq("aux interface test", 0x00, (uint32_t)aux_test);

  uint8_t disables = command_byte() & (kCbKeyboardDisabled | kCbAuxDisabled);
  kbc_command(0xAE);
  uint8_t after_enable = command_byte() & (kCbKeyboardDisabled | kCbAuxDisabled);
  guest_printf("i8042 disable bits after 0xad/0xa7: %02x, after 0xae: %02x\n", disables,
               after_enable);
  check_eq("disable bits", kCbKeyboardDisabled | kCbAuxDisabled, disables);
  check_eq("disable bits after 0xae", kCbAuxDisabled, after_enable);

  const uint8_t written = kCbSystem | kCbAuxDisabled | kCbTranslate;
  set_command_byte(written);
  uint8_t read_back = command_byte();
  guest_printf("i8042 command byte: wrote %02x, read %02x\n", written, read_back);
  check_eq("command byte", written, read_back);
  check_eq("output buffer empty", 0, guest_inb(kKbcStatus) & kStatusOutputFull);
  check_group("i8042 controller commands");
}

static void test_keyboard_polled(void) {
  int reply[3];
  set_command_byte(kCbSystem | kCbAuxDisabled);  // no translation, no interrupts
  keyboard_polled("keyboard identify, untranslated", 0xF2, reply, 3);
  check_eq("ID, untranslated", 0xFAAB83, (uint32_t)(reply[0] << 16 | reply[1] << 8 | reply[2]));
  set_command_byte(kCbSystem | kCbAuxDisabled | kCbTranslate);
  keyboard_polled("keyboard identify, translated", 0xF2, reply, 3);
  check_eq("ID, translated", 0xFAAB41, (uint32_t)(reply[0] << 16 | reply[1] << 8 | reply[2]));
  keyboard_polled("keyboard echo", 0xEE, reply, 1);
  check_eq("echo", 0xEE, (uint32_t)reply[0]);
  keyboard_polled("keyboard set LEDs", 0xED, reply, 1);
  keyboard_polled("  and their argument", 0x00, reply + 1, 1);
  check_eq("LEDs acknowledged", 0xFAFA, (uint32_t)(reply[0] << 8 | reply[1]));
  check_group("keyboard replies, polled");
}

// What the IRQ1 and IRQ12 handlers read, one byte per interrupt.
static volatile uint8_t irq_bytes[8];
static volatile uint8_t irq_status[8];
static volatile unsigned irq_byte_count, keyboard_interrupts, aux_interrupts;

static void take_byte(void) {
  uint8_t status = guest_inb(kKbcStatus);
  if (!(status & kStatusOutputFull) || irq_byte_count == ARRAY_SIZE(irq_bytes)) return;
  irq_status[irq_byte_count] = status;
  irq_bytes[irq_byte_count++] = guest_inb(kKbcData);
}

static void keyboard_handler(struct guest_trap_frame *f) {
  (void)f;
  keyboard_interrupts++;
  take_byte();
  guest_pic_eoi(kKeyboardIrq);
}

static void aux_handler(struct guest_trap_frame *f) {
  (void)f;
  aux_interrupts++;
  take_byte();
  guest_pic_eoi(kAuxIrq);
}

// Waits with interrupts on, in hlt, until the handlers took `count` bytes
// or 200 ms passed.
static void wait_for_irq_bytes(unsigned count) {
  __asm__ volatile("sti" ::: "memory");
  for (int i = 0; i < 200 && irq_byte_count < count; i++) guest_pit_busy_wait(kClocksPerMs);
  __asm__ volatile("cli" ::: "memory");
}

static void reset_irq_bytes(void) { irq_byte_count = keyboard_interrupts = aux_interrupts = 0; }

static void test_interrupts(void) {
  guest_idt_set(kMasterBase + kKeyboardIrq, keyboard_handler, kGuestInterruptGate, 0);
  guest_idt_set(kSlaveBase + kAuxIrq - 8, aux_handler, kGuestInterruptGate, 0);
  guest_pic_mask(0xFFFF & ~(1u << kKeyboardIrq | 1u << kCascadeIrq | 1u << kAuxIrq));

  set_command_byte(kCbKeyboardInterrupt | kCbAuxInterrupt | kCbSystem | kCbTranslate);
  reset_irq_bytes();
  kbc_write(0xFF);  // keyboard reset
  wait_for_irq_bytes(2);
  guest_printf("keyboard reset: %u bytes %02x %02x, %u IRQ1, %u IRQ12\n", irq_byte_count,
               irq_bytes[0], irq_bytes[1], keyboard_interrupts, aux_interrupts);
  check_eq("reset reply", 0xFAAA, (uint32_t)(irq_bytes[0] << 8 | irq_bytes[1]));
  check_eq("IRQ1 per byte", 2, keyboard_interrupts);

  reset_irq_bytes();
  kbc_command(0xD3);  // aux loopback
  kbc_write(0x5A);
  wait_for_irq_bytes(1);
  guest_printf("aux loopback: %02x, status %02x, %u IRQ12, %u IRQ1\n", irq_bytes[0],
               irq_status[0] & (kStatusOutputFull | kStatusAuxData), aux_interrupts,
               keyboard_interrupts);
  check_eq("loopback byte", 0x5A, irq_bytes[0]);
  check_eq("aux data in status", kStatusOutputFull | kStatusAuxData,
           irq_status[0] & (kStatusOutputFull | kStatusAuxData));

  reset_irq_bytes();
  static const uint8_t mouse_commands[] = {0xF6, 0xF2, 0xE9};  // defaults, identify, status
  for (unsigned i = 0; i < ARRAY_SIZE(mouse_commands); i++) {
    kbc_command(0xD4);
    kbc_write(mouse_commands[i]);
  }
  wait_for_irq_bytes(7);
  guest_printf("mouse defaults, identify, status:");
  for (unsigned i = 0; i < irq_byte_count; i++) guest_printf(" %02x", irq_bytes[i]);
  guest_printf(" (%u IRQ12)\n", aux_interrupts);
  check_eq("mouse bytes", 7, irq_byte_count);
  check_eq("mouse identify", 0xFA00, (uint32_t)(irq_bytes[1] << 8 | irq_bytes[2]));
  check_eq("mouse status: 100 reports/s", 100, irq_bytes[6]);

  guest_pic_mask(0xFFFF);
  set_command_byte(kCbSystem | kCbAuxDisabled | kCbTranslate);
  check_group("keyboard on IRQ1 and aux on IRQ12 through the PIC");
}

// ---- PCI ----

static uint32_t pci_address(unsigned bus, unsigned device, unsigned function, unsigned reg) {
  return kPciEnable | bus << 16 | device << 11 | function << 8 | (reg & 0xFC);
}

static uint32_t pci_read(unsigned bus, unsigned device, unsigned function, unsigned reg) {
  guest_outl(kPciAddress, pci_address(bus, device, function, reg));
  return guest_inl(kPciData);
}

static void test_pci(void) {
  guest_outl(kPciAddress, kPciEnable);
  check_eq("address register", kPciEnable, guest_inl(kPciAddress));
  for (unsigned device = 0; device < 2; device++) {
    uint32_t id = pci_read(0, device, 0, 0x00);
    uint32_t class_revision = pci_read(0, device, 0, 0x08);
    uint32_t header = pci_read(0, device, 0, 0x0C) >> 16 & 0x7F;
    guest_printf("pci 00:%02x.0 %04x:%04x class %06x revision %02x header type %02x\n", device,
                 id & 0xFFFF, id >> 16, class_revision >> 8, class_revision & 0xFF, header);
  }
  check_eq("00:00.0", 0x12378086, pci_read(0, 0, 0, 0x00));
  check_eq("00:01.0", 0x70008086, pci_read(0, 1, 0, 0x00));
  check_eq("00:01.0 class", 0x060100, pci_read(0, 1, 0, 0x08) >> 8);

  // Bytes and words at every offset of the data window.
  guest_outl(kPciAddress, pci_address(0, 1, 0, 0x00));
  guest_printf("00:01.0 bytes %02x %02x %02x %02x, words %04x %04x\n", guest_inb(kPciData),
               guest_inb(kPciData + 1), guest_inb(kPciData + 2), guest_inb(kPciData + 3),
               guest_inw(kPciData), guest_inw(kPciData + 2));
  check_eq("device ID high byte", 0x70, guest_inb(kPciData + 3));
  check_eq("device ID word", 0x7000, guest_inw(kPciData + 2));

  // IDs are read-only.
  guest_outl(kPciAddress, pci_address(0, 0, 0, 0x00));
  guest_outl(kPciData, 0);
  check_eq("vendor and device ID after a write", 0x12378086, pci_read(0, 0, 0, 0x00));

  uint32_t absent_device = pci_read(0, 31, 0, 0x00);
  uint32_t absent_function = pci_read(0, 0, 5, 0x00);
  uint32_t absent_bus = pci_read(1, 0, 0, 0x00);
  guest_printf("absent 00:1f.0 %08x, 00:00.5 %08x, 01:00.0 %08x\n", absent_device, absent_function,
               absent_bus);
  check_eq("absent device", 0xFFFFFFFF, absent_device);
  check_eq("absent function", 0xFFFFFFFF, absent_function);
  check_eq("absent bus", 0xFFFFFFFF, absent_bus);
  guest_outl(kPciAddress, 0);
  check_group("PCI bus 0 through 0xcf8/0xcfc");
}

// ---- RTC ----

enum { kRtcInterrupts = 16 };
static volatile unsigned rtc_interrupts, rtc_without_flags;

static uint8_t cmos_read(uint8_t index) {
  guest_outb(kCmosIndex, index);
  return guest_inb(kCmosData);
}

static void cmos_write(uint8_t index, uint8_t value) {
  guest_outb(kCmosIndex, index);
  guest_outb(kCmosData, value);
}

static void rtc_handler(struct guest_trap_frame *f) {
  (void)f;
  rtc_interrupts++;
  // Reading C acknowledges the interrupt; IRQ8 stays high until it is read.
  uint8_t flags = cmos_read(kRtcRegisterC);
  if ((flags & (kRtcIrqFlag | kRtcPeriodicFlag)) != (kRtcIrqFlag | kRtcPeriodicFlag)) {
    rtc_without_flags++;
  }
  guest_pic_eoi(kRtcIrq);
}

static void test_rtc_periodic(void) {
  guest_idt_set(kSlaveBase + kRtcIrq - 8, rtc_handler, kGuestInterruptGate, 0);
  uint8_t register_b = cmos_read(kRtcRegisterB);
  cmos_write(kRtcRegisterA, 0x29);  // 32.768 kHz time base, rate 9: 128 Hz
  cmos_read(kRtcRegisterC);
  guest_pic_mask(0xFFFF & ~(1u << kCascadeIrq | 1u << kRtcIrq));
  cmos_write(kRtcRegisterB, register_b | kRtcPeriodicEnable);
  // 16 interrupts take 125 ms at 128 Hz. The rate itself is not checked:
  // on a busy host the emulator may run too late to see every period (the
  // chip then sets PF once), and the guest cannot tell how late it ran.
  __asm__ volatile("sti" ::: "memory");
  for (int i = 0; i < 2000 && rtc_interrupts < kRtcInterrupts; i++) {
    guest_pit_busy_wait(kClocksPerMs);
  }
  __asm__ volatile("cli" ::: "memory");
  cmos_write(kRtcRegisterB, register_b);
  guest_pic_mask(0xFFFF);
  cmos_read(kRtcRegisterC);
  check_true("16 RTC periodic interrupts within 2 s", rtc_interrupts >= kRtcInterrupts);
  check_eq("interrupts without IRQF and PF in register C", 0, rtc_without_flags);
  check_group("RTC periodic interrupts on IRQ8");
}

static void test_ports(void) {
  uint8_t post = guest_inb(0x80);
  uint8_t port_a = guest_inb(0x92);
  guest_printf("port 0x80 reads %02x, port 0x92 A20 %s\n", post, port_a & 0x02 ? "on" : "off");
  check_eq("port 0x80", 0xFF, post);
  check_group("ports 0x80 and 0x92");
}

int main(void) {
  guest_load_flat_gdt();
  guest_idt_init();
  guest_pic_remap(kMasterBase, kSlaveBase);
  test_controller();
  test_keyboard_polled();
  test_interrupts();
  test_pci();
  test_rtc_periodic();
  test_ports();
  if (check_finish() != 0) return 1;
  // Pulse the output port's reset line; the machine should not come back.
  kbc_command(0xFE);
  for (int i = 0; i < 100; i++) guest_pit_busy_wait(kClocksPerMs);
  guest_printf("FAIL: still running 100 ms after a reset through the keyboard controller\n");
  return 2;
}
