#include "differential.h"

#include "compare.h"

namespace bt::conformance {
namespace {

// Generous: snippets are short and forward-branching, so only a libbt bug
// (or a runaway loop instruction) reaches it.
constexpr std::uint32_t kTimeoutMs = 2000;

}  // namespace

std::string Setting::Name() const {
  return "unit cap " + std::to_string(unit_cap) + (paging ? ", paging" : "");
}

Result<std::unique_ptr<DifferentialTester>> DifferentialTester::Create(
    const std::string& native_runner_path, const std::vector<Setting>& settings) {
  std::unique_ptr<DifferentialTester> tester(new DifferentialTester());
  auto native = NativeRunner::Start(native_runner_path);
  if (!native) return Error{native.error()};
  tester->native_ = std::move(native.value());
  tester->settings_ = settings;
  for (const Setting& setting : settings) {
    auto runner = LibbtRunner::Create(setting.unit_cap, setting.paging);
    if (!runner) return Error{runner.error()};
    tester->libbt_.push_back(std::move(runner.value()));
  }
  return tester;
}

Result<std::vector<std::string>> DifferentialTester::Run(const TestCase& test) {
  ToRequest(test, *request_);
  request_->timeout_ms = kTimeoutMs;
  if (auto ran = native_->Run(*request_, *native_result_); !ran) {
    return Error{"native runner: " + ran.error()};
  }
  std::vector<std::string> reports;
  for (std::size_t i = 0; i < libbt_.size(); ++i) {
    if (test.needs_paging && !settings_[i].paging) continue;
    if (auto ran = libbt_[i]->Run(*request_, *libbt_result_); !ran) {
      return Error{"libbt runner: " + ran.error()};
    }
    std::string report = Compare(test, *native_result_, *libbt_result_);
    if (!report.empty()) {
      reports.push_back("[" + settings_[i].Name() + "] " + report);
    }
  }
  return reports;
}

}  // namespace bt::conformance
