// Exception and software-interrupt delivery through the IDT, and iret back.
// Every exception here resumes: the handler either leaves the saved EIP
// (traps: #BP, #OF, int n) or moves it past the faulting instruction
// (faults: #DE, #UD, #BR, #GP, #NP). Checked for each: the vector, the error
// code, the saved EIP (at the instruction for faults, after it for traps,
// SDM Vol. 3A 6.5), CS and EFLAGS, where the frame sits (its top is the ESP
// of the interrupted code: no stack switch in ring 0, and an error code
// exactly where the SDM puts one), EFLAGS.IF inside the handler (cleared by
// an interrupt gate, kept by a trap gate), and registers and EFLAGS after
// iret, including ones the handler changed in the frame. Also: #GP error
// codes of segment loads, #NP for a not-present gate, NT cleared on delivery
// (an iret with NT set would switch tasks), and exceptions raised inside an
// interrupt handler.
//
// Not checked: EFLAGS.RF in the frame of a fault. The SDM (Vol. 3B 17.3.1.1)
// has the processor push RF=1 for every fault other than an instruction
// breakpoint; QEMU pushes RF=0.
#include "guest.h"
#include "idt.h"

// idt_exceptions_asm.S
extern uint32_t trap_esp, flags_after, regs_after[6];
uint32_t trigger_de(void);
void trigger_ud(void);
void trigger_bp(void);
void trigger_into(uint32_t value);
void trigger_bound(int32_t index);
uint32_t trigger_load_ds(uint32_t selector);
uint32_t trigger_load_ss(uint32_t selector);
void trigger_int82(void);
uint32_t trigger_int80(uint32_t eflags, uint32_t eax);
uint32_t trigger_int81(uint32_t eflags, uint32_t eax);
void nested_int3(void);
extern const char de_insn[], de_after[], ud_insn[], ud_after[], bp_insn[], bp_after[], of_insn[],
    of_after[], br_insn[], br_after[], ds_insn[], ds_after[], ss_insn[], ss_after[], int82_insn[],
    int82_after[], int80_insn[], int80_after[], int81_insn[], int81_after[], nested_int3_insn[],
    nested_int3_after[];

// EBX, ECX, EDX, ESI, EDI, EBP as trigger_int80/81 set them.
static const uint32_t kIntRegs[6] = {0xB0000000, 0xC0000000, 0xD0000000,
                                     0x50000000, 0xD1000000, 0xB1000000};

// What a handler saw.
struct record {
  unsigned count;
  struct guest_trap_frame frame;  // as it was on entry
  uint32_t frame_top;             // address just above the saved EFLAGS
  uint32_t expected_top;          // trap_esp on entry
  uint32_t flags_inside;          // EFLAGS in the handler
  unsigned depth;                 // service handlers running at entry
};

static struct record exc;      // exceptions (record_exception)
static struct record service;  // int 0x80 and 0x81 (service_call)
static const char *resume_at;  // exceptions resume here; 0: at the saved EIP
static unsigned depth;
static enum { kNestNone, kNestInt3, kNestFault } nest;

static void record(struct record *r, struct guest_trap_frame *f) {
  r->count++;
  r->frame = *f;
  r->frame_top = guest_addr(&f->eflags + 1);
  r->expected_top = trap_esp;
  r->flags_inside = guest_read_eflags();
  r->depth = depth;
}

static void record_exception(struct guest_trap_frame *f) {
  record(&exc, f);
  if (resume_at) f->eip = guest_addr(resume_at);
}

// int 0x80 / 0x81: EAX = ~EAX, EBX += 1, CF toggled, and optionally an
// exception inside the handler.
static void service_call(struct guest_trap_frame *f) {
  record(&service, f);
  depth++;
  if (nest == kNestInt3) {
    resume_at = 0;
    nested_int3();
  } else if (nest == kNestFault) {
    resume_at = ud_after;
    trigger_ud();
  }
  depth--;
  f->eax = ~f->eax;
  f->ebx += 1;
  f->eflags ^= CF;
}

static void expect(const char *resume) {
  exc = (struct record){0};
  service = (struct record){0};
  resume_at = resume;
}

static void field_eq(const char *what, const char *field, uint32_t expected, uint32_t got) {
  if (expected != got) check_fail("%s %s expected %08x got %08x", what, field, expected, got);
}

