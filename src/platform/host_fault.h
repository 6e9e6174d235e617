// Synchronous host CPU faults (SIGSEGV & co. on POSIX), delivered to a
// per-thread handler as a platform-neutral record the handler may edit.
#pragma once

#include <csignal>
#include <cstdint>

namespace bt::platform {

struct HostFault {
  enum class Kind : std::uint8_t {
    kPageFault,
    kGeneralProtection,
    kDivideError,
    kInvalidOpcode,
    kX87Error,
    kSimdError,
    kAlignmentCheck,
    kBreakpoint,
    kOther,
  };
  Kind kind = Kind::kOther;
  bool write = false;          // page faults: the access was a write
  std::uintptr_t address = 0;  // page faults: the faulting address
  // Interrupted register state in x86 encoding order (rax, rcx, rdx, rbx,
  // rsp, rbp, rsi, rdi, r8..r15); edits take effect on resume.
  std::uint64_t gpr[16] = {};
  std::uint64_t rip = 0;
  std::uint64_t rflags = 0;
};

// Returns true to resume the interrupted code with `fault`'s registers, false
// to let the fault take its default course (a crash with a core dump).
using HostFaultHandler = bool (*)(void* context, HostFault& fault);

// Routes faults on the calling thread to `handler` (null to stop). Also gives
// the thread an alternate signal stack. Faults the handler declines go to the
// handler that was installed before, or crash as they would have.
void SetThreadFaultHandler(HostFaultHandler handler, void* context);

// While it lives, holds back on the calling thread every signal but the
// synchronous faults SetThreadFaultHandler routes to its alternate stack:
// translated code runs on a stack of its own whose room nothing checks
// (translator::kReturnStackGuardOffset), where an application's handler must
// not put its frame. Signals sent to the process go to other threads
// meanwhile; those sent to this thread wait until it ends.
class SignalsHeld {
 public:
  SignalsHeld();
  ~SignalsHeld();
  SignalsHeld(const SignalsHeld&) = delete;
  SignalsHeld& operator=(const SignalsHeld&) = delete;

 private:
  sigset_t previous_;
};

}  // namespace bt::platform

namespace bt::platform {

// Points the calling thread's GS base at `base` (the guest window), so that
// gs:-prefixed guest accesses in translated code land in the window.
bool SetThreadGsBase(std::uint64_t base);
// True when user code may run wrgsbase itself (the kernel enabled FSGSBASE):
// then changing the GS base costs an instruction instead of a system call.
bool UserModeGsBase();

}  // namespace bt::platform
