// bt_native_runner: the conformance tester's reference. Runs 32-bit x86
// snippets on the host CPU and reports how each ended, for comparison with
// libbt. A server: reads one struct conf_request at a time from stdin and
// answers each with a struct conf_result on stdout, until stdin ends
// (conformance_abi.h has the format and the memory layout).
//
// A run loads every register from the request, jumps to the snippet and lets
// it run until it raises an exception, normally the int3 that fills the rest
// of the code pages. The signal handler copies the registers and the FXSAVE
// image out of the signal frame and leaves through leave_snippet
// (native_runner_entry.S), which returns from enter_snippet to the server
// loop. Neither sigreturn nor longjmp: sigreturn goes through int 0x80, which
// took two thirds of a run's time on the 6.18 kernel this was written on (9
// microseconds per run with it, 3 without), and glibc's longjmp reads GS,
// which the snippet may have left pointing anywhere. So the handler touches
// nothing in TLS, leave_snippet reloads FS and GS itself, and the server loop
// restores the signal mask that sigreturn would have.
#define _GNU_SOURCE
#include "conformance_abi.h"

#include <asm/ldt.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/ucontext.h>
#include <unistd.h>

enum {
  // CF PF AF ZF SF DF OF: the flags a request sets (SDM Vol. 1, 3.4.3).
  kEflagsFromRequest = 0x0CD5,
  // Bit 1 is always set; IF is always set in user mode.
  kEflagsFixed = 0x0202,
  kEflagsAc = 0x40000,
  kFxsaveMxcsr = 24,
  kFxsaveMxcsrMask = 28,
  // The part of an FXSAVE image that 32-bit code has: x87, MXCSR and XMM0-7.
  // The rest holds XMM8-15, reserved bytes, and the kernel's own marker in a
  // signal frame; results leave it zero.
  kFxsaveBytes32 = 288,
  kFxsaveBytes = 512,
  kLdtEntryFs = 0,
  kLdtEntryGs = 1,
  kSignalStackBytes = 64 * 1024,
};

// Shared with native_runner_entry.S: the state enter_snippet loads and the
// runner's own that leave_snippet restores.
uint32_t snippet_entry_gpr[8];
uint32_t snippet_entry_eflags;
uint32_t snippet_entry_fs, snippet_entry_gs;
const uint32_t snippet_code_address = CONF_CODE_ADDRESS;
_Alignas(16) uint8_t snippet_entry_fxsave[kFxsaveBytes];
uint32_t host_esp, host_fs, host_gs;
void enter_snippet(void);
__attribute__((noreturn)) void leave_snippet(void);

// What the signal handler captured from the signal frame.
static struct {
  int signal;
  uint32_t gpr[8];
  uint32_t eip, eflags, trapno, error_code, cr2;
  int has_fxsave;  // 0 if the kernel gave the FPU state in the FSAVE format only
  uint8_t fxsave[kFxsaveBytes];
} snippet_end;

// Set just before enter_snippet; the handler clears it when it takes the
// snippet's end, so a signal that finds it clear came from the runner itself.
static volatile sig_atomic_t snippet_running;

// The runner's signal mask, which the handler's own mask replaces until the
// server loop puts it back.
static sigset_t host_signal_mask;

// The bits of MXCSR this CPU implements (SDM Vol. 1, 11.6.6).
static uint32_t mxcsr_mask;

// FS or GS: the runner's own selector for a run with base 0, otherwise an LDT
// data segment with the requested base. modify_ldt is slow, so the descriptor
// is rewritten only when the base differs from the previous run's.
struct snippet_segment {
  const char *name;
  int ldt_entry;
  uint32_t installed_base;  // 0: the descriptor has not been written yet
};

static struct snippet_segment snippet_fs = {"FS", kLdtEntryFs, 0};
static struct snippet_segment snippet_gs = {"GS", kLdtEntryGs, 0};

static void capture_snippet_end(int signo, siginfo_t *info, void *context) {
  (void)info;
  if (!snippet_running) {
    if (signo == SIGALRM) return;  // the timer ran out just after its run ended
    // A fault in the runner itself: let it kill the runner, so that the
    // client sees the crash instead of a made-up result.
    signal(signo, SIG_DFL);
    return;
  }
  snippet_running = 0;
  // The kernel clears DF and TF for a handler but keeps the snippet's AC,
  // which would make the runner's own unaligned accesses fault.
  __asm__ volatile("pushf; andl %0, (%%esp); popf" : : "i"(~kEflagsAc) : "cc", "memory");

  const ucontext_t *uc = context;
  const greg_t *gregs = uc->uc_mcontext.gregs;
  snippet_end.signal = signo;
  snippet_end.gpr[CONF_EAX] = gregs[REG_EAX];
  snippet_end.gpr[CONF_ECX] = gregs[REG_ECX];
  snippet_end.gpr[CONF_EDX] = gregs[REG_EDX];
  snippet_end.gpr[CONF_EBX] = gregs[REG_EBX];
  // The kernel fills both ESP slots of a 32-bit sigcontext alike.
  snippet_end.gpr[CONF_ESP] = gregs[REG_ESP];
  snippet_end.gpr[CONF_EBP] = gregs[REG_EBP];
  snippet_end.gpr[CONF_ESI] = gregs[REG_ESI];
  snippet_end.gpr[CONF_EDI] = gregs[REG_EDI];
  snippet_end.eip = gregs[REG_EIP];
  snippet_end.eflags = gregs[REG_EFL];
  snippet_end.trapno = gregs[REG_TRAPNO];
  snippet_end.error_code = gregs[REG_ERR];
  snippet_end.cr2 = uc->uc_mcontext.cr2;
  // fpregs is the kernel's struct _fpstate_32, which glibc declares in full
  // as struct _fpstate: an FSAVE-format copy, then the FXSAVE image from
  // _fxsr_env on.
  const struct _fpstate *fpstate = (const struct _fpstate *)uc->uc_mcontext.fpregs;
  snippet_end.has_fxsave = fpstate->magic == X86_FXSR_MAGIC;
  if (snippet_end.has_fxsave) memcpy(snippet_end.fxsave, fpstate->_fxsr_env, kFxsaveBytes32);
  leave_snippet();
}