// Checks one delivery and prints it as "<what>: vector V error E eip
// <insn>+N"; `insn` is the label of the instruction that raised it.
static void check_delivery(const char *what, const struct record *r, unsigned count,
                           uint32_t vector, uint32_t error_code, const char *insn,
                           const char *eip) {
  const struct guest_trap_frame *f = &r->frame;
  guest_printf("%s: vector 0x%x error 0x%x eip insn+%d\n", what, f->vector, f->error_code,
               (int)(f->eip - guest_addr(insn)));
  field_eq(what, "count", count, r->count);
  field_eq(what, "vector", vector, f->vector);
  field_eq(what, "error code", error_code, f->error_code);
  field_eq(what, "saved eip", guest_addr(eip), f->eip);
  field_eq(what, "saved cs", kGuestCodeSelector, f->cs & 0xFFFF);
  field_eq(what, "frame top", r->expected_top, r->frame_top);
  field_eq(what, "saved eflags bit 1", 2, f->eflags & 2);
}

// A fault in an interrupt gate from code running with IF=0.
static void check_fault(const char *what, unsigned count, uint32_t vector, uint32_t error_code,
                        const char *insn) {
  check_delivery(what, &exc, count, vector, error_code, insn, insn);
  field_eq(what, "saved IF", 0, exc.frame.eflags & IF);
  field_eq(what, "IF inside", 0, exc.flags_inside & IF);
}

static void test_divide_error(void) {
  expect(de_after);
  uint32_t eax = trigger_de();
  check_fault("#DE", 1, 0, 0, de_insn);
  field_eq("#DE", "saved eax", 0x12345678, exc.frame.eax);
  field_eq("#DE", "saved edx", 0x11111111, exc.frame.edx);
  field_eq("#DE", "saved ecx", 0, exc.frame.ecx);
  field_eq("#DE", "eax after iret", 0x12345678, eax);
  check_group("#DE: fault at the div, no error code, resumed after it");
}

static void test_invalid_opcode(void) {
  expect(ud_after);
  trigger_ud();
  check_fault("#UD", 1, 6, 0, ud_insn);
  check_group("#UD: fault at the ud2, resumed after it");
}

static void test_breakpoint(void) {
  expect(0);
  trigger_bp();
  check_delivery("#BP", &exc, 1, 3, 0, bp_insn, bp_after);
  check_group("#BP: trap, saved eip after the int3");
}

static void test_overflow(void) {
  expect(0);
  trigger_into(0);
  field_eq("into with OF=0", "count", 0, exc.count);
  trigger_into(0x7FFFFFFF);
  check_delivery("#OF", &exc, 1, 4, 0, of_insn, of_after);
  field_eq("#OF", "saved OF", OF, exc.frame.eflags & OF);
  check_group("#OF: into traps only with OF=1, saved eip after the into");
}

static void test_bound(void) {
  expect(br_after);
  trigger_bound(0);
  trigger_bound(10);
  field_eq("bound in range", "count", 0, exc.count);
  trigger_bound(11);
  check_fault("#BR above", 1, 5, 0, br_insn);
  trigger_bound(-1);
  check_fault("#BR below", 2, 5, 0, br_insn);
  check_group("#BR: bound faults outside [lower, upper] only");
}

// int 0x80 (trap gate) or 0x81 (interrupt gate) with EFLAGS = `eflags`.
static void check_service(const char *what, int vector, uint32_t eflags, uint32_t if_inside) {
  const uint32_t eax_in = 0x1234ABCD;
  expect(0);
  uint32_t eax = vector == 0x80 ? trigger_int80(eflags, eax_in) : trigger_int81(eflags, eax_in);
  if (vector == 0x80) {
    check_delivery(what, &service, 1, 0x80, 0, int80_insn, int80_after);
  } else {
    check_delivery(what, &service, 1, 0x81, 0, int81_insn, int81_after);
  }
  field_eq(what, "saved eflags", eflags, service.frame.eflags);
  field_eq(what, "saved eax", eax_in, service.frame.eax);
  field_eq(what, "saved ebx", kIntRegs[0], service.frame.ebx);
  field_eq(what, "IF inside", if_inside, service.flags_inside & IF);
  field_eq(what, "NT inside", 0, service.flags_inside & NT);
  // iret: EFLAGS from the frame (with the handler's CF change), EAX and EBX
  // as the handler left them, the rest as they were.
  field_eq(what, "eflags after iret", eflags ^ CF, flags_after);
  field_eq(what, "eax after iret", ~eax_in, eax);
  field_eq(what, "ebx after iret", kIntRegs[0] + 1, regs_after[0]);
  for (int i = 1; i < 6; i++) field_eq(what, "register after iret", kIntRegs[i], regs_after[i]);
}

