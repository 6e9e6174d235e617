// Nanobenchmarks in the style of Adams and Agesen, "A comparison of software
// and hardware techniques for x86 virtualization" (ASPLOS 2006): each one is
// a loop around a single privileged or virtualization-sensitive operation,
// timed with rdtsc. The same source builds as a Multiboot guest (nano.elf,
// run under btvm and QEMU) and, for the operations a Linux process can do,
// as a native -m32 program (nano_native) that times the host's equivalent:
//
//   syscall   int 0x80 from ring 3 to a ring-0 trap gate (the TSS's stack)
//             whose handler only irets back to ring 3; natively a real
//             Linux system call (int $0x80, getpid).
//   in        inb from the master PIC's mask register (port 0x21), which
//             btvm and QEMU emulate; natively n/a.
//   call/ret  a call to an empty function; natively the same code.
//   divzero   div by zero: #DE to a handler that moves the saved EIP past
//             the div and irets; natively a SIGFPE handler doing the same
//             through the ucontext.
//   pgfault   a read of a not-present page: the #PF handler maps it and the
//             read is retried; the loop then unmaps it and invlpg's.
//   ptemod    a PTE write (alternating between two frames) and invlpg.
//   cr3       a mov to CR3 switching between two address spaces, then a
//             read of each of 4 pages of the working set.
//
// The last three need guest paging; natively they are n/a.
//
// Output, one line each (run.sh reads it):
//   tsc_hz <TSC ticks per second>   native: against clock_gettime; guest:
//                                   against the PIT (a cross-check only)
//   <name> <TSC cycles per operation, two decimals>
//   <name> n/a
// Each benchmark grows its iteration count (2x to 16x a step, aimed by the
// last run's time) until one run takes kMinCycles, then reports the fastest
// of kRuns runs of that count; the ramp doubles as warm-up (translation,
// TLB, caches). The loop's
// own dec/jnz is included in every figure. A guest run ends through the
// debug-exit port with check_finish()'s result, so btvm and QEMU exit with
// status 1 when every handler ran exactly once per operation.
#define _GNU_SOURCE  // REG_EIP in <ucontext.h>

#include "guest.h"

#ifdef BT_GUEST_NATIVE
#include <signal.h>
#include <string.h>
#include <time.h>
#include <ucontext.h>
#else
#include "idt.h"
#endif

enum { kRuns = 3 };
static const uint64_t kMinCycles = 100000000;  // ~30-50 ms at 2-3.5 GHz

// Incremented by every handler the benchmarks trap into.
volatile uint32_t nano_trap_count;

// ---- Loops shared by both builds (cdecl: void loop(uint32_t n), n > 0) ----

void nano_syscall_loop(uint32_t n);
void nano_call_ret_loop(uint32_t n);
void nano_divzero_loop(uint32_t n);
extern const char nano_div_resume[];

__asm__(
    "  .text\n"
    // EAX = __NR_getpid on i386 Linux: the handler's return value lands in
    // EAX, and Linux keeps every other register. The guest handler ignores
    // EAX.
    "  .balign 16\n"
    "  .globl nano_syscall_loop\n"
    "nano_syscall_loop:\n"
    "  mov 4(%esp), %ecx\n"
    "1:\n"
    "  mov $20, %eax\n"
    "  int $0x80\n"
    "  dec %ecx\n"
    "  jnz 1b\n"
    "  ret\n"

    "  .balign 16\n"
    "nano_empty:\n"
    "  ret\n"
    "  .balign 16\n"
    "  .globl nano_call_ret_loop\n"
    "nano_call_ret_loop:\n"
    "  mov 4(%esp), %ecx\n"
    "1:\n"
    "  call nano_empty\n"
    "  dec %ecx\n"
    "  jnz 1b\n"
    "  ret\n"

    // The div faults every time; the handler resumes at nano_div_resume.
    "  .balign 16\n"
    "  .globl nano_divzero_loop, nano_div_resume\n"
    "nano_divzero_loop:\n"
    "  push %ebx\n"
    "  mov 8(%esp), %ebx\n"
    "  xor %ecx, %ecx\n"
    "1:\n"
    "  mov $1, %eax\n"
    "  xor %edx, %edx\n"
    "  divl %ecx\n"
    "nano_div_resume:\n"
    "  dec %ebx\n"
    "  jnz 1b\n"
    "  pop %ebx\n"
    "  ret\n");

// ---- Native-only parts ----
#ifdef BT_GUEST_NATIVE

