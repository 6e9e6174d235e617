// One differential test: a 32-bit code snippet with its initial state, run by
// the native runner and by libbt, and what each run ended with.
#pragma once

#include "conformance_abi.h"

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace bt::conformance {

struct TestCase {
  // Coverage table row (instruction class) and column key (instruction form),
  // e.g. "sse2" and "paddw xmm, xmm/m128".
  std::string instruction_class;
  std::string form;
  std::vector<std::uint8_t> code;  // at most CONF_CODE_BYTES; the rest is int3
  conf_cpu initial{};              // eip is ignored
  std::uint32_t fs_base = 0, gs_base = 0;
  std::vector<std::uint8_t> data = std::vector<std::uint8_t>(CONF_DATA_BYTES);
  // EFLAGS bits that the SDM leaves undefined after this code; not compared.
  std::uint32_t undefined_flags = 0;
  // The same when a run stops part-way, at an exception: {eip, the flags
  // undefined when execution reaches eip}, for each instruction of the code.
  std::vector<std::pair<std::uint32_t, std::uint32_t>> undefined_flags_at;
  unsigned instruction_count = 1;
  // The code faults on a page the native runner leaves unmapped: only libbt
  // settings with paging can agree.
  bool needs_paging = false;
};

// Fills `request` from a test case.
void ToRequest(const TestCase& test, conf_request& request);

}  // namespace bt::conformance
