// Runs each test case natively and under libbt with every translator setting,
// and compares libbt's end state with the native one.
#pragma once

#include "libbt_runner.h"
#include "native_runner.h"
#include "test_case.h"

#include <bt/result.h>

#include <memory>
#include <string>
#include <vector>

namespace bt::conformance {

// One way of running libbt: its translation-unit cap, and whether the guest
// runs with paging on (identity-mapped, only the pages the native runner
// maps present).
struct Setting {
  unsigned unit_cap = 64;
  bool paging = false;
  std::string Name() const;
};

// The settings tests use by default: single-instruction units without
// paging, and full units with paging.
inline const std::vector<Setting> kDefaultSettings = {{1, false}, {64, true}};

class DifferentialTester {
 public:
  // One libbt machine per setting.
  static Result<std::unique_ptr<DifferentialTester>> Create(const std::string& native_runner_path,
                                                            const std::vector<Setting>& settings);

  // Mismatch reports, one per libbt setting that disagrees with the host.
  Result<std::vector<std::string>> Run(const TestCase& test);

  const std::vector<Setting>& settings() const { return settings_; }

 private:
  DifferentialTester() = default;

  std::unique_ptr<NativeRunner> native_;
  std::vector<Setting> settings_;
  std::vector<std::unique_ptr<LibbtRunner>> libbt_;
  // Large records, kept here rather than on the stack.
  std::unique_ptr<conf_request> request_ = std::make_unique<conf_request>();
  std::unique_ptr<conf_result> native_result_ = std::make_unique<conf_result>();
  std::unique_ptr<conf_result> libbt_result_ = std::make_unique<conf_result>();
};

}  // namespace bt::conformance
