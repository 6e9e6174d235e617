// A bt::Machine for tests of guests without an IDT: every exception stops the
// run, where the test looks at it.
#pragma once

#include <bt/machine.h>

#include <doctest/doctest.h>

#include <memory>
#include <vector>

namespace bt::testing {

inline std::unique_ptr<Machine> BootIntercepting(const std::vector<std::uint8_t>& image) {
  MachineConfig config;
  config.ram_bytes = 16u << 20;
  config.boot.kernel_image = image;
  config.intercepted_exceptions = ~0u;
  auto machine = Machine::Create(config);
  REQUIRE(machine);
  return std::move(machine.value());
}

}  // namespace bt::testing
