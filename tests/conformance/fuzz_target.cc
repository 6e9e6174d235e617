// libFuzzer target: the fuzzer's bytes drive the random-program generator,
// and any difference between the host CPU and libbt is a crash with a report.
// Built with clang and -DBT_FUZZ=ON; see docs/conformance.md for how to run it.
#include "differential.h"
#include "random_program.h"

#include <cstdio>
#include <cstdlib>
#include <span>

namespace {

constexpr unsigned kProgramLength = 48;

bt::conformance::DifferentialTester& Tester() {
  static std::unique_ptr<bt::conformance::DifferentialTester> tester = [] {
    auto created = bt::conformance::DifferentialTester::Create(BT_NATIVE_RUNNER_PATH,
                                                               bt::conformance::kDefaultSettings);
    if (!created) {
      std::fprintf(stderr, "bt_fuzz: %s\n", created.error().c_str());
      std::abort();
    }
    return std::move(created.value());
  }();
  return *tester;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  bt::conformance::ProgramGenerator generator(std::span<const std::uint8_t>(data, size));
  const bt::conformance::TestCase test = generator.Generate(kProgramLength);
  auto reports = Tester().Run(test);
  if (!reports) {
    std::fprintf(stderr, "bt_fuzz: %s\n", reports.error().c_str());
    std::abort();
  }
  for (const std::string& report : *reports) std::fprintf(stderr, "%s\n", report.c_str());
  if (!reports->empty()) std::abort();
  return 0;
}