static void on_sigfpe(int sig, siginfo_t *info, void *context) {
  (void)sig;
  (void)info;
  ucontext_t *uc = context;
  uc->uc_mcontext.gregs[REG_EIP] = (greg_t)(uintptr_t)nano_div_resume;
  nano_trap_count++;
}

static void machine_setup(void) {
  struct sigaction action;
  memset(&action, 0, sizeof(action));
  action.sa_sigaction = on_sigfpe;
  action.sa_flags = SA_SIGINFO;
  sigemptyset(&action.sa_mask);
  if (sigaction(SIGFPE, &action, 0) != 0) check_fail("sigaction(SIGFPE) failed");
}

static uint64_t monotonic_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

// TSC ticks per second against CLOCK_MONOTONIC over 200 ms: run.sh converts
// every runner's cycles to ns with this (btvm and QEMU TCG both read the
// host's TSC for the guest's rdtsc).
static uint64_t measure_tsc_hz(void) {
  uint64_t ns0 = monotonic_ns(), tsc0 = guest_rdtsc(), ns1;
  while ((ns1 = monotonic_ns()) - ns0 < 200000000u) {
  }
  return (guest_rdtsc() - tsc0) * 1000000000u / (ns1 - ns0);
}

#define NANO_IN_LOOP 0
#define NANO_SYSCALL_LOOP nano_syscall_loop
#define NANO_DIVZERO_TRAPS 1
#define NANO_SYSCALL_TRAPS 0  // the host kernel's handler counts nothing

static void paging_setup(void) {}

// ---- Guest-only parts ----
#else

void nano_in_loop(uint32_t n);
void nano_user_syscall_loop(uint32_t n);
void nano_user_exit_entry(void);
void nano_syscall_entry(void);
void nano_divzero_entry(void);
void nano_unexpected_entry(void);

__asm__(
    "  .text\n"
    "  .balign 16\n"
    "  .globl nano_in_loop\n"
    "nano_in_loop:\n"
    "  mov 4(%esp), %ecx\n"
    "1:\n"
    "  inb $0x21, %al\n"
    "  dec %ecx\n"
    "  jnz 1b\n"
    "  ret\n"

    // Runs nano_syscall_loop(n) in ring 3 (GDT selectors 0x1B and 0x23,
    // interrupts off); int 0x81 (nano_user_exit_entry) comes back here.
    "  .balign 16\n"
    "  .globl nano_user_syscall_loop\n"
    "nano_user_syscall_loop:\n"
    "  push %ebp\n"
    "  push %ebx\n"
    "  push %esi\n"
    "  push %edi\n"
    "  mov %esp, nano_kernel_esp\n"
    "  mov 20(%esp), %ecx\n"
    "  push $0x23\n"
    "  push $nano_user_stack_top\n"
    "  push $0x2\n"
    "  push $0x1B\n"
    "  push $2f\n"
    "  mov $0x23, %ax\n"
    "  mov %ax, %ds\n"
    "  mov %ax, %es\n"
    "  iret\n"
    "2:\n"
    "  push %ecx\n"
    "  call nano_syscall_loop\n"
    "  int $0x81\n"
    "  .balign 16\n"
    "  .globl nano_user_exit_entry\n"
    "nano_user_exit_entry:\n"
    "  mov $0x10, %ax\n"
    "  mov %ax, %ds\n"
    "  mov %ax, %es\n"
    "  mov nano_kernel_esp, %esp\n"
    "  pop %edi\n"
    "  pop %esi\n"
    "  pop %ebx\n"
    "  pop %ebp\n"
    "  ret\n"

    // int 0x80 (trap gate): count and return.
    "  .balign 16\n"
    "  .globl nano_syscall_entry\n"
    "nano_syscall_entry:\n"
    "  incl nano_trap_count\n"
    "  iret\n"

    // #DE (interrupt gate, no error code): resume after the div.
    "  .balign 16\n"
    "  .globl nano_divzero_entry\n"
    "nano_divzero_entry:\n"
    "  incl nano_trap_count\n"
    "  movl $nano_div_resume, (%esp)\n"
    "  iret\n"

    // Any other vector: report the top of the stack and end the run.
    "  .balign 16\n"
    "  .globl nano_unexpected_entry\n"
    "nano_unexpected_entry:\n"
    "  push %esp\n"
    "  call nano_unexpected\n");

__attribute__((noreturn, used)) void nano_unexpected(const uint32_t *stack) {
  check_fail("unexpected exception or interrupt, stack %08x %08x %08x %08x", stack[0], stack[1],
             stack[2], stack[3]);
  guest_exit(check_finish());
}

