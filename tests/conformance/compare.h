// Compares the end states of one snippet run natively and in libbt, and
// explains a difference: the code with its disassembly, the initial state and
// both final states.
#pragma once

#include "conformance_abi.h"
#include "test_case.h"

#include <string>

namespace bt::conformance {

// EFLAGS bits a snippet can change from user mode and that are compared.
constexpr std::uint32_t kComparedFlags = 0x00240ED5u;  // CF PF AF ZF SF IF DF OF AC ID

// Empty when both runs ended the same way; otherwise a full report.
std::string Compare(const TestCase& test, const conf_result& native, const conf_result& libbt);

// The code of a test, one instruction per line: address, bytes, disassembly.
std::string Listing(const TestCase& test);

}  // namespace bt::conformance
