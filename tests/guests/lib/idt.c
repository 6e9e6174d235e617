// IDT, 8259A PIC and 8254 PIT helpers for test guests (see idt.h).
#include "idt.h"

// ---- IDT ----

// 32-bit interrupt or trap gate, or a task gate, whose selector is a TSS's
// and whose offset is unused (SDM Vol. 3A 6.11, figure 6-2).
struct gate {
  uint16_t offset_low, selector;
  uint8_t reserved, flags;  // flags: P, DPL, 0, type
  uint16_t offset_high;
};

enum { kVectors = 256, kStubSize = 16, kGatePresent = 0x80, kTaskGateType = 0x5 };

extern const char guest_idt_stubs[];  // idt_asm.S
void guest_trap_dispatch(struct guest_trap_frame *frame);

static struct gate idt[kVectors] __attribute__((aligned(8)));
static guest_trap_handler handlers[kVectors];

static void write_gate(uint8_t vector, unsigned type, unsigned dpl, int present) {
  uint32_t offset = (uint32_t)(uintptr_t)(guest_idt_stubs + kStubSize * vector);
  idt[vector] =
      (struct gate){(uint16_t)offset, kGuestCodeSelector, 0,
                    (uint8_t)((present ? kGatePresent : 0) | (dpl & 3) << 5 | (type & 0xF)),
                    (uint16_t)(offset >> 16)};
}

static void unexpected_vector(struct guest_trap_frame *f) {
  check_fail("unexpected vector %u, error code %x, eip %08x", f->vector, f->error_code, f->eip);
  guest_exit(check_finish());
}

void guest_trap_dispatch(struct guest_trap_frame *frame) {
  guest_trap_handler handler = handlers[frame->vector & 0xFF];
  (handler ? handler : unexpected_vector)(frame);
}

void guest_idt_init(void) {
  for (int v = 0; v < kVectors; v++) {
    handlers[v] = 0;
    write_gate((uint8_t)v, kGuestInterruptGate, 0, 1);
  }
  struct __attribute__((packed)) {
    uint16_t limit;
    uint32_t base;
  } idtr = {sizeof(idt) - 1, (uint32_t)(uintptr_t)idt};
  __asm__ volatile("lidt %0" : : "m"(idtr) : "memory");
}

void guest_idt_set(uint8_t vector, guest_trap_handler handler, unsigned type, unsigned dpl) {
  handlers[vector] = handler;
  write_gate(vector, type, dpl, 1);
}

void guest_idt_set_task_gate(uint8_t vector, uint16_t tss_selector) {
  handlers[vector] = 0;
  idt[vector] = (struct gate){0, tss_selector, 0, kGatePresent | kTaskGateType, 0};
}

void guest_idt_clear(uint8_t vector) {
  handlers[vector] = 0;
  write_gate(vector, kGuestInterruptGate, 0, 0);
}

// ---- 8259A PIC ----
// The controllers are programmed back to back, without the I/O delays that
// 1980s boards needed between accesses.

enum {
  kPic1Command = 0x20,
  kPic1Data = 0x21,
  kPic2Command = 0xA0,
  kPic2Data = 0xA1,
  kIcw1Init = 0x11,  // ICW1: initialise, edge-triggered, cascade, ICW4 follows
  kIcw4Mode8086 = 0x01,
  kOcw2Eoi = 0x20,  // non-specific EOI
  kOcw3ReadIrr = 0x0A,
  kOcw3ReadIsr = 0x0B,
};

void guest_pic_remap(uint8_t master_base, uint8_t slave_base) {
  guest_outb(kPic1Command, kIcw1Init);
  guest_outb(kPic2Command, kIcw1Init);
  guest_outb(kPic1Data, master_base);  // ICW2: vector of IRQ0
  guest_outb(kPic2Data, slave_base);   // ICW2: vector of IRQ8
  guest_outb(kPic1Data, 1 << 2);       // ICW3: a slave on input 2
  guest_outb(kPic2Data, 2);            // ICW3: slave identity 2
  guest_outb(kPic1Data, kIcw4Mode8086);
  guest_outb(kPic2Data, kIcw4Mode8086);
  guest_pic_mask(0xFFFF);
}

void guest_pic_eoi(unsigned irq) {
  if (irq >= 8) guest_outb(kPic2Command, kOcw2Eoi);
  guest_outb(kPic1Command, kOcw2Eoi);
}

void guest_pic_mask(uint16_t mask) {
  guest_outb(kPic1Data, (uint8_t)mask);
  guest_outb(kPic2Data, (uint8_t)(mask >> 8));
}

static uint16_t read_pic_register(uint8_t ocw3) {
  guest_outb(kPic1Command, ocw3);
  guest_outb(kPic2Command, ocw3);
  uint16_t value = (uint16_t)(guest_inb(kPic1Command) | guest_inb(kPic2Command) << 8);
  if (ocw3 != kOcw3ReadIrr) {
    guest_outb(kPic1Command, kOcw3ReadIrr);
    guest_outb(kPic2Command, kOcw3ReadIrr);
  }
  return value;
}

uint16_t guest_pic_isr(void) { return read_pic_register(kOcw3ReadIsr); }
uint16_t guest_pic_irr(void) { return read_pic_register(kOcw3ReadIrr); }

// ---- 8254 PIT ----

enum {
  kPitChannel0 = 0x40,
  kPitCommand = 0x43,
  kPitAccessLoHi = 3 << 4,
  kPitMode0 = 0 << 1,  // interrupt on terminal count
  kPitMode2 = 2 << 1,  // rate generator
  kPortB = 0x61,       // bit 0: channel 2 gate, bit 1: speaker, bit 5: OUT2
  kPortBGate2 = 1 << 0,
  kPortBSpeaker = 1 << 1,
  kPortBOut2 = 1 << 5,
};

static void pit_program(unsigned channel, unsigned mode, uint16_t count) {
  guest_outb(kPitCommand, (uint8_t)(channel << 6 | kPitAccessLoHi | mode));
  guest_outb((uint16_t)(kPitChannel0 + channel), (uint8_t)count);
  guest_outb((uint16_t)(kPitChannel0 + channel), (uint8_t)(count >> 8));
}

void guest_pit_periodic(uint32_t hz) {
  uint32_t divisor = (kGuestPitHz + hz / 2) / hz;
  if (divisor > 0xFFFF) divisor = 0;  // 0 means 65536
  pit_program(0, kPitMode2, (uint16_t)divisor);
}

void guest_pit_oneshot(uint16_t count) { pit_program(0, kPitMode0, count); }

uint16_t guest_pit_read(unsigned channel) {
  guest_outb(kPitCommand, (uint8_t)(channel << 6));  // counter latch command
  uint8_t low = guest_inb((uint16_t)(kPitChannel0 + channel));
  uint8_t high = guest_inb((uint16_t)(kPitChannel0 + channel));
  return (uint16_t)(low | high << 8);
}

uint8_t guest_pit_status(unsigned channel) {
  // Read-back (11b), COUNT=1: no count latch, STATUS=0: latch the status.
  guest_outb(kPitCommand, (uint8_t)(0xE0 | 2 << channel));
  return guest_inb((uint16_t)(kPitChannel0 + channel));
}

void guest_pit_busy_wait(uint16_t count) {
  guest_outb(kPortB, (uint8_t)((guest_inb(kPortB) & ~kPortBSpeaker) | kPortBGate2));
  pit_program(2, kPitMode0, count);
  while (!(guest_inb(kPortB) & kPortBOut2)) {
  }
}
