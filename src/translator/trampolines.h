// Shared glue code between the dispatcher (C++) and translated code:
// entering a unit, leaving to the dispatcher, and calling out to C++.
#pragma once

#include "translator/code_cache.h"
#include "translator/cpu_state.h"

#include <bt/result.h>

namespace bt::translator {

struct Trampolines {
  // Loads the guest state from `state` and runs from `code` until an exit.
  using EnterFunction = ExitReason (*)(CpuState* state, const std::uint8_t* code);
  EnterFunction enter = nullptr;
  // Jump targets for translated code (all expect r13 = CpuState*):
  const std::uint8_t* exit_branch = nullptr;    // r14 = ExitLink*, next_eip set
  const std::uint8_t* exit_indirect = nullptr;  // r14d = target eip
  const std::uint8_t* exit_saved = nullptr;     // guest registers already saved
  const std::uint8_t* callout = nullptr;        // call: r11 = record, r14d = address
};

Result<Trampolines> BuildTrampolines(CodeCache& cache);

}  // namespace bt::translator
