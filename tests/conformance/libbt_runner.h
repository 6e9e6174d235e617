// Runs a conformance snippet inside libbt, through the normal translator path
// of a bt::Machine, and reports the end state in the native runner's format.
#pragma once

#include "conformance_abi.h"

#include <bt/machine.h>

#include <cstdint>
#include <memory>

namespace bt::conformance {

class LibbtRunner {
 public:
  // With `paging`, the snippet runs with 32-bit paging on and only the
  // pages the native runner maps present (identity-mapped), so accesses
  // elsewhere raise #PF as the host's SIGSEGV does.
  static Result<std::unique_ptr<LibbtRunner>> Create(unsigned max_unit_instructions, bool paging);

  // Errors are about libbt's host side (the machine could not be built);
  // anything the guest does ends up in `result`.
  Result<void> Run(const conf_request& request, conf_result& result);
  Stats GetStats() const { return machine_->GetStats(); }

 private:
  LibbtRunner(unsigned max_unit_instructions, bool paging)
      : max_unit_instructions_(max_unit_instructions), paging_(paging) {}
  Result<void> Boot();
  Result<void> LoadHarness(std::uint32_t fs_base, std::uint32_t gs_base);

  unsigned max_unit_instructions_;
  bool paging_;
  std::unique_ptr<Machine> machine_;
  bool harness_loaded_ = false;
  bool cr3_loaded_ = false;
  std::uint32_t fs_base_ = 0, gs_base_ = 0;
};

}  // namespace bt::conformance