__attribute__((format(printf, 2, 3))) static int fail(struct conf_result *result,
                                                      const char *format, ...) {
  memset(result, 0, sizeof *result);
  result->outcome = CONF_RUNNER_ERROR;
  va_list arguments;
  va_start(arguments, format);
  vsnprintf(result->message, sizeof result->message, format, arguments);
  va_end(arguments);
  return 0;
}

static int choose_selector(struct snippet_segment *segment, uint32_t base, uint32_t host_selector,
                           uint32_t *selector, struct conf_result *result) {
  if (base == 0) {
    *selector = host_selector;
    return 1;
  }
  if (base != segment->installed_base) {
    // Base `base`, limit 4 GiB, 32-bit, writable data.
    struct user_desc descriptor = {
        .entry_number = segment->ldt_entry,
        .base_addr = base,
        .limit = 0xFFFFF,
        .seg_32bit = 1,
        .contents = MODIFY_LDT_CONTENTS_DATA,
        .limit_in_pages = 1,
        .useable = 1,
    };
    if (syscall(SYS_modify_ldt, 1, &descriptor, sizeof descriptor) != 0) {
      return fail(result, "modify_ldt for %s base 0x%x: %s", segment->name, base, strerror(errno));
    }
    segment->installed_base = base;
  }
  const uint32_t kTableLdt = 1 << 2, kRpl3 = 3;
  *selector = (uint32_t)segment->ldt_entry << 3 | kTableLdt | kRpl3;
  return 1;
}

static int load_fxsave(const uint8_t *fxsave, struct conf_result *result) {
  memcpy(snippet_entry_fxsave, fxsave, kFxsaveBytes);
  uint32_t mxcsr;
  memcpy(&mxcsr, snippet_entry_fxsave + kFxsaveMxcsr, sizeof mxcsr);
  // Bits 16 and up are reserved (fxrstor would #GP), except on AMD where
  // bit 17 allows misaligned SSE operands, which the SDM does not have.
  mxcsr &= 0xFFFF;
  if (mxcsr & ~mxcsr_mask) {
    return fail(result, "MXCSR 0x%x sets bits this CPU lacks (MXCSR_MASK 0x%x)", mxcsr, mxcsr_mask);
  }
  memcpy(snippet_entry_fxsave + kFxsaveMxcsr, &mxcsr, sizeof mxcsr);
  return 1;
}

static void set_timer(uint32_t milliseconds) {
  struct itimerval timer = {
      .it_value = {.tv_sec = milliseconds / 1000, .tv_usec = milliseconds % 1000 * 1000}};
  setitimer(ITIMER_REAL, &timer, NULL);
}

static void run(const struct conf_request *request, struct conf_result *result) {
  if (request->code_bytes > CONF_CODE_BYTES) {
    fail(result, "code_bytes %u exceeds CONF_CODE_BYTES", request->code_bytes);
    return;
  }
  if (!choose_selector(&snippet_fs, request->fs_base, host_fs, &snippet_entry_fs, result) ||
      !choose_selector(&snippet_gs, request->gs_base, host_gs, &snippet_entry_gs, result) ||
      !load_fxsave(request->cpu.fxsave, result)) {
    return;
  }
  // The snippet may have written anywhere in the code pages.
  memset((void *)CONF_CODE_ADDRESS, CONF_INT3, CONF_CODE_BYTES);
  memcpy((void *)CONF_CODE_ADDRESS, request->code, request->code_bytes);
  memcpy((void *)CONF_DATA_ADDRESS, request->data, CONF_DATA_BYTES);
  memcpy(snippet_entry_gpr, request->cpu.gpr, sizeof snippet_entry_gpr);
  snippet_entry_eflags = (request->cpu.eflags & kEflagsFromRequest) | kEflagsFixed;

  if (request->timeout_ms != 0) set_timer(request->timeout_ms);
  snippet_running = 1;
  enter_snippet();
  sigprocmask(SIG_SETMASK, &host_signal_mask, NULL);
  if (request->timeout_ms != 0) set_timer(0);

  if (!snippet_end.has_fxsave) {
    fail(result, "the kernel gave no FXSAVE image in the signal frame");
    return;
  }
  const int timed_out = snippet_end.signal == SIGALRM;
  result->outcome = timed_out ? CONF_TIMEOUT : CONF_EXCEPTION;
  result->vector = timed_out ? 0 : snippet_end.trapno;
  result->error_code = timed_out ? 0 : snippet_end.error_code;
  result->fault_address = result->vector == 14 ? snippet_end.cr2 : 0;
  memcpy(result->cpu.gpr, snippet_end.gpr, sizeof result->cpu.gpr);
  result->cpu.eip = snippet_end.eip;
  result->cpu.eflags = snippet_end.eflags;
  memcpy(result->cpu.fxsave, snippet_end.fxsave, kFxsaveBytes);
  memcpy(result->data, (const void *)CONF_DATA_ADDRESS, CONF_DATA_BYTES);
  memset(result->message, 0, sizeof result->message);
}

