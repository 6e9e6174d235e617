// Hardware task switches between 32-bit TSSs (SDM Vol. 3A chapter 7):
//   - a far call to a TSS runs the called task with NT set, the caller in
//     its back link, both tasks busy and CR0.TS set, and DS from the LDT its
//     TSS names; its iret returns to the caller, leaves the called task
//     available with NT clear in its saved EFLAGS; a second call, through a
//     task gate, resumes the called task after its iret;
//   - a far jmp to a TSS leaves the old task available and writes no back
//     link; the jumped-to task's jmp back resumes the first after its jmp;
//   - a #GP whose gate is not present is a double fault (the #NP while
//     delivering it is contributory), which a task gate at vector 8 sends to
//     a #DF task: its back link names the faulting task and error code 0
//     lies on its stack; it skips the faulting instruction by changing the
//     saved EIP in the faulting task's TSS and returns with iret. A second
//     double fault resumes the #DF task after its iret.
// The faults of bad TSSs and of the segments they name, int n through task
// gates and CR3 loads are checked by tests/unit/task_switch_test.cc, among
// them where QEMU departs from the SDM, which libbt follows: QEMU takes int
// n through a task gate whatever the gate's DPL and to a busy TSS, and
// raises #NP instead of #SS for a new task's SS that is not present.
#include "guest.h"
#include "idt.h"
#include "paging.h"

// task_switch_asm.S: the tasks' entry points, and the instruction that
// faults for the double fault.
void called_task_entry(void);
void jumped_task_entry(void);
void double_fault_task_entry(void);
void provoke_double_fault(void);
extern const char double_fault_insn[], double_fault_after[];

enum {
  kMainTss = 0x18,
  kCalledTss = 0x20,
  kJumpedTss = 0x28,
  kDoubleFaultTss = 0x30,
  kCalledGate = 0x38,
  kLdtSelector = 0x40,
  kLdtData = 0x04,  // the LDT's first descriptor
  kAvailable = 0x89,
  kBusy = 0x8B,
  kTs = 1 << 3,
};

static uint64_t gdt[9] __attribute__((aligned(8)));
static uint64_t ldt[1] __attribute__((aligned(8)));
static struct guest_tss main_tss, called_tss, jumped_tss, double_fault_tss;
static uint8_t stacks[3][4096] __attribute__((aligned(16)));

static uint16_t read_tr(void) {
  uint16_t tr;
  __asm__ volatile("str %0" : "=r"(tr));
  return tr;
}

static void clts(void) { __asm__ volatile("clts"); }

// The access byte of the GDT descriptor `selector` names: its type holds
// the busy bit.
static uint8_t access_byte(uint16_t selector) { return (uint8_t)(gdt[selector >> 3] >> 40); }

// A far call or jmp to `selector`; the offset does not matter for a task.
// The task switch back restores every register and flag, so the compiler
// may assume them kept.
static void far_transfer(uint16_t selector, int call) {
  struct __attribute__((packed)) {
    uint32_t offset;
    uint16_t selector;
  } target = {0, selector};
  if (call) {
    __asm__ volatile("lcall *%0" : : "m"(target) : "memory");
  } else {
    __asm__ volatile("ljmp *%0" : : "m"(target) : "memory");
  }
}

static void init_task(struct guest_tss *tss, void (*entry)(void), uint8_t *stack) {
  tss->eip = guest_addr(entry);
  tss->esp = guest_addr(stack) + sizeof(stacks[0]);
  tss->eflags = 0x2;
  tss->cs = kGuestCodeSelector;
  tss->ss = tss->ds = tss->es = tss->fs = tss->gs = kGuestDataSelector;
}

static void setup(void) {
  gdt[1] = guest_descriptor(0, 0xFFFFF, 0x9A, 0xC0);  // ring-0 code
  gdt[2] = guest_descriptor(0, 0xFFFFF, 0x92, 0xC0);  // ring-0 data
  gdt[3] = guest_descriptor(guest_addr(&main_tss), sizeof(main_tss) - 1, kAvailable, 0);
  gdt[4] = guest_descriptor(guest_addr(&called_tss), sizeof(called_tss) - 1, kAvailable, 0);
  gdt[5] = guest_descriptor(guest_addr(&jumped_tss), sizeof(jumped_tss) - 1, kAvailable, 0);
  gdt[6] =
      guest_descriptor(guest_addr(&double_fault_tss), sizeof(double_fault_tss) - 1, kAvailable, 0);
  gdt[7] = (uint64_t)kCalledTss << 16 | 0x85ull << 40;  // task gate, DPL 0
  gdt[8] = guest_descriptor(guest_addr(ldt), sizeof(ldt) - 1, 0x82, 0);
  ldt[0] = guest_descriptor(0, 0xFFFFF, 0x92, 0xC0);  // ring-0 data
  guest_load_gdt_table(gdt, sizeof(gdt));
  guest_idt_init();
  init_task(&called_tss, called_task_entry, stacks[0]);
  called_tss.ds = kLdtData;
  called_tss.ldt = kLdtSelector;
  init_task(&jumped_tss, jumped_task_entry, stacks[1]);
  jumped_tss.link = 0xABCD;
  init_task(&double_fault_tss, double_fault_task_entry, stacks[2]);
  __asm__ volatile("ltr %w0" : : "r"(kMainTss));
}

