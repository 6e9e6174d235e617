// Who owns the host FPU while a vCPU runs. For a whole Vcpu::Run the host's
// x87/MMX registers, control word and status included, hold the guest's
// (the trampolines switch only XMM0-7 and MXCSR at each unit entry and
// exit, see trampolines.cc), so the C++ code of a run must not use x87
// instructions; libbt's own code has none. Code that is not libbt's - the
// devices an application adds - runs inside a HostFpuScope, which gives it
// an empty x87 stack and the host's control word.
#pragma once

#include "translator/cpu_state.h"

namespace bt::runtime {

// Run entry: the guest's FXSAVE image into the host FPU, with the host's
// MXCSR for the C++ code (the host's control words are recorded in `state`).
void TakeFpuForGuest(translator::CpuState& state);
// Run exit: the guest's x87 state back into its FXSAVE image, and an empty
// x87 stack for the host.
void GiveFpuBackToHost(translator::CpuState& state);

class HostFpuScope {
 public:
  explicit HostFpuScope(const translator::CpuState& state);
  ~HostFpuScope();
  HostFpuScope(const HostFpuScope&) = delete;
  HostFpuScope& operator=(const HostFpuScope&) = delete;

 private:
  alignas(16) std::uint8_t guest_[512];
};

}  // namespace bt::runtime
