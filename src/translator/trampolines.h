// Shared glue code between the dispatcher (C++) and translated code:
// entering a unit, leaving to the dispatcher, and calling out to C++.
#pragma once

#include "translator/code_cache.h"
#include "translator/cpu_state.h"
#include "translator/host_registers.h"

#include <bt/result.h>

namespace bt::translator {

// The inline lookup of the guest address in r14d in the indirect-branch
// table (kIndirectTableOffset): jumps to the unit found, else to `miss` with
// r14d and the guest registers intact. The entry's salt is `salt`, or, with
// `salt_in_state`, CpuState::indirect_salt. lea and loop compare without
// touching guest EFLAGS: lea gives 1 on a hit, which loop counts down to 0
// and falls through, so a hit takes no branch but its jump to the unit
// (taken branches cost branch-target-buffer entries, and this runs at every
// return and indirect jump). Clobbers r8 to r10.
template <class Target>
void EmitIndirectLookup(x86::Assembler& a, std::uint32_t salt, bool salt_in_state,
                        const Target& miss) {
  asmjit::Label missed = a.newLabel();
  a.movzx(x86::r10d, kScratch.r16());
  a.lea(x86::r10, x86::ptr(x86::r10, x86::r10));  // 16-byte entries
  a.mov(x86::r9, x86::rcx);
  a.mov(x86::ecx, x86::dword_ptr(kState, x86::r10, 3, kIndirectTableOffset));
  a.lea(x86::ecx, x86::ptr(x86::rcx, kScratch, 0, static_cast<std::int32_t>(salt + 1)));
  if (salt_in_state) {
    a.mov(x86::r8d, StateField(offsetof(CpuState, indirect_salt), 4));
    a.lea(x86::ecx, x86::ptr(x86::rcx, x86::r8));
  }
  a.loop(x86::rcx, missed);
  a.mov(x86::rcx, x86::r9);
  a.jmp(x86::qword_ptr(kState, x86::r10, 3, kIndirectTableOffset + 8));
  a.bind(missed);
  a.mov(x86::rcx, x86::r9);
  a.jmp(miss);
}

struct Trampolines {
  // Loads the guest state from `state` and runs from `code` until an exit.
  using EnterFunction = ExitReason (*)(CpuState* state, const std::uint8_t* code);
  EnterFunction enter = nullptr;
  // Jump targets for translated code (all expect r13 = CpuState*):
  const std::uint8_t* exit_branch = nullptr;    // r14 = ExitLink*, next_eip set
  const std::uint8_t* exit_indirect = nullptr;  // r14d = target eip
  const std::uint8_t* exit_saved = nullptr;     // guest registers already saved
  const std::uint8_t* callout = nullptr;        // call: r11 = record, r14d = address
  // Where a ret on an empty return stack lands: the slot at
  // CpuState::return_stack_empty holds its address (r14d = target eip).
  const std::uint8_t* return_sentinel = nullptr;
};

Result<Trampolines> BuildTrampolines(CodeCache& cache);

}  // namespace bt::translator
