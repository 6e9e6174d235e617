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

class DifferentialTester {
 public:
  // `unit_caps`: one libbt machine per translation-unit cap.
  static Result<std::unique_ptr<DifferentialTester>> Create(const std::string& native_runner_path,
                                                            const std::vector<unsigned>& unit_caps);

  // Mismatch reports, one per libbt setting that disagrees with the host.
  Result<std::vector<std::string>> Run(const TestCase& test);

  const std::vector<unsigned>& unit_caps() const { return unit_caps_; }

 private:
  DifferentialTester() = default;

  std::unique_ptr<NativeRunner> native_;
  std::vector<unsigned> unit_caps_;
  std::vector<std::unique_ptr<LibbtRunner>> libbt_;
  // Large records, kept here rather than on the stack.
  std::unique_ptr<conf_request> request_ = std::make_unique<conf_request>();
  std::unique_ptr<conf_result> native_result_ = std::make_unique<conf_result>();
  std::unique_ptr<conf_result> libbt_result_ = std::make_unique<conf_result>();
};

}  // namespace bt::conformance