// An IDT of our own (SDM Vol. 3A 6.11): the entry points above take no
// detour through idt.c's stubs, so a round trip costs what the processor
// (or the translator) charges plus an incl.
struct gate {
  uint16_t offset_low, selector;
  uint8_t reserved, flags;  // P, DPL, 0, type
  uint16_t offset_high;
};

enum {
  kVectors = 256,
  kGatePresent = 0x80,
  kGateUser = 3 << 5,  // DPL 3: int n from ring 3 may use it
  kVectorDe = 0,
  kVectorPf = 14,
  kVectorSyscall = 0x80,
  kVectorUserExit = 0x81,
};

static struct gate idt[kVectors] __attribute__((aligned(8)));

static void set_gate(unsigned vector, void (*entry)(void), unsigned flags) {
  uint32_t offset = (uint32_t)(uintptr_t)entry;
  idt[vector] = (struct gate){(uint16_t)offset, kGuestCodeSelector, 0,
                              (uint8_t)(kGatePresent | flags), (uint16_t)(offset >> 16)};
}

// Ring 3 for the syscall benchmark (SDM Vol. 3A 5.8, 7.2): flat code and
// data of DPL 3 at 0x18 and 0x20, and a 32-bit TSS (0x28) whose ESP0 is
// where int 0x80 from ring 3 lands.
static uint64_t gdt[6] __attribute__((aligned(8)));
static uint32_t tss[26] __attribute__((aligned(128)));  // 104 bytes, no I/O bitmap
static uint8_t kernel_stack[4096] __attribute__((aligned(16)));
uint8_t nano_user_stack[4096] __attribute__((aligned(16)));
uint32_t nano_kernel_esp;
__asm__(".set nano_user_stack_top, nano_user_stack + 4096");

static uint64_t descriptor(uint32_t base, uint32_t limit, uint8_t access, uint8_t flags) {
  return (limit & 0xFFFFull) | (uint64_t)(base & 0xFFFFFF) << 16 | (uint64_t)access << 40 |
         (uint64_t)((limit >> 16) & 0xF) << 48 | (uint64_t)flags << 48 |
         (uint64_t)(base >> 24) << 56;
}

static void setup_rings(void) {
  gdt[1] = descriptor(0, 0xFFFFF, 0x9A, 0xC0);
  gdt[2] = descriptor(0, 0xFFFFF, 0x92, 0xC0);
  gdt[3] = descriptor(0, 0xFFFFF, 0xFA, 0xC0);
  gdt[4] = descriptor(0, 0xFFFFF, 0xF2, 0xC0);
  gdt[5] = descriptor((uint32_t)(uintptr_t)tss, sizeof(tss) - 1, 0x89, 0);
  tss[1] = (uint32_t)(uintptr_t)(kernel_stack + sizeof(kernel_stack));  // ESP0
  tss[2] = kGuestDataSelector;                                            // SS0
  tss[25] = sizeof(tss) << 16;  // the I/O map base: past the limit, no bitmap
  struct __attribute__((packed)) {
    uint16_t limit;
    uint32_t base;
  } gdtr = {sizeof(gdt) - 1, (uint32_t)(uintptr_t)gdt};
  guest_load_gdt(&gdtr);
  __asm__ volatile("ltr %w0" : : "r"(0x28));
}

static void machine_setup(void) {
  setup_rings();
  for (unsigned v = 0; v < kVectors; v++) set_gate(v, nano_unexpected_entry, kGuestInterruptGate);
  set_gate(kVectorDe, nano_divzero_entry, kGuestInterruptGate);
  set_gate(kVectorSyscall, nano_syscall_entry, kGuestTrapGate | kGateUser);
  set_gate(kVectorUserExit, nano_user_exit_entry, kGuestInterruptGate | kGateUser);
  struct __attribute__((packed)) {
    uint16_t limit;
    uint32_t base;
  } idtr = {sizeof(idt) - 1, (uint32_t)(uintptr_t)idt};
  __asm__ volatile("lidt %0" : : "m"(idtr) : "memory");
}

// TSC ticks per second against PIT channel 2 (about 50 ms, the second of
// two waits so the first absorbs translation). Printed as a cross-check that
// the runner's TSC ticks at the host's rate; run.sh uses the native figure.
static uint64_t measure_tsc_hz(void) {
  enum { kPitCount = 59659 };  // 50 ms at 1.193182 MHz
  uint64_t cycles = 0;
  for (int i = 0; i < 2; i++) {
    uint64_t start = guest_rdtsc();
    guest_pit_busy_wait(kPitCount);
    cycles = guest_rdtsc() - start;
  }
  return cycles * kGuestPitHz / kPitCount;
}