// ---- Far call and iret ----

static struct {
  unsigned calls;
  uint32_t eflags, cr0, link;
  uint16_t tr, ds;
  uint8_t main_access, called_access;
} called;

void called_task_body(void) {
  called.calls++;
  called.eflags = guest_read_eflags();
  called.cr0 = paging_read_cr0();
  called.link = called_tss.link;
  called.tr = read_tr();
  __asm__ volatile("mov %%ds, %0" : "=rm"(called.ds));
  called.main_access = access_byte(kMainTss);
  called.called_access = access_byte(kCalledTss);
  clts();
}

static void check_called(const char *how, uint16_t selector, unsigned calls) {
  far_transfer(selector, 1);
  check_eq("calls", calls, called.calls);
  check_eq("NT in the called task", NT, called.eflags & NT);
  check_eq("CR0.TS in the called task", kTs, called.cr0 & kTs);
  check_eq("back link", kMainTss, called.link & 0xFFFF);
  check_eq("TR in the called task", kCalledTss, called.tr);
  check_eq("DS from the LDT", kLdtData, called.ds);
  check_eq("caller busy", kBusy, called.main_access);
  check_eq("called task busy", kBusy, called.called_access);
  check_eq("NT after iret", 0, guest_read_eflags() & NT);
  check_eq("TR after iret", kMainTss, read_tr());
  check_eq("CR0.TS after iret", kTs, paging_read_cr0() & kTs);
  clts();
  check_eq("caller busy after iret", kBusy, access_byte(kMainTss));
  check_eq("called task available after iret", kAvailable, access_byte(kCalledTss));
  check_eq("NT in the called task's saved EFLAGS", 0, called_tss.eflags & NT);
  check_group(how);
}

// ---- Far jmp ----

static struct {
  unsigned runs;
  uint32_t eflags, link;
  uint8_t main_access, jumped_access;
} jumped;

void jumped_task_body(void) {
  jumped.runs++;
  jumped.eflags = guest_read_eflags();
  jumped.link = jumped_tss.link;
  jumped.main_access = access_byte(kMainTss);
  jumped.jumped_access = access_byte(kJumpedTss);
  clts();
}

static void test_jmp(void) {
  far_transfer(kJumpedTss, 0);
  clts();
  check_eq("runs", 1, jumped.runs);
  check_eq("NT in the jumped-to task", 0, jumped.eflags & NT);
  check_eq("back link untouched", 0xABCD, jumped.link & 0xFFFF);
  check_eq("old task available", kAvailable, jumped.main_access);
  check_eq("jumped-to task busy", kBusy, jumped.jumped_access);
  check_eq("first task busy again", kBusy, access_byte(kMainTss));
  check_eq("jumped-to task available again", kAvailable, access_byte(kJumpedTss));
  check_eq("TR", kMainTss, read_tr());
  check_group("far jmp to a TSS and back");
}

// ---- Double fault through a task gate ----

static struct {
  unsigned runs;
  uint32_t error_code, esp, eflags, link, saved_eip;
  uint16_t tr;
} double_fault;

// Called by the #DF task with the error code it popped and ESP after that.
void double_fault_body(uint32_t error_code, uint32_t esp) {
  double_fault.runs++;
  double_fault.error_code = error_code;
  double_fault.esp = esp;
  double_fault.eflags = guest_read_eflags();
  double_fault.link = double_fault_tss.link;
  double_fault.tr = read_tr();
  double_fault.saved_eip = main_tss.eip;
  main_tss.eip = guest_addr(double_fault_after);
}

static void test_double_fault(void) {
  guest_idt_set_task_gate(8, kDoubleFaultTss);
  guest_idt_clear(13);
  for (unsigned run = 1; run <= 2; run++) {
    provoke_double_fault();
    clts();
    check_eq("#DF task runs", run, double_fault.runs);
    check_eq("error code", 0, double_fault.error_code);
    check_eq("ESP of the #DF task after popping it", guest_addr(stacks[2]) + sizeof(stacks[2]),
             double_fault.esp);
    check_eq("NT in the #DF task", NT, double_fault.eflags & NT);
    check_eq("back link", kMainTss, double_fault.link & 0xFFFF);
    check_eq("TR in the #DF task", kDoubleFaultTss, double_fault.tr);
    check_eq("saved EIP of the faulting task", guest_addr(double_fault_insn),
             double_fault.saved_eip);
    check_eq("#DF task available after iret", kAvailable, access_byte(kDoubleFaultTss));
  }
  check_group("double fault through a task gate, iret back to the faulting task");
}

int main(void) {
  setup();
  check_called("far call to a TSS, iret back", kCalledTss, 1);
  check_called("far call through a task gate, iret back", kCalledGate, 2);
  test_jmp();
  test_double_fault();
  return check_finish();
}