// Arithmetic flags and DF all set: the stub's cld must not leak out.
enum { kFlags = 0x2 | F_ARITH | DF };

static void test_trap_gate(void) {
  check_service("int 0x80 IF=0", 0x80, kFlags, 0);
  check_service("int 0x80 IF=1", 0x80, kFlags | IF, IF);
  check_group("int 0x80: trap gate keeps IF, handler changes EAX/EBX/CF");
}

static void test_interrupt_gate(void) {
  check_service("int 0x81 IF=1", 0x81, kFlags | IF, 0);
  check_service("int 0x81 IF=0", 0x81, kFlags, 0);
  check_group("int 0x81: interrupt gate clears IF, iret restores it");
}

// The processor clears NT on delivery (SDM Vol. 2A, INT n operation), so
// the handler's iret returns normally instead of switching tasks, and iret
// restores NT=1 from the frame.
static void test_nested_task_flag(void) {
  check_service("int 0x80 NT=1", 0x80, 0x2 | NT, 0);
  check_group("int 0x80 with NT=1: NT cleared inside, restored by iret");
}

static void test_general_protection(void) {
  expect(ds_after);
  // The GDT limit is 0x17: selector 0x18 (here with RPL 3) lies beyond it.
  uint32_t ds = trigger_load_ds(0x1B);
  check_fault("#GP mov ds, 0x1b", 1, 13, 0x18, ds_insn);
  field_eq("#GP mov ds, 0x1b", "ds after", kGuestDataSelector, ds & 0xFFFF);
  // Data segment 0x10 has DPL 0 < RPL 3.
  ds = trigger_load_ds(0x13);
  check_fault("#GP mov ds, 0x13", 2, 13, 0x10, ds_insn);
  field_eq("#GP mov ds, 0x13", "ds after", kGuestDataSelector, ds & 0xFFFF);
  expect(ss_after);
  uint32_t ss = trigger_load_ss(0);
  check_fault("#GP mov ss, 0", 1, 13, 0, ss_insn);
  field_eq("#GP mov ss, 0", "ss after", kGuestDataSelector, ss & 0xFFFF);
  ss = trigger_load_ss(kGuestCodeSelector);
  check_fault("#GP mov ss, 0x08", 2, 13, kGuestCodeSelector, ss_insn);
  field_eq("#GP mov ss, 0x08", "ss after", kGuestDataSelector, ss & 0xFFFF);
  check_group("#GP: selector error codes, segment registers unchanged");
}

static void test_not_present(void) {
  guest_idt_clear(0x82);
  expect(int82_after);
  trigger_int82();
  // Error code: IDT index 0x82 with the IDT bit (SDM Vol. 3A 6.13).
  check_fault("#NP int 0x82", 1, 11, 0x82 << 3 | 2, int82_insn);
  check_group("#NP: int through a not-present gate, error code 0x412");
}

static void test_nested(void) {
  nest = kNestInt3;
  check_service("int 0x80 with int3", 0x80, kFlags, 0);
  check_delivery("#BP in int 0x80", &exc, 1, 3, 0, nested_int3_insn, nested_int3_after);
  field_eq("#BP in int 0x80", "depth", 1, exc.depth);
  nest = kNestFault;
  check_service("int 0x81 with ud2", 0x81, kFlags | IF, 0);
  check_fault("#UD in int 0x81", 1, 6, 0, ud_insn);
  field_eq("#UD in int 0x81", "depth", 1, exc.depth);
  nest = kNestNone;
  check_group("nested: int3 and ud2 inside handlers return to them");
}

int main(void) {
  guest_load_flat_gdt();
  guest_idt_init();
  // Every IRQ masked, so the tests that run with IF=1 see no interrupts.
  guest_pic_remap(0x20, 0x28);
  static const uint8_t exceptions[] = {0, 3, 4, 5, 6, 11, 13};
  for (unsigned i = 0; i < ARRAY_SIZE(exceptions); i++) {
    guest_idt_set(exceptions[i], record_exception, kGuestInterruptGate, 0);
  }
  guest_idt_set(0x80, service_call, kGuestTrapGate, 0);
  guest_idt_set(0x81, service_call, kGuestInterruptGate, 0);

  test_divide_error();
  test_invalid_opcode();
  test_breakpoint();
  test_overflow();
  test_bound();
  test_trap_gate();
  test_interrupt_gate();
  test_nested_task_flag();
  test_general_protection();
  test_not_present();
  test_nested();
  return check_finish();
}