#define NANO_IN_LOOP nano_in_loop
#define NANO_SYSCALL_LOOP nano_user_syscall_loop
#define NANO_DIVZERO_TRAPS 1
#define NANO_SYSCALL_TRAPS 1

// ---- Paging (guest only) ----

// 32-bit paging with 4 KiB pages (SDM Vol. 3A 4.3). [0, 16 MiB) maps onto
// itself in both address spaces (the image, loaded at 1 MiB, lies there);
// the test window at 1 GiB has its own page table in each.
enum {
  kPageSize = 0x1000,
  kPteP = 1 << 0,
  kPteRw = 1 << 1,
  kIdentityTables = 4,  // 4 x 4 MiB
  kWindow = 0x40000000,
  kFaultPage = kWindow + 16 * kPageSize,   // pgfault: not present between faults
  kModifyPage = kWindow + 32 * kPageSize,  // ptemod
  kWorkingSet = 4,                         // cr3: pages kWindow.. in each space
  kCr0Pg = 1u << 31,
  kCr0Wp = 1u << 16,
};

static uint32_t page_directory[2][1024] __attribute__((aligned(kPageSize)));
static uint32_t identity_table[kIdentityTables][1024] __attribute__((aligned(kPageSize)));
static volatile uint32_t window_table[2][1024] __attribute__((aligned(kPageSize)));
static uint8_t frames[2 * kWorkingSet][kPageSize] __attribute__((aligned(kPageSize)));

extern const char __bss_end[];  // guest.ld

// Everything the guest allocates lies in the identity-mapped 16 MiB.
static uint32_t phys(const volatile void *p) { return (uint32_t)(uintptr_t)p; }

static inline void invlpg(uint32_t linear) {
  __asm__ volatile("invlpg (%0)" : : "r"(linear) : "memory");
}

static inline void write_cr3(uint32_t value) {
  __asm__ volatile("mov %0, %%cr3" : : "r"(value) : "memory");
}

static inline void touch(uint32_t linear) { (void)*(volatile uint32_t *)(uintptr_t)linear; }

void nano_page_fault_entry(void);

// #PF pushes an error code (SDM Vol. 3A 6.15): drop it before iret.
__asm__(
    "  .text\n"
    "  .balign 16\n"
    "  .globl nano_page_fault_entry\n"
    "nano_page_fault_entry:\n"
    "  pusha\n"
    "  cld\n"
    "  lea 32(%esp), %edx\n"  // error code, eip, cs, eflags
    "  mov %cr2, %eax\n"
    "  push %edx\n"
    "  push %eax\n"
    "  call nano_page_fault\n"
    "  add $8, %esp\n"
    "  popa\n"
    "  add $4, %esp\n"
    "  iret\n");

// Maps the faulting page of the pgfault benchmark; anything else ends the run.
__attribute__((used)) void nano_page_fault(uint32_t cr2, const uint32_t *frame) {
  if ((cr2 & ~(kPageSize - 1u)) != kFaultPage) {
    check_fail("unexpected #PF at %08x, error code %x, eip %08x", cr2, frame[0], frame[1]);
    guest_exit(check_finish());
  }
  window_table[0][(kFaultPage >> 12) & 1023] = phys(frames[0]) | kPteP | kPteRw;
  nano_trap_count++;
}

// Turns paging on; called before the first benchmark that needs it, so that
// an engine without paging still measures the others.
static void paging_setup(void) {
  check_true("image ends below the identity map's 16 MiB",
             phys(__bss_end) <= kIdentityTables * 0x400000u);
  for (unsigned i = 0; i < kIdentityTables * 1024; i++) {
    identity_table[i / 1024][i % 1024] = i * kPageSize | kPteP | kPteRw;
  }
  for (unsigned space = 0; space < 2; space++) {
    for (unsigned t = 0; t < kIdentityTables; t++) {
      page_directory[space][t] = phys(identity_table[t]) | kPteP | kPteRw;
    }
    page_directory[space][kWindow >> 22] = phys(window_table[space]) | kPteP | kPteRw;
    for (unsigned p = 0; p < kWorkingSet; p++) {
      window_table[space][p] = phys(frames[space * kWorkingSet + p]) | kPteP | kPteRw;
    }
  }
  window_table[0][(kModifyPage >> 12) & 1023] = phys(frames[0]) | kPteP | kPteRw;
  write_cr3(phys(page_directory[0]));
  set_gate(kVectorPf, nano_page_fault_entry, kGuestInterruptGate);
  uint32_t cr0;
  __asm__ volatile("mov %%cr0, %0" : "=r"(cr0));
  __asm__ volatile("mov %0, %%cr0" : : "r"(cr0 | kCr0Pg | kCr0Wp) : "memory");
}