// Returns how many bytes it read, fewer than `size` only at end of input, or
// -1 on a read error.
static ssize_t read_full(int fd, void *buffer, size_t size) {
  size_t done = 0;
  while (done < size) {
    ssize_t n = read(fd, (char *)buffer + done, size - done);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    done += (size_t)n;
  }
  return (ssize_t)done;
}

static int write_full(int fd, const void *buffer, size_t size) {
  size_t done = 0;
  while (done < size) {
    ssize_t n = write(fd, (const char *)buffer + done, size - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return 0;
    }
    done += (size_t)n;
  }
  return 1;
}

static int map_region(uint32_t address, uint32_t bytes, int protection) {
  void *mapped = mmap((void *)address, bytes, protection,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  if (mapped == (void *)address) return 1;
  fprintf(stderr, "bt_native_runner: cannot map 0x%x bytes at 0x%x: %s\n", bytes, address,
          mapped == MAP_FAILED ? strerror(errno) : "address taken");
  return 0;
}

static int install_handlers(void) {
  static uint8_t signal_stack[kSignalStackBytes];
  const stack_t stack = {.ss_sp = signal_stack, .ss_size = sizeof signal_stack};
  if (sigaltstack(&stack, NULL) != 0) return 0;
  static const int kSignals[] = {SIGTRAP, SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGALRM};
  // The snippet's ESP may point anywhere, hence the alternate stack; one
  // snippet end at a time, hence the mask.
  struct sigaction action = {.sa_sigaction = capture_snippet_end,
                             .sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART};
  sigemptyset(&action.sa_mask);
  for (size_t i = 0; i < sizeof kSignals / sizeof kSignals[0]; ++i) {
    sigaddset(&action.sa_mask, kSignals[i]);
  }
  for (size_t i = 0; i < sizeof kSignals / sizeof kSignals[0]; ++i) {
    if (sigaction(kSignals[i], &action, NULL) != 0) return 0;
  }
  // The signal mask is inherited across exec: a fault while blocked kills.
  return sigprocmask(SIG_UNBLOCK, &action.sa_mask, NULL) == 0;
}

static void save_host_state(void) {
  __asm__ volatile("mov %%fs, %0" : "=r"(host_fs));
  __asm__ volatile("mov %%gs, %0" : "=r"(host_gs));
  sigprocmask(SIG_SETMASK, NULL, &host_signal_mask);
  _Alignas(16) uint8_t fxsave[kFxsaveBytes] = {0};
  __asm__ volatile("fxsave %0" : "=m"(fxsave));
  memcpy(&mxcsr_mask, fxsave + kFxsaveMxcsrMask, sizeof mxcsr_mask);
  // A zero mask predates DAZ: every bit but DAZ (SDM Vol. 1, 11.6.6).
  if (mxcsr_mask == 0) mxcsr_mask = 0xFFBF;
}

int main(void) {
  if (!map_region(CONF_CODE_ADDRESS, CONF_CODE_BYTES, PROT_READ | PROT_WRITE | PROT_EXEC) ||
      !map_region(CONF_DATA_ADDRESS, CONF_DATA_BYTES, PROT_READ | PROT_WRITE)) {
    return 1;
  }
  if (!install_handlers()) {
    fprintf(stderr, "bt_native_runner: cannot install signal handlers: %s\n", strerror(errno));
    return 1;
  }
  save_host_state();

  static struct conf_request request;
  static struct conf_result result;
  for (;;) {
    ssize_t got = read_full(STDIN_FILENO, &request, sizeof request);
    if (got == 0) return 0;
    if (got < 0) {
      fprintf(stderr, "bt_native_runner: cannot read a request: %s\n", strerror(errno));
      return 1;
    }
    if ((size_t)got < sizeof request) {
      fprintf(stderr, "bt_native_runner: input ends inside a request (%zd of %zu bytes)\n", got,
              sizeof request);
      return 1;
    }
    run(&request, &result);
    if (!write_full(STDOUT_FILENO, &result, sizeof result)) return 1;
  }
}
