#include <bt/machine.h>
#include <bt/stats.h>

#include <doctest/doctest.h>

namespace bt {
namespace {

TEST_CASE("the stats report names what happened and leaves out what did not") {
  Stats stats;
  stats.units_translated = 10;
  stats.instructions_translated = 40;
  stats.cache_lookups = 4;
  stats.cache_hits = 3;
  stats.units_evicted = 7;
  stats.callouts[static_cast<std::size_t>(CalloutKind::kCpuid)] = 2;
  stats.host_faults[static_cast<std::size_t>(HostFaultCause::kCodeWrite)] = 5;
  stats.exits[static_cast<std::size_t>(StopReason::kDebugExit)] = 1;
  const std::string report = stats.Format();
  CHECK(report.find("75.00%") != std::string::npos);
  CHECK(report.find(std::string(ToString(CalloutKind::kCpuid))) != std::string::npos);
  CHECK(report.find(std::string(ToString(CalloutKind::kRdtsc))) == std::string::npos);
  CHECK(report.find(std::string(ToString(HostFaultCause::kCodeWrite))) != std::string::npos);
  CHECK(report.find(std::string(ToString(StopReason::kDebugExit))) != std::string::npos);
  CHECK(report.find("units evicted") != std::string::npos);
}

TEST_CASE("every enumerator has a name") {
  for (unsigned i = 0; i < static_cast<unsigned>(CalloutKind::kCount); ++i) {
    CHECK_FALSE(ToString(static_cast<CalloutKind>(i)).empty());
  }
  for (unsigned i = 0; i < static_cast<unsigned>(HostFaultCause::kCount); ++i) {
    CHECK_FALSE(ToString(static_cast<HostFaultCause>(i)).empty());
  }
  for (unsigned i = 0; i <= static_cast<unsigned>(StopReason::kHostError); ++i) {
    CHECK_FALSE(ToString(static_cast<StopReason>(i)).empty());
  }
}

}  // namespace
}  // namespace bt
