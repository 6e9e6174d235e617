// Privilege levels (SDM Vol. 3A chapters 5-7), without paging but for one
// group: a GDT with
// ring-3 code and data and a 32-bit TSS with an I/O permission bitmap; ring 3
// entered with iret and left through system calls:
//   - int 0x80 through a DPL-3 gate: the handler runs in ring 0 on the
//     TSS's SS0:ESP0 with the user SS:ESP in its frame, and returns values;
//   - sysenter/sysexit: ring 0 on IA32_SYSENTER_CS:ESP, back in ring 3 with
//     CS = SYSENTER_CS + 16 and SS = SYSENTER_CS + 24, RPL 3;
//   - a far call through a DPL-3 call gate into ring 0, which copies the
//     gate's parameter to SS0:ESP0, and far ret with a count back;
//   - privileged instructions in ring 3 (hlt, lgdt, mov to/from CR and DR,
//     rdmsr, sysexit, rdtsc with CR4.TSD, ...) and cli/sti at IOPL 0 raise
//     #GP(0) at the instruction; at IOPL 3 cli/sti work;
//   - popf in ring 3 changes neither IOPL nor, at IOPL 0, IF;
//   - in/out in ring 3 at IOPL 0 go through the I/O permission bitmap:
//     an allowed port works, denied ones (any byte of a word or dword
//     access, or past the TSS limit) raise #GP(0);
//   - with paging on (the identity map user-accessible), ring 3 takes #PF
//     with the U bit for a supervisor page, a read-only page and a
//     not-present one, each resolved by the ring-0 handler and retried;
//     ring 0 with CR0.WP takes #PF for the read-only user page;
//   - PIT interrupts taken in ring 3 preempt two ring-3 tasks: the timer
//     handler switches their saved frames.
// Not checked here: the #TS and #SS faults of a bad TSS stack and the
// checks of iret and far ret to an outer ring (tests/unit/privilege_test.cc
// checks them); QEMU agrees with the SDM on all of this as far as checked.
#include "guest.h"
#include "idt.h"
#include "paging_test.h"

// rings_asm.S
uint32_t enter_user(uint32_t eip, uint32_t esp, uint32_t eflags);
__attribute__((noreturn)) void leave_user(uint32_t value);
uint32_t user_syscall(uint32_t number, uint32_t a, uint32_t b);
__attribute__((noreturn)) void user_exit(uint32_t value);
uint32_t user_sysenter(uint32_t value);
void sysenter_entry(void);
uint32_t user_call_gate(uint32_t value);
void call_gate_entry(void);
void user_privileged(void);
void user_io(void);
void user_iopl3(void);
void user_popf(void);
extern uint32_t sysenter_seen[3], call_gate_seen[5];
struct expected_gp {
  uint32_t insn, after;
  const char *name;
};
extern const struct expected_gp privileged_table[], privileged_table_end[], io_table[],
    io_table_end[];

enum {
  kKernelCs = kGuestCodeSelector,
  kKernelDs = kGuestDataSelector,
  kUserCs = 0x1B,
  kUserDs = 0x23,
  kTssSelector = 0x28,
  kCallGate = 0x30,
  kSysExit = 0,
  kSysAdd = 1,
  kSysCpl = 2,
  kIrq0Vector = 0x20,
  kVectorGp = 13,
  kSwitches = 20,  // task switches the preemption test waits for
  IOPL3 = 3 << 12,
};

struct tss {
  struct guest_tss task;
  // Ports 0-0x3FF, then the byte of ones the processor may read past the
  // end (SDM Vol. 1, 19.5.2).
  uint8_t io_map[0x400 / 8 + 1];
} __attribute__((packed));

static struct tss tss __attribute__((aligned(128)));
static uint64_t gdt[7] __attribute__((aligned(8)));
static uint8_t kernel_stack[8192] __attribute__((aligned(16)));
static uint8_t sysenter_stack[4096] __attribute__((aligned(16)));
static uint8_t user_stacks[2][8192] __attribute__((aligned(16)));

