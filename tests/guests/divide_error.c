// Precise #DE: a division by zero must be delivered through the guest's IDT
// with the address of the div itself as the saved EIP and every register as
// it was before the div. The guest prints where it expects the fault first,
// so the harness can also accept an engine that stops at the fault instead
// of delivering it (run_guest.cmake). No iret: the handler ends the run.
#include "guest.h"

void trigger_de(void);
void de_entry(void);
void unexpected_entry(void);
extern const char de_div_insn[];

// What de_entry leaves on the stack: pusha, then the exception frame.
struct de_frame {
  uint32_t edi, esi, ebp, esp, ebx, edx, ecx, eax;
  uint32_t eip, cs, eflags;
};

// Interrupt gate descriptor (SDM Vol. 3A 6.11).
struct gate {
  uint16_t offset_low, selector, flags, offset_high;
};

enum { kVectors = 32, kInterruptGate32 = 0x8E00 };

static struct gate idt[kVectors] __attribute__((aligned(8)));

static struct gate make_gate(void (*entry)(void)) {
  uint32_t offset = (uint32_t)(uintptr_t)entry;
  return (struct gate){(uint16_t)offset, kGuestCodeSelector, kInterruptGate32,
                       (uint16_t)(offset >> 16)};
}

static void load_idt(void) {
  idt[0] = make_gate(de_entry);
  for (int v = 1; v < kVectors; v++) idt[v] = make_gate(unexpected_entry);
  struct __attribute__((packed)) {
    uint16_t limit;
    uint32_t base;
  } idtr = {sizeof(idt) - 1, (uint32_t)(uintptr_t)idt};
  __asm__ volatile("lidt %0" : : "m"(idtr));
}

__attribute__((noreturn)) void de_handler(const struct de_frame *f) {
  guest_printf("#DE at 0x%08x\n", f->eip);
  check_eq("#DE eip", (uint32_t)(uintptr_t)de_div_insn, f->eip);
  check_eq("#DE cs", kGuestCodeSelector, f->cs & 0xFFFF);
  check_eq("#DE eax unchanged", 0x12345678, f->eax);
  check_eq("#DE edx unchanged", 0x11111111, f->edx);
  check_eq("#DE ecx unchanged", 0, f->ecx);
  check_eq("#DE ebx unchanged", 0x22222222, f->ebx);
  check_eq("#DE esi unchanged", 0x33333333, f->esi);
  check_eq("#DE edi unchanged", 0x44444444, f->edi);
  check_eq("#DE ebp unchanged", 0x55555555, f->ebp);
  check_eq("#DE eflags.IF", 0, f->eflags & 0x200);
  check_group("divide: precise #DE through the IDT");
  guest_exit(check_finish());
}

// frame: [error code,] eip, cs, eflags.
__attribute__((noreturn)) void unexpected_handler(const uint32_t *frame) {
  check_fail("unexpected exception, stack %08x %08x %08x", frame[0], frame[1], frame[2]);
  guest_exit(check_finish());
}

int main(void) {
  guest_load_flat_gdt();
  load_idt();
  guest_printf("divide: expect #DE at 0x%08x\n", (uint32_t)(uintptr_t)de_div_insn);
  trigger_de();
  check_fail("div by zero did not fault");
  return check_finish();
}
