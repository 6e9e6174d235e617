#include "runtime/guest_fpu.h"

#include <xmmintrin.h>

#include <cstring>

namespace bt::runtime {

namespace {

// FXSAVE image layout (SDM Vol. 1, table 10-2): MXCSR and XMM0-7 are what
// the trampolines keep current in the guest's image at every exit.
constexpr std::size_t kMxcsr = 24, kMxcsrMask = 28, kXmm = 160;

// After FNINIT only: FLDCW raises a pending unmasked x87 exception.
void LoadControlWords(std::uint16_t fcw, std::uint32_t mxcsr) {
  _mm_setcsr(mxcsr);
  __asm__ volatile("fldcw %0" ::"m"(fcw));
}

}  // namespace

void TakeFpuForGuest(translator::CpuState& state) {
  __asm__ volatile("fnstcw %0" : "=m"(state.host_fcw));
  state.host_mxcsr = _mm_getcsr();
  __builtin_ia32_fxrstor64(state.guest_fpu);
  _mm_setcsr(state.host_mxcsr);
}

void GiveFpuBackToHost(translator::CpuState& state) {
  alignas(16) std::uint8_t live[512];
  __builtin_ia32_fxsave64(live);
  // The hardware's MXCSR and XMM registers are the host's by now, and what
  // follows XMM7 is not the guest's (a 32-bit guest has eight XMM
  // registers): only the x87 part comes from the hardware.
  std::memcpy(state.guest_fpu, live, kMxcsr);
  std::memcpy(state.guest_fpu + kMxcsrMask, live + kMxcsrMask, kXmm - kMxcsrMask);
  __asm__ volatile("fninit");
  LoadControlWords(state.host_fcw, state.host_mxcsr);
}

HostFpuScope::HostFpuScope(const translator::CpuState& state) {
  __builtin_ia32_fxsave64(guest_);
  __asm__ volatile("fninit");
  LoadControlWords(state.host_fcw, state.host_mxcsr);
}

HostFpuScope::~HostFpuScope() { __builtin_ia32_fxrstor64(guest_); }

}  // namespace bt::runtime