static uint32_t top(const uint8_t *stack, uint32_t size) { return guest_addr(stack) + size; }
// A user stack with a null return address on it, as a C function expects.
static uint32_t user_esp(unsigned task) {
  return top(user_stacks[task], sizeof(user_stacks[0])) - 4;
}

static uint16_t read_cs(void) {
  uint16_t cs;
  __asm__ volatile("mov %%cs, %0" : "=r"(cs));
  return cs;
}

static uint16_t read_ss(void) {
  uint16_t ss;
  __asm__ volatile("mov %%ss, %0" : "=r"(ss));
  return ss;
}

static void setup_gdt_tss(void) {
  gdt[1] = guest_descriptor(0, 0xFFFFF, 0x9A, 0xC0);  // ring-0 code
  gdt[2] = guest_descriptor(0, 0xFFFFF, 0x92, 0xC0);  // ring-0 data
  gdt[3] = guest_descriptor(0, 0xFFFFF, 0xFA, 0xC0);  // ring-3 code
  gdt[4] = guest_descriptor(0, 0xFFFFF, 0xF2, 0xC0);  // ring-3 data
  gdt[5] = guest_descriptor(guest_addr(&tss), sizeof(tss) - 1, 0x89, 0);
  // A 32-bit call gate of DPL 3 that copies one parameter (SDM Vol. 3A
  // figure 5-8): the layout of an interrupt gate with the count in byte 4.
  const uint32_t entry = guest_addr(call_gate_entry);
  gdt[6] = (entry & 0xFFFF) | (uint64_t)kKernelCs << 16 | 1ull << 32 | 0xECull << 40 |
           (uint64_t)(entry >> 16) << 48;
  guest_load_gdt_table(gdt, sizeof(gdt));
  tss.task.esp0 = top(kernel_stack, sizeof(kernel_stack));
  tss.task.ss0 = kKernelDs;
  tss.task.io_map_base = __builtin_offsetof(struct tss, io_map);
  memset(tss.io_map, 0xFF, sizeof(tss.io_map));
  tss.io_map[0x3FF / 8] &= (uint8_t) ~(1 << (0x3FF % 8));
  __asm__ volatile("ltr %w0" : : "r"(kTssSelector));
}

// ---- System calls ----

static struct {
  unsigned calls;
  uint32_t caller_cpl, handler_cpl;
  int on_kernel_stack, user_ss_ok, user_esp_ok;
} sys;

static void syscall_handler(struct guest_trap_frame *f) {
  sys.calls++;
  const uint32_t frame = guest_addr(f);
  sys.on_kernel_stack =
      frame >= guest_addr(kernel_stack) && frame < guest_addr(kernel_stack + 8192);
  sys.user_ss_ok = f->user_ss == kUserDs;
  sys.user_esp_ok = f->user_esp > guest_addr(user_stacks) && f->user_esp <= user_esp(1);
  switch (f->eax) {
    case kSysExit: leave_user(f->ebx);
    case kSysAdd: f->eax = f->ebx + f->ecx; break;
    case kSysCpl:
      sys.caller_cpl = f->cs & 3;
      sys.handler_cpl = read_cs() & 3;
      f->eax = 0;
      break;
    default: f->eax = ~0u; break;
  }
}

static struct {
  uint32_t sum, cpl_call, cs, ss, sysenter_result, sysenter_cs, sysenter_ss, sysenter_flags;
} user;

static void user_calls(void) {
  user.sum = user_syscall(kSysAdd, 40, 2);
  user.cpl_call = user_syscall(kSysCpl, 0, 0);
  user.cs = read_cs();
  user.ss = read_ss();
  user_exit(0x55);
}

static void test_int80(void) {
  check_eq("enter_user result", 0x55, enter_user(guest_addr(user_calls), user_esp(0), IF | 2));
  check_eq("system calls", 3, sys.calls);
  check_eq("sum", 42, user.sum);
  check_eq("caller CPL", 3, sys.caller_cpl);
  check_eq("handler CPL", 0, sys.handler_cpl);
  check_true("frame on the TSS's ESP0 stack", sys.on_kernel_stack);
  check_true("user SS in the frame", sys.user_ss_ok);
  check_true("user ESP in the frame", sys.user_esp_ok);
  check_eq("CS in ring 3", kUserCs, user.cs);
  check_eq("SS in ring 3", kUserDs, user.ss);
  check_group("int 0x80 from ring 3: ring 0 on SS0:ESP0, iret back to ring 3");
}

