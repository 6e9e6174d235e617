// Interrupt delivery for test guests: an IDT whose 256 gates lead through
// uniform entry stubs (idt_asm.S) to per-vector C handlers, and helpers for
// the 8259A PIC pair and the 8254 PIT (idt.c). The gates lead to ring-0 code
// at kGuestCodeSelector; an interrupt from ring 0 uses the stack it finds,
// one from an outer ring the stack the TSS holds for ring 0 (SDM Vol. 3A
// 6.12.1).
#pragma once

#include "guest.h"

// What a handler sees, lowest address first: the registers as pusha saved
// them, then what the stub pushed, then what the processor pushed (SDM
// Vol. 3A 6.12.1, figure 6-4). A handler may change eip, cs, eflags and every
// general register except esp: iret and popa load them back. The stub
// assumes the processor pushed an error code exactly for the vectors that
// have one as exceptions (8, 10-14, 17, 21, 29, 30), so a software `int n`
// to one of those vectors, which pushes none (SDM Vol. 3A 6.13), leaves a
// shifted frame: guests must not do that.
struct guest_trap_frame {
  uint32_t edi, esi, ebp, esp, ebx, edx, ecx, eax;  // esp: after the stub's pushes
  uint32_t vector;
  uint32_t error_code;  // 0 when the processor pushed none
  uint32_t eip, cs, eflags;
  // Pushed only on a switch from an outer ring ((cs & 3) != 0); above the
  // frame of an interrupt from ring 0 lies the interrupted stack instead.
  uint32_t user_esp, user_ss;
};

typedef void (*guest_trap_handler)(struct guest_trap_frame *frame);

// Gate types (SDM Vol. 3A 6.11): both are 32-bit gates; an interrupt gate
// also clears EFLAGS.IF on entry.
enum { kGuestInterruptGate = 0xE, kGuestTrapGate = 0xF };

// Loads an IDT with 256 present ring-0 interrupt gates whose handler reports
// the unexpected vector as a check failure and ends the run.
void guest_idt_init(void);
// Routes `vector` to `handler` through a present gate of `type` and `dpl`.
void guest_idt_set(uint8_t vector, guest_trap_handler handler, unsigned type, unsigned dpl);
// Routes `vector` to the task whose TSS descriptor `tss_selector` names,
// through a present task gate of DPL 0 (SDM Vol. 3A 6.11): the task runs
// with the interrupted one in its back link, and an error code on its stack.
void guest_idt_set_task_gate(uint8_t vector, uint16_t tss_selector);
// Marks the gate of `vector` not present: using it raises #NP (SDM Vol. 3A
// 6.12.1.1).
void guest_idt_clear(uint8_t vector);

static inline uint32_t guest_read_eflags(void) {
  uint32_t flags;
  __asm__ volatile("pushf; pop %0" : "=r"(flags));
  return flags;
}

enum { IF = 1 << 9, TF = 1 << 8, NT = 1 << 14, RF = 1 << 16 };

// 8259A pair (master at 0x20, slave at 0xA0, cascaded on IRQ2). IRQ n means
// master input n for n < 8 and slave input n - 8 otherwise.
// Initialises both (ICW1-ICW4: edge-triggered, 8086 mode, normal EOI) with
// IRQs 0-7 at master_base and 8-15 at slave_base, and leaves every IRQ
// masked (ICW1 clears the mask register).
void guest_pic_remap(uint8_t master_base, uint8_t slave_base);
// Non-specific EOI to the controller(s) that hold `irq` in service.
void guest_pic_eoi(unsigned irq);
// Bit n set masks IRQ n.
void guest_pic_mask(uint16_t mask);
// In-service and request registers of both controllers (OCW3 reads),
// IRQ n at bit n. The read register is left selecting the IRR.
uint16_t guest_pic_isr(void);
uint16_t guest_pic_irr(void);

// 8254: 1.193182 MHz input clock on all three channels; channel 0 drives
// IRQ0; channel 2's gate and output are bits 0 and 5 of port 0x61.
enum { kGuestPitHz = 1193182 };
// Channel 0 in mode 2 (rate generator) at the nearest divisor to `hz`.
void guest_pit_periodic(uint32_t hz);
// Channel 0 in mode 0 (interrupt on terminal count): OUT goes low, and rises
// (one IRQ0 edge) `count` clocks later.
void guest_pit_oneshot(uint16_t count);
// Counter latch command, then the latched count (low byte, high byte).
uint16_t guest_pit_read(unsigned channel);
// Read-back command latching the status byte of `channel`: bit 7 is OUT,
// bits 5-4 the access mode, bits 3-1 the mode, bit 0 BCD.
uint8_t guest_pit_status(unsigned channel);
enum { kGuestPitStatusOut = 1 << 7 };
// Busy-waits `count` PIT clocks on channel 2 in mode 0, polling its output
// through port 0x61 bit 5 (as Linux calibrates the TSC). Speaker stays off.
void guest_pit_busy_wait(uint16_t count);
