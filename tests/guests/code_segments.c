// 32-bit code segments with a base (SDM Vol. 3A 3.4.5, 5.3): code entered
// by a far jmp into a segment whose base is where its code lies
// (code_segments_asm.S) runs at offsets from it: near calls push offsets
// and returns pop them, an indirect jump through a table and a call
// through a register take offsets, cs: reads data at CS.base + offset, and
// the frame of an exception in it holds the offset and the based CS; the
// handler's iret returns into the segment, and a far return leaves it for
// flat code. Code up to the last byte of a segment's limit runs.
//
// Not here: faults for the limit, where QEMU (7.2) and the SDM disagree.
// QEMU's TCG does not check the limit on fetch (it runs the instruction
// beyond it), raises #GP(selector) rather than #GP(0) for a far call
// beyond it, and does not check a far return's target at the same
// privilege level; libbt follows the SDM, and
// tests/unit/code_segment_test.cc checks it.
#include "guest.h"
#include "idt.h"

// code_segments_asm.S
extern uint32_t based_results[16];
void enter_based(void);
void enter_at(uint32_t offset, uint32_t selector);
extern const char based_begin[], based_ud[], based_after_ud[];
extern const char limited_last[];

enum { kBasedCs = 0x18, kLimitedCs = 0x20, kUd = 6 };

static uint64_t gdt[5] __attribute__((aligned(8)));
static struct guest_trap_frame last;
static unsigned faults;
static uint32_t resume_eip;

static uint32_t offset(const char *label) { return guest_addr(label) - guest_addr(based_begin); }

// Prints the frame and resumes at resume_eip.
static void on_fault(struct guest_trap_frame *f) {
  last = *f;
  faults++;
  guest_printf("vector %u error %x at cs %x eip %x\n", f->vector, f->error_code, f->cs & 0xFFFF,
               f->eip);
  f->eip = resume_eip;
}

static void test_based(void) {
  resume_eip = offset(based_after_ud);
  enter_based();
  for (unsigned i = 0; i < 8; i++) guest_printf("result %u: %x\n", i, based_results[i]);
  check_eq("call pushed its offset", based_results[2], based_results[1]);
  check_eq("table", 0xA1, based_results[3]);
  check_eq("cs: read", 0xC0DE5E65, based_results[5]);
  check_eq("loop", 55, based_results[6]);
  check_eq("faults", 1, faults);
  check_eq("#UD vector", kUd, last.vector);
  check_eq("#UD eip is an offset", offset(based_ud), last.eip);
  check_eq("#UD cs", kBasedCs, last.cs & 0xFFFF);
  check_group("based code segment: calls, tables, cs:, #UD frame, far return");
}

static void test_limit(void) {
  faults = 0;
  enter_at(offset(limited_last), kLimitedCs);
  check_eq("faults", 0, faults);
  check_group("code segment limit: its last byte runs");
}

int main(void) {
  gdt[1] = guest_descriptor(0, 0xFFFFF, 0x9A, 0xC0);
  gdt[2] = guest_descriptor(0, 0xFFFFF, 0x92, 0xC0);
  gdt[3] = guest_descriptor(guest_addr(based_begin), 0xFFFF, 0x9A, 0x40);
  gdt[4] = guest_descriptor(guest_addr(based_begin), offset(limited_last), 0x9A, 0x40);
  guest_load_gdt_table(gdt, sizeof(gdt));
  guest_idt_init();
  guest_idt_set(kUd, on_fault, kGuestInterruptGate, 0);
  test_based();
  test_limit();
  return check_finish();
}