static void wrmsr(uint32_t msr, uint32_t value) {
  __asm__ volatile("wrmsr" : : "c"(msr), "a"(value), "d"(0));
}

static void user_fast_calls(void) {
  user.sysenter_result = user_sysenter(20);
  user.sysenter_cs = read_cs();
  user.sysenter_ss = read_ss();
  user.sysenter_flags = guest_read_eflags();
  user_exit(0x66);
}

static struct { uint32_t result, esp, cs; } gate_user;

static void user_gate_calls(void) {
  gate_user.result = user_call_gate(14);
  __asm__ volatile("mov %%esp, %0" : "=r"(gate_user.esp));
  gate_user.cs = read_cs();
  user_exit(0x99);
}

static void test_call_gate(void) {
  check_eq("enter_user result", 0x99, enter_user(guest_addr(user_gate_calls), user_esp(0), IF | 2));
  check_eq("result", 42, gate_user.result);
  check_eq("CS in the procedure", kKernelCs, call_gate_seen[0]);
  check_eq("SS in the procedure", kKernelDs, call_gate_seen[1]);
  check_eq("ESP in the procedure", top(kernel_stack, sizeof(kernel_stack)) - 20, call_gate_seen[2]);
  check_eq("caller's CS", kUserCs, call_gate_seen[3]);
  check_eq("caller's SS", kUserDs, call_gate_seen[4]);
  check_eq("CS after far ret", kUserCs, gate_user.cs);
  check_true("ESP after far ret",
             gate_user.esp > guest_addr(user_stacks[0]) && gate_user.esp < user_esp(0));
  check_group("far call through a call gate from ring 3 and far ret back");
}

static void test_sysenter(void) {
  wrmsr(0x174, kKernelCs);
  wrmsr(0x175, top(sysenter_stack, sizeof(sysenter_stack)));
  wrmsr(0x176, guest_addr(sysenter_entry));
  check_eq("enter_user result", 0x66, enter_user(guest_addr(user_fast_calls), user_esp(0), IF | 2));
  check_eq("result", 41, user.sysenter_result);
  check_eq("CS at the entry point", kKernelCs, sysenter_seen[0]);
  check_eq("SS at the entry point", kKernelDs, sysenter_seen[1]);
  check_eq("ESP at the entry point", top(sysenter_stack, sizeof(sysenter_stack)), sysenter_seen[2]);
  check_eq("CS after sysexit", kUserCs, user.sysenter_cs);
  check_eq("SS after sysexit", kUserDs, user.sysenter_ss);
  check_eq("IF after sti; sysexit", IF, user.sysenter_flags & IF);
  check_group("sysenter from ring 3 and sysexit back");
}

// ---- #GP in ring 3 ----

static const struct expected_gp *gp_table, *gp_table_end;
static uint32_t gp_hits[32], gp_errors[32];
static unsigned gp_unexpected;

// Resumes after an instruction of the current table, recording the error
// code.
static void gp_handler(struct guest_trap_frame *f) {
  for (const struct expected_gp *e = gp_table; e < gp_table_end; e++) {
    if (f->eip == e->insn && f->cs == kUserCs) {
      gp_hits[e - gp_table]++;
      gp_errors[e - gp_table] = f->error_code;
      f->eip = e->after;
      return;
    }
  }
  gp_unexpected++;
  check_fail("unexpected #GP(%x) at %08x, CS %x", f->error_code, f->eip, f->cs);
  leave_user(0xDEAD);
}

// Runs ring-3 code at `eip` with `eflags`; every instruction of `table`
// must raise #GP(0) once.
static uint32_t expect_gps(const struct expected_gp *table, const struct expected_gp *end,
                           void (*eip)(void), uint32_t eflags) {
  gp_table = table;
  gp_table_end = end;
  memset(gp_hits, 0, sizeof(gp_hits));
  const uint32_t result = enter_user(guest_addr(eip), user_esp(0), eflags);
  for (const struct expected_gp *e = table; e < end; e++) {
    if (gp_hits[e - table] != 1 || gp_errors[e - table] != 0) {
      check_fail("%s: %u #GP, error code %x", e->name, gp_hits[e - table], gp_errors[e - table]);
    }
  }
  return result;
}

