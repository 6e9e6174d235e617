// Snippets that must run the same natively and in libbt (kDefaultSettings):
// translator bugs the differential tester found, and page faults on the
// pages the native runner leaves unmapped (paging settings only).
#include "differential.h"

#include <doctest/doctest.h>

#include <cstring>
#include <initializer_list>
#include <string>

namespace bt::conformance {
namespace {

DifferentialTester& Tester() {
  static std::unique_ptr<DifferentialTester> tester = [] {
    auto created = DifferentialTester::Create(BT_NATIVE_RUNNER_PATH, kDefaultSettings);
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
  for (std::size_t i = 0; i < test.data.size(); ++i)
    test.data[i] = static_cast<std::uint8_t>(i * 7 + 3);
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
  TestCase test = Snippet({0x82, 0xC5, 0xFB,          // add ch, 0xFB
                           0x82, 0x43, 0x10, 0x7A});  // add byte [ebx+0x10], 0x7A
  test.initial.gpr[CONF_ECX] = 0x8200;
  test.initial.gpr[CONF_EBX] = CONF_DATA_ADDRESS;
  CheckAgrees(test);
}

// Bug: jcxz and loop* with an address-size prefix (counting in CX) were
// reported as unsupported; 64-bit mode can only count in ECX or RCX.
TEST_CASE("CX-counted loop, loope, loopne and jcxz") {
  for (std::uint8_t opcode : {0xE0, 0xE1, 0xE2, 0xE3}) {
    for (std::uint32_t ecx : {0x00010000u, 0x00010001u, 0x0001FFFFu, 0x00000005u}) {
      for (std::uint32_t flags : {0x202u, 0x242u}) {                      // ZF clear and set
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
  for (auto code :
       {std::initializer_list<std::uint8_t>{0x0F, 0xB6, 0xE4},                 // movzx esp, ah
        std::initializer_list<std::uint8_t>{0x66, 0x0F, 0xBE, 0xE6},           // movsx sp, dh
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
  TestCase test = Snippet({0xF0, 0x0F, 0xB0, 0x3C, 0x8C,          // lock cmpxchg [esp+ecx*4], bh
                           0x64, 0x0F, 0xB0, 0x7C, 0x91, 0x04});  // cmpxchg fs:[ecx+edx*4+4], bh
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

// Page faults: the data pages end at CONF_DATA_ADDRESS + CONF_DATA_BYTES
// and nothing is mapped below them down to the code pages, or above.
constexpr std::uint32_t kDataEnd = CONF_DATA_ADDRESS + CONF_DATA_BYTES;

TestCase FaultingSnippet(std::initializer_list<std::uint8_t> code) {
  TestCase test = Snippet(code);
  test.needs_paging = true;
  return test;
}

TEST_CASE("#PF on the unmapped half of a split access: CR2, error code, nothing written") {
  for (auto code : {std::initializer_list<std::uint8_t>{0x8B, 0x07},              // mov eax, [edi]
                    std::initializer_list<std::uint8_t>{0x89, 0x07},              // mov [edi], eax
                    std::initializer_list<std::uint8_t>{0x01, 0x07},              // add [edi], eax
                    std::initializer_list<std::uint8_t>{0xF3, 0x0F, 0x6F, 0x07},  // movdqu
                    std::initializer_list<std::uint8_t>{0x66, 0x0F, 0x7F, 0x07}}) {  // movdqa
    for (std::uint32_t edi : {kDataEnd - 2, kDataEnd - 1, kDataEnd, kDataEnd - 16}) {
      TestCase test = FaultingSnippet(code);
      test.initial.gpr[CONF_EDI] = edi;
      test.initial.gpr[CONF_EAX] = 0x11223344;
      CAPTURE(edi);
      CheckAgrees(test);
    }
  }
}

TEST_CASE("#PF part-way through rep string instructions leaves ECX, ESI, EDI at the progress") {
  struct Case {
    std::initializer_list<std::uint8_t> code;
    std::uint32_t esi, edi, ecx;
  };
  for (const Case& c : {
           Case{{0xF3, 0xA5}, CONF_DATA_ADDRESS, kDataEnd - 16, 16},    // rep movsd, dst
           Case{{0xF3, 0xA5}, kDataEnd - 8, CONF_DATA_ADDRESS, 16},     // rep movsd, src
           Case{{0xF3, 0xA4}, kDataEnd - 3, CONF_DATA_ADDRESS, 9},      // rep movsb
           Case{{0xF3, 0xAA}, 0, kDataEnd - 5, 11},                     // rep stosb
           Case{{0xF3, 0xAB}, 0, kDataEnd - 6, 4},                      // rep stosd, split
           Case{{0xF3, 0xAD}, kDataEnd - 12, 0, 5},                     // rep lodsd
           Case{{0xF3, 0xA7}, kDataEnd - 8, CONF_DATA_ADDRESS + 8, 6},  // repe cmpsd
           Case{{0xF2, 0xAE}, 0, kDataEnd - 4, 10},                     // repne scasb
       }) {
    TestCase test = FaultingSnippet(c.code);
    test.initial.gpr[CONF_ESI] = c.esi;
    test.initial.gpr[CONF_EDI] = c.edi;
    test.initial.gpr[CONF_ECX] = c.ecx;
    test.initial.gpr[CONF_EAX] = 0x7F7F7F7F;
    // repe cmpsd over equal data runs to the fault.
    for (std::size_t i = 0; i < test.data.size(); ++i) test.data[i] = 0x5A;
    CAPTURE(c.esi);
    CAPTURE(c.edi);
    CheckAgrees(test);
  }
}

TEST_CASE("#PF on a push below the stack's page and on a jump to an unmapped page") {
  TestCase push = FaultingSnippet({0x50});  // push eax
  push.initial.gpr[CONF_ESP] = CONF_DATA_ADDRESS + 2;
  CheckAgrees(push);
  TestCase call = FaultingSnippet({0xFF, 0xD7});  // call edi
  call.initial.gpr[CONF_EDI] = 0x00600000;
  CheckAgrees(call);
}

TEST_CASE("#PF through an FS base that wraps the linear address at 4 GiB") {
  TestCase test = FaultingSnippet({0x64, 0x8B, 0x07});  // mov eax, fs:[edi]
  test.fs_base = 0xFFFFF000;
  test.initial.gpr[CONF_EDI] = 0x1010;  // linear 0x10
  CheckAgrees(test);
}

}  // namespace
}  // namespace bt::conformance