static void pgfault_loop(uint32_t n) {
  volatile uint32_t *pte = &window_table[0][(kFaultPage >> 12) & 1023];
  for (; n; n--) {
    touch(kFaultPage);  // #PF; the handler maps the page and the read retries
    *pte = 0;
    invlpg(kFaultPage);
  }
}

static void ptemod_loop(uint32_t n) {
  volatile uint32_t *pte = &window_table[0][(kModifyPage >> 12) & 1023];
  const uint32_t entries[2] = {phys(frames[0]) | kPteP | kPteRw, phys(frames[1]) | kPteP | kPteRw};
  for (; n; n--) {
    *pte = entries[n & 1];
    invlpg(kModifyPage);
  }
}

static void cr3_loop(uint32_t n) {
  const uint32_t spaces[2] = {phys(page_directory[0]), phys(page_directory[1])};
  for (; n; n--) {
    write_cr3(spaces[n & 1]);
    for (unsigned p = 0; p < kWorkingSet; p++) touch(kWindow + p * kPageSize);
  }
  write_cr3(spaces[0]);
}

#define NANO_PGFAULT_LOOP pgfault_loop
#define NANO_PTEMOD_LOOP ptemod_loop
#define NANO_CR3_LOOP cr3_loop

#endif  // BT_GUEST_NATIVE

#ifndef NANO_PGFAULT_LOOP
#define NANO_PGFAULT_LOOP 0
#define NANO_PTEMOD_LOOP 0
#define NANO_CR3_LOOP 0
#endif

// ---- Driver ----

struct benchmark {
  const char *name;
  void (*loop)(uint32_t n);  // 0: not available in this build
  uint32_t traps_per_op;     // handler runs nano_trap_count must show
  int needs_paging;
};

static const struct benchmark benchmarks[] = {
    {"syscall", NANO_SYSCALL_LOOP, NANO_SYSCALL_TRAPS, 0},
    {"in", NANO_IN_LOOP, 0, 0},
    {"call/ret", nano_call_ret_loop, 0, 0},
    {"divzero", nano_divzero_loop, NANO_DIVZERO_TRAPS, 0},
    {"pgfault", NANO_PGFAULT_LOOP, 1, 1},
    {"ptemod", NANO_PTEMOD_LOOP, 0, 1},
    {"cr3", NANO_CR3_LOOP, 0, 1},
};

static uint64_t timed_run(const struct benchmark *b, uint32_t n) {
  nano_trap_count = 0;
  uint64_t start = guest_rdtsc();
  b->loop(n);
  uint64_t cycles = guest_rdtsc() - start;
  if (nano_trap_count != b->traps_per_op * n) {
    check_fail("%s: %u handler runs for %u operations", b->name, nano_trap_count, n);
  }
  return cycles;
}

static void run(const struct benchmark *b) {
  if (!b->loop) {
    guest_printf("%s n/a\n", b->name);
    return;
  }
  uint32_t n = 16;
  uint64_t cycles;
  while ((cycles = timed_run(b, n)) < kMinCycles && n < 0x40000000u) {
    // Aim a quarter past kMinCycles so the next run is likely the last.
    uint64_t next = cycles ? (uint64_t)n * kMinCycles * 5 / (4 * cycles) : (uint64_t)n * 16;
    if (next < 2ull * n) next = 2ull * n;
    if (next > 16ull * n) next = 16ull * n;
    n = next > 0x40000000u ? 0x40000000u : (uint32_t)next;
  }
  for (int i = 1; i < kRuns; i++) {
    uint64_t again = timed_run(b, n);
    if (again < cycles) cycles = again;
  }
  uint64_t hundredths = (cycles * 100 + n / 2) / n;
  guest_printf("%s %llu.%02u\n", b->name, hundredths / 100, (unsigned)(hundredths % 100));
}

int main(void) {
  machine_setup();
  guest_printf("tsc_hz %llu\n", measure_tsc_hz());
  int paging = 0;
  for (unsigned i = 0; i < ARRAY_SIZE(benchmarks); i++) {
    const struct benchmark *b = &benchmarks[i];
    if (b->loop && b->needs_paging && !paging) {
      paging_setup();
      paging = 1;
    }
    run(b);
  }
  return check_finish();
}
