#include "platform/host_fault.h"

#include <signal.h>
#include <sys/ucontext.h>

#include <cstdlib>
#include <mutex>

namespace bt::platform {
namespace {

thread_local HostFaultHandler t_handler = nullptr;
thread_local void* t_context = nullptr;
thread_local void* t_alternate_stack = nullptr;

constexpr int kFaultSignals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP};
// Linux mcontext register slots in x86 encoding order.
constexpr int kGregSlot[16] = {REG_RAX, REG_RCX, REG_RDX, REG_RBX, REG_RSP, REG_RBP,
                               REG_RSI, REG_RDI, REG_R8,  REG_R9,  REG_R10, REG_R11,
                               REG_R12, REG_R13, REG_R14, REG_R15};

HostFault::Kind KindOfTrap(greg_t trap) {
  switch (trap) {
    case 0: return HostFault::Kind::kDivideError;
    case 3: return HostFault::Kind::kBreakpoint;
    case 6: return HostFault::Kind::kInvalidOpcode;
    case 13: return HostFault::Kind::kGeneralProtection;
    case 14: return HostFault::Kind::kPageFault;
    case 16: return HostFault::Kind::kX87Error;
    case 17: return HostFault::Kind::kAlignmentCheck;
    case 19: return HostFault::Kind::kSimdError;
    default: return HostFault::Kind::kOther;
  }
}

// What was installed before libbt, for faults that are not libbt's.
struct sigaction g_previous[NSIG];

void OnSignal(int signal, siginfo_t* info, void* raw_context) {
  auto* context = static_cast<ucontext_t*>(raw_context);
  greg_t* gregs = context->uc_mcontext.gregs;
  if (t_handler) {
    HostFault fault;
    fault.kind = KindOfTrap(gregs[REG_TRAPNO]);
    fault.write = (gregs[REG_ERR] & 2) != 0;
    fault.address = reinterpret_cast<std::uintptr_t>(info->si_addr);
    for (int i = 0; i < 16; ++i) fault.gpr[i] = static_cast<std::uint64_t>(gregs[kGregSlot[i]]);
    fault.rip = static_cast<std::uint64_t>(gregs[REG_RIP]);
    fault.rflags = static_cast<std::uint64_t>(gregs[REG_EFL]);
    if (t_handler(t_context, fault)) {
      for (int i = 0; i < 16; ++i) gregs[kGregSlot[i]] = static_cast<greg_t>(fault.gpr[i]);
      gregs[REG_RIP] = static_cast<greg_t>(fault.rip);
      gregs[REG_EFL] = static_cast<greg_t>(fault.rflags);
      return;
    }
  }
  const struct sigaction& previous = g_previous[signal];
  if (previous.sa_flags & SA_SIGINFO) {
    previous.sa_sigaction(signal, info, raw_context);
  } else if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN) {
    previous.sa_handler(signal);
  } else {
    // Fault again with the default action, so the crash is reported where
    // it happened.
    struct sigaction default_action {};
    default_action.sa_handler = SIG_DFL;
    sigaction(signal, &default_action, nullptr);
  }
}

// Installs OnSignal unless it is already the handler: the application may
// have installed its own since, and libbt then goes in front of it.
void Install() {
  static std::mutex mutex;
  std::lock_guard lock(mutex);
  struct sigaction action {};
  action.sa_sigaction = OnSignal;
  action.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
  sigemptyset(&action.sa_mask);
  for (int signal : kFaultSignals) {
    struct sigaction current {};
    sigaction(signal, nullptr, &current);
    if ((current.sa_flags & SA_SIGINFO) && current.sa_sigaction == OnSignal) continue;
    sigaction(signal, &action, &g_previous[signal]);
  }
}

}  // namespace

void SetThreadFaultHandler(HostFaultHandler handler, void* context) {
  if (handler) Install();
  if (handler && !t_alternate_stack) {
    constexpr std::size_t kStackBytes = 256 * 1024;
    t_alternate_stack = std::malloc(kStackBytes);
    stack_t stack{};
    stack.ss_sp = t_alternate_stack;
    stack.ss_size = kStackBytes;
    sigaltstack(&stack, nullptr);
  }
  t_handler = handler;
  t_context = context;
}

SignalsHeld::SignalsHeld() {
  sigset_t held;
  sigfillset(&held);
  for (int signal : kFaultSignals) sigdelset(&held, signal);
  pthread_sigmask(SIG_BLOCK, &held, &previous_);
}

SignalsHeld::~SignalsHeld() { pthread_sigmask(SIG_SETMASK, &previous_, nullptr); }

}  // namespace bt::platform

#include <asm/prctl.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace bt::platform {

bool UserModeGsBase() {
  constexpr unsigned long kHwcap2FsGsBase = 1ul << 1;  // HWCAP2_FSGSBASE
  static const bool available = (getauxval(AT_HWCAP2) & kHwcap2FsGsBase) != 0;
  return available;
}

bool SetThreadGsBase(std::uint64_t base) {
  // glibc on x86-64 keeps TLS in FS, so GS is free for the guest window.
  if (UserModeGsBase()) {
    __asm__ volatile("wrgsbase %0" : : "r"(base) : "memory");
    return true;
  }
  return syscall(SYS_arch_prctl, ARCH_SET_GS, base) == 0;
}

}  // namespace bt::platform
