// The host register assignment of translated code (see DESIGN.md).
#pragma once

#include "translator/cpu_state.h"

#include <asmjit/x86.h>
#include <cstddef>

namespace bt::translator {

namespace x86 = asmjit::x86;

// Guest ESP cannot live in RSP (the host stack); R12 encodes like RSP (a SIB
// byte is needed as a base), so rewriting ESP into R12 only adds REX bits.
inline const x86::Gp kGuestGpr32[8] = {x86::eax,  x86::ecx, x86::edx, x86::ebx,
                                       x86::r12d, x86::ebp, x86::esi, x86::edi};
inline const x86::Gp kGuestGpr64[8] = {x86::rax, x86::rcx, x86::rdx, x86::rbx,
                                       x86::r12, x86::rbp, x86::rsi, x86::rdi};
inline const x86::Gp kGuestEsp = x86::r12d;
inline const x86::Gp kState = x86::r13;
inline const x86::Gp kWindow = x86::r15;
inline const x86::Gp kScratch = x86::r14;  // addresses, targets
inline const x86::Gp kScratch32 = x86::r14d;
inline const x86::Gp kSegmentBase = x86::r10d;  // FS/GS base added to an address

// A field of the CpuState block: StateField(offsetof(CpuState, eip), 4).
inline x86::Mem StateField(std::size_t offset, unsigned size) {
  return x86::Mem(kState, static_cast<std::int32_t>(offset), size);
}

inline x86::Mem GprField(unsigned guest_register, unsigned size = 4) {
  return x86::Mem(kState, static_cast<std::int32_t>(offsetof(CpuState, gpr) + 4 * guest_register),
                  size);
}

}  // namespace bt::translator