static void write_cr4(uint32_t cr4) { __asm__ volatile("mov %0, %%cr4" : : "r"(cr4)); }

static void test_privileged(void) {
  write_cr4(1 << 2);  // TSD
  expect_gps(privileged_table, privileged_table_end, user_privileged, IF | 2);
  write_cr4(0);
  check_group("privileged instructions and cli/sti at IOPL 0 in ring 3: #GP(0)");
}

static void test_iopl(void) {
  const uint32_t flags = expect_gps(0, 0, user_iopl3, IOPL3 | IF | 2);
  check_eq("IF after cli at IOPL 3", 0, flags & IF);
  check_eq("IOPL", IOPL3, flags & IOPL3);
  check_group("cli, sti and any port in ring 3 at IOPL 3");
  const uint32_t popf_flags = expect_gps(0, 0, user_popf, IF | 2);
  check_eq("IOPL after popf", 0, popf_flags & IOPL3);
  check_eq("IF after popf", IF, popf_flags & IF);
  check_group("popf in ring 3 at IOPL 0 keeps IOPL and IF");
}

static void test_io_bitmap(void) {
  check_eq("scratch register read back", 0x5A, expect_gps(io_table, io_table_end, user_io, IF | 2));
  check_group("in/out in ring 3 through the I/O permission bitmap");
}

// ---- Preemption ----

static struct {
  volatile uint32_t count;
  struct guest_trap_frame frame;
  int started;
} tasks[2];
static volatile int stop_tasks;
static unsigned current, switches, ring0_ticks, bad_frames;

static void task_loop(unsigned id) {
  while (!stop_tasks) {
    tasks[id].count++;
    if ((tasks[id].count & 0xFFF) == 0 && user_syscall(kSysAdd, id, 1) != id + 1) {
      user_exit(0xBAD);
    }
  }
  user_exit(0x77);
}

static void task_a(void) { task_loop(0); }
static void task_b(void) { task_loop(1); }

static void timer_handler(struct guest_trap_frame *f) {
  guest_pic_eoi(0);
  if ((f->cs & 3) != 3) {
    ring0_ticks++;
    return;
  }
  const uint32_t stack = guest_addr(user_stacks[current]);
  if (f->user_ss != kUserDs || f->user_esp <= stack || f->user_esp > stack + 8192) bad_frames++;
  tasks[current].frame = *f;
  current ^= 1;
  if (tasks[current].started) {
    *f = tasks[current].frame;
  } else {
    tasks[current].started = 1;
    f->eip = guest_addr(task_b);
    f->user_esp = user_esp(1);
    f->eflags = IF | 2;
  }
  if (++switches >= kSwitches) stop_tasks = 1;
}

static void test_preemption(void) {
  guest_idt_set(kIrq0Vector, timer_handler, kGuestInterruptGate, 0);
  guest_pit_periodic(2000);
  guest_pic_mask(0xFFFF & ~1);
  tasks[0].started = 1;
  check_eq("exit", 0x77, enter_user(guest_addr(task_a), user_esp(0), IF | 2));
  guest_pic_mask(0xFFFF);
  check_true("task switches", switches >= kSwitches);
  check_true("task A ran", tasks[0].count > 0);
  check_true("task B ran", tasks[1].count > 0);
  check_eq("ticks in ring 0", 0, ring0_ticks);
  check_eq("bad user SS:ESP in timer frames", 0, bad_frames);
  check_group("PIT interrupts in ring 3 switch between two ring-3 tasks");
}

// ---- Paging from ring 3 ----

enum {
  kSupervisorPage = 0x40000000,  // present, writable, supervisor only
  kReadOnlyPage = 0x40001000,    // present, user, read-only
  kMissingPage = 0x40002000,     // not present
  kKernelReadOnly = 0x40003000,  // present, user, read-only: ring 0 writes it
};

