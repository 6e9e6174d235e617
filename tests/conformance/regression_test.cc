// Translator bugs the differential tester found, each kept as a snippet that
// must run the same natively and in libbt (unit caps 1 and 64).
#include "differential.h"

#include <doctest/doctest.h>

#include <cstring>
#include <initializer_list>
#include <string>

namespace bt::conformance {
namespace {

DifferentialTester& Tester() {
  static std::unique_ptr<DifferentialTester> tester = [] {
    auto created = DifferentialTester::Create(BT_NATIVE_RUNNER_PATH, {1, 64});
    REQUIRE_MESSAGE(created.ok(), created.error());
    return std::move(created.value());
  }();
  return *tester;
}

// `code` from zeroed registers (but ESP, on the data pages' stack), the
// FNINIT x87 state and the default MXCSR, and a patterned data area.
TestCase Snippet(std::initializer_list<std::uint8_t> code) {
  TestCase test;
  test.instruction_class = "regression";
  test.form = "regression";
  test.code = code;
  test.initial.gpr[CONF_ESP] = CONF_DATA_ADDRESS + CONF_DATA_BYTES - 0x100;
  test.initial.eflags = 0x202;
  const std::uint16_t fcw = 0x037F;
  const std::uint32_t mxcsr = 0x1F80;
  std::memcpy(test.initial.fxsave, &fcw, sizeof(fcw));
  std::memcpy(test.initial.fxsave + 24, &mxcsr, sizeof(mxcsr));
  for (std::size_t i = 0; i < test.data.size(); ++i) test.data[i] = static_cast<std::uint8_t>(i * 7 + 3);
  return test;
}

void CheckAgrees(const TestCase& test) {
  auto reports = Tester().Run(test);
  REQUIRE_MESSAGE(reports.ok(), reports.error());
  std::string all;
  for (const std::string& report : *reports) all += report;
  CHECK_MESSAGE(reports->empty(), all);
}

// Bug: opcode 0x82 (an alias of 0x80 in 32-bit mode, dropped by 64-bit mode)
// was copied unchanged and raised #UD on the host.
TEST_CASE("group-1 alias opcode 0x82") {
  TestCase test = Snippet({0x82, 0xC5, 0xFB,                     // add ch, 0xFB
                           0x82, 0x43, 0x10, 0x7A});             // add byte [ebx+0x10], 0x7A
  test.initial.gpr[CONF_ECX] = 0x8200;
  test.initial.gpr[CONF_EBX] = CONF_DATA_ADDRESS;
  CheckAgrees(test);
}

// Bug: jcxz and loop* with an address-size prefix (counting in CX) were
// reported as unsupported; 64-bit mode can only count in ECX or RCX.
TEST_CASE("CX-counted loop, loope, loopne and jcxz") {
  for (std::uint8_t opcode : {0xE0, 0xE1, 0xE2, 0xE3}) {
    for (std::uint32_t ecx : {0x00010000u, 0x00010001u, 0x0001FFFFu, 0x00000005u}) {
      for (std::uint32_t flags : {0x202u, 0x242u}) {  // ZF clear and set
        TestCase test = Snippet({0x67, opcode, 0x02, 0x40, 0x40, 0x41});  // inc eax twice, inc ecx
        test.initial.gpr[CONF_ECX] = ecx;
        test.initial.eflags = flags;
        CAPTURE(opcode);
        CAPTURE(ecx);
        CheckAgrees(test);
      }
    }
  }
}

// Bug: movzx/movsx/crc32 into ESP from AH..BH were reported as unsupported:
// R12 (guest ESP) needs REX, which turns AH..BH into SPL..DIL.
TEST_CASE("ESP destination with a high-byte source") {
  for (auto code : {std::initializer_list<std::uint8_t>{0x0F, 0xB6, 0xE4},          // movzx esp, ah
                    std::initializer_list<std::uint8_t>{0x66, 0x0F, 0xBE, 0xE6},    // movsx sp, dh
                    std::initializer_list<std::uint8_t>{0xF2, 0x0F, 0x38, 0xF0, 0xE7}}) {  // crc32 esp, bh
    TestCase test = Snippet(code);
    test.initial.gpr[CONF_EAX] = 0x1234C5AB;
    test.initial.gpr[CONF_EDX] = 0x0000F100;
    test.initial.gpr[CONF_EBX] = 0x00009900;
    test.initial.gpr[CONF_ESP] = 0xDEADBEEF;
    CheckAgrees(test);
  }
}

// Bug: a byte operand in AH..BH with an address computed into a spare
// register (ESP base, FS/GS base, 16-bit addressing) took the spare from
// EAX..EDX only; cmpxchg with base and index registers used all four, and
// the translation wrote through a garbage register.
TEST_CASE("AH..BH operand with every legacy byte register in use") {
  TestCase test = Snippet({0xF0, 0x0F, 0xB0, 0x3C, 0x8C,         // lock cmpxchg [esp+ecx*4], bh
                           0x64, 0x0F, 0xB0, 0x7C, 0x91, 0x04}); // cmpxchg fs:[ecx+edx*4+4], bh
  test.initial.gpr[CONF_EAX] = 0x12345678;
  test.initial.gpr[CONF_EBX] = 0x0000AB00;
  test.initial.gpr[CONF_ECX] = 0x10;
  test.initial.gpr[CONF_EDX] = 0x20;
  test.fs_base = CONF_DATA_ADDRESS;
  CheckAgrees(test);
}

// Bug: segment override prefixes were dropped, so FS/GS accesses with a
// non-zero base went to the offset instead of base + offset.
TEST_CASE("FS and GS bases, including a wrap at 4 GiB and string sources") {
  // GS's base makes GS offsets CONF_DATA_ADDRESS + 0x1000 + n wrap to
  // CONF_DATA_ADDRESS + n.
  TestCase test = Snippet({0x64, 0x8B, 0x43, 0x08,              // mov eax, fs:[ebx+8]
                           0x89, 0xC2,                          // mov edx, eax
                           0x65, 0xA1, 0x10, 0x10, 0x50, 0x00,  // mov eax, gs:[0x501010] (moffs)
                           0x65, 0xF3, 0xA5,                    // rep movsd from gs:[esi]
                           0xBE, 0x20, 0x00, 0x00, 0x00,        // mov esi, 0x20
                           0x64, 0xAC});                        // lodsb from fs:[esi]
  test.fs_base = CONF_DATA_ADDRESS + 0x100;
  test.gs_base = 0xFFFFF000u;
  test.initial.gpr[CONF_EBX] = 0x40;
  test.initial.gpr[CONF_ESI] = CONF_DATA_ADDRESS + 0x1000 + 0x200;
  test.initial.gpr[CONF_EDI] = CONF_DATA_ADDRESS + 0x2000;
  test.initial.gpr[CONF_ECX] = 4;
  CheckAgrees(test);
}

}  // namespace
}  // namespace bt::conformance
