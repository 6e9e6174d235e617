#include "translator/trampolines.h"

#include "translator/host_registers.h"

#include <cstring>

namespace bt::translator {
namespace {

using asmjit::CodeHolder;
using asmjit::Environment;
using asmjit::Label;

constexpr std::size_t kTrampolineBytes = 1024;

void SaveGuestRegisters(x86::Assembler& a) {
  a.pushfq();
  a.pop(StateField(offsetof(CpuState, host_flags), 8));
  for (unsigned r = 0; r < 8; ++r) a.mov(GprField(r), kGuestGpr32[r]);
}

void LoadGuestRegisters(x86::Assembler& a) {
  for (unsigned r = 0; r < 8; ++r) a.mov(kGuestGpr32[r], GprField(r));
  a.push(StateField(offsetof(CpuState, host_flags), 8));
  a.popfq();
}

// The guest's x87 and MMX state, control word included, stays in the host's
// registers for a whole run (Vcpu::Run loads and saves it), as the C++ code
// between units uses no x87 instructions (guest_fpu.h). What that code does
// change is switched at every entry and exit: XMM0-7, which the C++ ABI
// lets any call clobber, and MXCSR, so that the guest's SSE rounding and
// exception masks never reach C++ code. Both live in the guest's FXSAVE
// image, where the rest of the runtime finds them. A few dozen cycles,
// where a whole FXSAVE/FXRSTOR with FNINIT took a few hundred on every
// callout.
constexpr std::size_t kGuestMxcsr = offsetof(CpuState, guest_fpu) + 24;
constexpr std::size_t kGuestXmm = offsetof(CpuState, guest_fpu) + 160;
constexpr unsigned kGuestXmmRegisters = 8;

// Into guest code.
void LoadGuestFpu(x86::Assembler& a) {
  a.ldmxcsr(StateField(kGuestMxcsr, 4));
  for (unsigned i = 0; i < kGuestXmmRegisters; ++i) {
    a.movaps(x86::xmm(i), StateField(kGuestXmm + 16 * i, 16));
  }
}

// Out of guest code, into C++.
void LoadHostFpu(x86::Assembler& a) {
  for (unsigned i = 0; i < kGuestXmmRegisters; ++i) {
    a.movaps(StateField(kGuestXmm + 16 * i, 16), x86::xmm(i));
  }
  a.stmxcsr(StateField(kGuestMxcsr, 4));
  a.ldmxcsr(StateField(offsetof(CpuState, host_mxcsr), 4));
}

// Host callee-saved registers, pushed by enter and popped on every exit.
const x86::Gp kCalleeSaved[] = {x86::rbx, x86::rbp, x86::r12, x86::r13, x86::r14, x86::r15};

void ReturnToDispatcher(x86::Assembler& a) {
  a.cld();  // the C++ ABI wants DF clear; the guest's DF is saved
  a.mov(x86::rsp, StateField(offsetof(CpuState, host_rsp), 8));
  a.mov(x86::eax, StateField(offsetof(CpuState, exit_reason), 4));
  a.add(x86::rsp, 8);
  for (int i = 5; i >= 0; --i) a.pop(kCalleeSaved[i]);
  a.ret();
}

}  // namespace

Result<Trampolines> BuildTrampolines(CodeCache& cache) {
  std::uint8_t* memory = cache.AllocatePermanent(kTrampolineBytes);
  Environment env(asmjit::Arch::kX64);
  CodeHolder code;
  code.init(env, reinterpret_cast<std::uint64_t>(memory));
  x86::Assembler a(&code);

  Label enter = a.newLabel(), exit_common = a.newLabel(), exit_saved = a.newLabel();
  Label exit_branch = a.newLabel(), exit_indirect = a.newLabel(), callout = a.newLabel();
  Label callout_exit = a.newLabel(), return_sentinel = a.newLabel();

  // ExitReason enter(CpuState* state /* rdi */, const uint8_t* code /* rsi */)
  a.bind(enter);
  for (const x86::Gp& reg : kCalleeSaved) a.push(reg);
  a.sub(x86::rsp, 8);  // callouts call C++ with this stack, 16-byte aligned
  a.mov(kState, x86::rdi);
  a.mov(StateField(offsetof(CpuState, host_rsp), 8), x86::rsp);
  LoadGuestFpu(a);
  a.mov(kWindow, StateField(offsetof(CpuState, window_base), 8));
  a.mov(x86::r11, x86::rsi);
  // Every run starts on an empty return stack: what it held may point into
  // units dropped or overwritten since (the cache only reuses memory
  // between runs, in the dispatcher).
  a.mov(x86::rsp, StateField(offsetof(CpuState, return_stack_empty), 8));
  LoadGuestRegisters(a);
  a.jmp(x86::r11);

  // An empty return stack's ret popped the sentinel, which stays in place.
  a.bind(return_sentinel);
  a.lea(x86::rsp, x86::ptr(x86::rsp, -8));
  EmitIndirectLookup(a, 0, /*salt_in_state=*/true, exit_indirect);

  a.bind(exit_branch);
  a.mov(StateField(offsetof(CpuState, exit_reason), 4),
        static_cast<std::uint32_t>(ExitReason::kBranch));
  a.mov(StateField(offsetof(CpuState, exit_record), 8), kScratch);
  a.jmp(exit_common);

  a.bind(exit_indirect);
  a.mov(StateField(offsetof(CpuState, next_eip), 4), kScratch32);
  a.mov(StateField(offsetof(CpuState, exit_reason), 4),
        static_cast<std::uint32_t>(ExitReason::kIndirect));

  a.bind(exit_common);
  a.mov(x86::rsp, StateField(offsetof(CpuState, host_rsp), 8));
  SaveGuestRegisters(a);
  a.bind(exit_saved);
  LoadHostFpu(a);
  ReturnToDispatcher(a);

  // Called from translated code with r11 = record, r14d = effective address.
  // C++ runs on the host stack, where the dispatcher left it.
  a.bind(callout);
  a.mov(StateField(offsetof(CpuState, translated_rsp), 8), x86::rsp);
  a.mov(x86::rsp, StateField(offsetof(CpuState, host_rsp), 8));
  SaveGuestRegisters(a);
  a.mov(StateField(offsetof(CpuState, effective_address), 4), kScratch32);
  a.mov(StateField(offsetof(CpuState, exit_record), 8), x86::r11);
  LoadHostFpu(a);
  a.cld();
  a.mov(x86::rdi, StateField(offsetof(CpuState, runtime), 8));
  a.mov(x86::rsi, kState);
  a.mov(x86::rdx, x86::r11);
  a.call(StateField(offsetof(CpuState, callout_handler), 8));
  a.test(x86::al, x86::al);
  a.jnz(callout_exit);
  LoadGuestFpu(a);
  a.mov(kWindow, StateField(offsetof(CpuState, window_base), 8));
  LoadGuestRegisters(a);
  a.mov(x86::rsp, StateField(offsetof(CpuState, translated_rsp), 8));
  a.ret();
  a.bind(callout_exit);
  ReturnToDispatcher(a);

  code.flatten();
  code.resolveUnresolvedLinks();
  code.relocateToBase(reinterpret_cast<std::uint64_t>(memory));
  if (code.codeSize() > kTrampolineBytes) return Error{"internal: trampolines do not fit"};
  code.copyFlattenedData(memory, kTrampolineBytes);

  Trampolines t;
  t.enter = reinterpret_cast<Trampolines::EnterFunction>(memory + code.labelOffset(enter));
  t.exit_branch = memory + code.labelOffset(exit_branch);
  t.exit_indirect = memory + code.labelOffset(exit_indirect);
  t.exit_saved = memory + code.labelOffset(exit_saved);
  t.callout = memory + code.labelOffset(callout);
  t.return_sentinel = memory + code.labelOffset(return_sentinel);
  return t;
}

}  // namespace bt::translator