// Maps want.physical with want.flags at the faulting page, replacing what
// was there, so the retried access works.
static void remap(struct guest_trap_frame *f, uint32_t cr2) {
  (void)f;
  paging_map(cr2, want.physical, want.flags);
  paging_invlpg(cr2);
}

static void expect_resolved(const char *what, uint32_t linear, uint32_t error_code, const char *eip,
                            uint32_t physical, uint32_t flags) {
  expect_fault(what, linear, error_code, eip, remap);
  want.physical = physical;
  want.flags = flags;
}

// Frames the ring-0 handler maps when resolving ring 3's faults; results
// ring 3 leaves for ring 0 to check (ring 3 cannot print: IOPL 0).
static uint32_t user_frames[3];
static struct { uint32_t supervisor_value, missing_value, faults[3]; } paged;

static void user_paging(void) {
  expect_resolved("ring 3 reads a supervisor page", kSupervisorPage, PFEC_P | PFEC_U,
                  probe_read_insn, user_frames[0], PTE_P | PTE_RW | PTE_US);
  paged.supervisor_value = probe_read(kSupervisorPage);
  paged.faults[0] = faults.count;
  expect_resolved("ring 3 writes a read-only page", kReadOnlyPage, PFEC_P | PFEC_W | PFEC_U,
                  probe_write_insn, user_frames[1], PTE_P | PTE_RW | PTE_US);
  probe_write(kReadOnlyPage, 0xABC);
  paged.faults[1] = faults.count;
  expect_resolved("ring 3 reads a not-present page", kMissingPage, PFEC_U, probe_read_insn,
                  user_frames[2], PTE_P | PTE_US);
  paged.missing_value = probe_read(kMissingPage);
  paged.faults[2] = faults.count;
  expect_none();
  user_exit(0x66);
}

static void test_user_paging(void) {
  paging_init(PTE_P | PTE_RW | PTE_US);
  for (unsigned i = 0; i < 3; i++) user_frames[i] = take_frame(0x100 * (i + 1));
  const uint32_t kernel_read_only = take_frame(0x400);
  paging_map(kSupervisorPage, user_frames[0], PTE_P | PTE_RW);
  paging_map(kReadOnlyPage, user_frames[1], PTE_P | PTE_US);
  paging_map(kKernelReadOnly, kernel_read_only, PTE_P | PTE_US);
  page_faults_checked();
  paging_enable(1);
  check_eq("enter_user result", 0x66, enter_user(guest_addr(user_paging), user_esp(0), 2));
  check_eq("supervisor page made user, read from ring 3", 0x100, paged.supervisor_value);
  check_eq("read-only page made writable, written from ring 3", 0xABC, phys(user_frames[1])[0]);
  check_eq("not-present page mapped, read from ring 3", 0x300, paged.missing_value);
  for (unsigned i = 0; i < 3; i++) check_eq("faults for each", 1, paged.faults[i]);

  expect_resolved("ring 0 writes a read-only user page with CR0.WP", kKernelReadOnly,
                  PFEC_P | PFEC_W, probe_write_insn, kernel_read_only, PTE_P | PTE_RW | PTE_US);
  probe_write(kKernelReadOnly, 0x12345);
  check_eq("the write after the fault", 0x12345, phys(kernel_read_only)[0]);
  check_eq("faults for it", 1, faults.count);
  expect_none();
  check_group("paging from ring 3: U/S and R/W faults with the U bit, CR0.WP in ring 0");
}

int main(void) {
  // Ring-3 code runs with IF set: the IRQs the firmware left unmasked must
  // not reach the exception vectors.
  guest_pic_remap(kIrq0Vector, kIrq0Vector + 8);
  setup_gdt_tss();
  guest_idt_init();
  guest_idt_set(kVectorGp, gp_handler, kGuestInterruptGate, 0);
  guest_idt_set(0x80, syscall_handler, kGuestInterruptGate, 3);
  test_int80();
  test_sysenter();
  test_call_gate();
  test_privileged();
  test_iopl();
  test_io_bitmap();
  test_user_paging();
  test_preemption();
  return check_finish();
}
