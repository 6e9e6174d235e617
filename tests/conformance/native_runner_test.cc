// bt_native_runner and its client, checked with hand-assembled snippets whose
// outcome the SDM fixes.
#include "native_runner.h"

#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

namespace bt::conformance {
namespace {

// EFLAGS bits (SDM Vol. 1, 3.4.3).
constexpr std::uint32_t kCf = 1u << 0, kPf = 1u << 2, kAf = 1u << 4, kZf = 1u << 6, kSf = 1u << 7,
                        kTf = 1u << 8, kDf = 1u << 10, kOf = 1u << 11, kAc = 1u << 18;
constexpr std::uint32_t kArithmeticFlags = kCf | kPf | kAf | kZf | kSf | kOf;

// FXSAVE image offsets (SDM Vol. 1, 10.5.1).
constexpr std::size_t kFxsaveFcw = 0, kFxsaveFsw = 2, kFxsaveFtw = 4, kFxsaveMxcsr = 24,
                      kFxsaveMxcsrMask = 28, kFxsaveSt0 = 32, kFxsaveXmm0 = 160;

std::uint32_t Load32(const std::uint8_t* bytes) {
  std::uint32_t value;
  std::memcpy(&value, bytes, sizeof value);
  return value;
}

// Appends `value` as an imm32 or disp32.
void Append32(std::vector<std::uint8_t>& code, std::uint32_t value) {
  for (int i = 0; i < 4; ++i) code.push_back(static_cast<std::uint8_t>(value >> (8 * i)));
}

// A request for `code` with zeroed registers and data, and the x87/SSE state
// FNINIT and the default MXCSR give.
std::unique_ptr<conf_request> MakeRequest(const std::vector<std::uint8_t>& code) {
  auto request = std::make_unique<conf_request>();
  std::memcpy(request->code, code.data(), code.size());
  request->code_bytes = static_cast<std::uint32_t>(code.size());
  const std::uint16_t fcw = 0x037F;
  const std::uint32_t mxcsr = 0x1F80;
  std::memcpy(request->cpu.fxsave + kFxsaveFcw, &fcw, sizeof fcw);
  std::memcpy(request->cpu.fxsave + kFxsaveMxcsr, &mxcsr, sizeof mxcsr);
  return request;
}

std::unique_ptr<NativeRunner> StartRunner() {
  auto runner = NativeRunner::Start(BT_NATIVE_RUNNER_PATH);
  REQUIRE_MESSAGE(runner.ok(), runner.error());
  return std::move(runner.value());
}

std::unique_ptr<conf_result> Run(NativeRunner& runner, const conf_request& request) {
  auto result = std::make_unique<conf_result>();
  auto ran = runner.Run(request, *result);
  REQUIRE_MESSAGE(ran.ok(), ran.error());
  return result;
}

// Checks that the runner still runs snippets: add eax, ebx.
void CheckRunnerWorks(NativeRunner& runner) {
  auto request = MakeRequest({0x01, 0xD8});
  request->cpu.gpr[CONF_EAX] = 2;
  request->cpu.gpr[CONF_EBX] = 3;
  auto result = Run(runner, *request);
  CHECK(result->outcome == CONF_EXCEPTION);
  CHECK(result->vector == 3);
  CHECK(result->cpu.gpr[CONF_EAX] == 5);
}

TEST_CASE("native runner: registers and flags in, registers and flags out, int3 ends the run") {
  auto runner = StartRunner();
  auto request = MakeRequest({0x01, 0xD8});  // add eax, ebx
  const std::uint32_t gpr[8] = {0xFFFFFFFF, 0x11111111, 0x22222222, 1, CONF_DATA_ADDRESS + 0x1000,
                                0x55555555, 0x66666666, 0x77777777};
  std::memcpy(request->cpu.gpr, gpr, sizeof gpr);
  // TF and AC would change the outcome; the runner must drop them.
  request->cpu.eflags = kSf | kOf | kDf | kTf | kAc;
  auto result = Run(*runner, *request);

  CHECK(result->outcome == CONF_EXCEPTION);
  CHECK(result->vector == 3);
  CHECK(result->cpu.eip == CONF_CODE_ADDRESS + 3);  // after the int3 that follows the add
  CHECK(result->cpu.gpr[CONF_EAX] == 0);
  for (int r = CONF_ECX; r <= CONF_EDI; ++r) CHECK(result->cpu.gpr[r] == gpr[r]);
  CHECK((result->cpu.eflags & (kArithmeticFlags | kDf | kTf | kAc)) ==
        (kCf | kPf | kAf | kZf | kDf));
}

TEST_CASE("native runner: faults report their vector at the faulting instruction") {
  auto runner = StartRunner();
  SUBCASE("div ecx by zero: #DE") {
    auto result = Run(*runner, *MakeRequest({0xF7, 0xF1}));
    CHECK(result->outcome == CONF_EXCEPTION);
    CHECK(result->vector == 0);
    CHECK(result->cpu.eip == CONF_CODE_ADDRESS);
  }
  SUBCASE("ud2: #UD") {
    auto result = Run(*runner, *MakeRequest({0x0F, 0x0B}));
    CHECK(result->vector == 6);
    CHECK(result->cpu.eip == CONF_CODE_ADDRESS);
  }
  SUBCASE("mov eax, [0x10]: #PF for a not-present user read") {
    std::vector<std::uint8_t> code = {0xA1};
    Append32(code, 0x10);
    auto result = Run(*runner, *MakeRequest(code));
    CHECK(result->vector == 14);
    CHECK(result->fault_address == 0x10);
    CHECK(result->error_code == 4);  // U/S; not W/R, not P
  }
  SUBCASE("movaps xmm0, [misaligned]: #GP(0)") {
    std::vector<std::uint8_t> code = {0x0F, 0x28, 0x05};
    Append32(code, CONF_DATA_ADDRESS + 1);
    auto result = Run(*runner, *MakeRequest(code));
    CHECK(result->vector == 13);
    CHECK(result->error_code == 0);
    CHECK(result->cpu.eip == CONF_CODE_ADDRESS);
  }
}

TEST_CASE("native runner: the data pages go in and come back") {
  auto runner = StartRunner();
  std::vector<std::uint8_t> code = {0x8B, 0x1D};  // mov ebx, [CONF_DATA_ADDRESS]
  Append32(code, CONF_DATA_ADDRESS);
  code.push_back(0xA3);  // mov [CONF_DATA_ADDRESS + 8], eax
  Append32(code, CONF_DATA_ADDRESS + 8);
  auto request = MakeRequest(code);
  request->cpu.gpr[CONF_EAX] = 0xDEADBEEF;
  request->data[0] = 0x5A;
  request->data[CONF_DATA_BYTES - 1] = 0xA5;
  auto result = Run(*runner, *request);

  CHECK(result->vector == 3);
  CHECK(result->cpu.gpr[CONF_EBX] == 0x5A);
  CHECK(Load32(result->data + 8) == 0xDEADBEEF);
  CHECK(result->data[CONF_DATA_BYTES - 1] == 0xA5);
}

TEST_CASE("native runner: FS and GS bases") {
  auto runner = StartRunner();
  const std::vector<std::uint8_t> load_fs = {0x64, 0xA1, 0, 0, 0, 0};  // mov eax, fs:[0]
  const std::vector<std::uint8_t> load_gs = {0x65, 0xA1, 0, 0, 0, 0};  // mov eax, gs:[0]
  auto request = MakeRequest(load_fs);
  const std::uint32_t at_0x100 = 0x12345678, at_0x200 = 0x9ABCDEF0;
  std::memcpy(request->data + 0x100, &at_0x100, sizeof at_0x100);
  std::memcpy(request->data + 0x200, &at_0x200, sizeof at_0x200);

  request->fs_base = CONF_DATA_ADDRESS + 0x100;
  auto result = Run(*runner, *request);
  CHECK(result->vector == 3);
  CHECK(result->cpu.gpr[CONF_EAX] == at_0x100);

  // A new base takes effect.
  request->fs_base = CONF_DATA_ADDRESS + 0x200;
  result = Run(*runner, *request);
  CHECK(result->cpu.gpr[CONF_EAX] == at_0x200);

  // Without fs_base FS is the runner's null selector again.
  request->fs_base = 0;
  result = Run(*runner, *request);
  CHECK(result->vector == 13);

  // GS is glibc's TLS register in the runner: it must get it back.
  std::memcpy(request->code, load_gs.data(), load_gs.size());
  request->gs_base = CONF_DATA_ADDRESS + 0x100;
  result = Run(*runner, *request);
  CHECK(result->vector == 3);
  CHECK(result->cpu.gpr[CONF_EAX] == at_0x100);
  CheckRunnerWorks(*runner);
}

TEST_CASE("native runner: x87 and SSE state come back in the FXSAVE image") {
  auto runner = StartRunner();
  // fld1; fldpi; faddp; movd xmm1, eax
  auto request = MakeRequest({0xD9, 0xE8, 0xD9, 0xEB, 0xDE, 0xC1, 0x66, 0x0F, 0x6E, 0xC8});
  request->cpu.gpr[CONF_EAX] = 0xCAFEF00D;
  auto result = Run(*runner, *request);
  long double expected;
  __asm__("fld1; fldpi; faddp" : "=t"(expected));

  CHECK(result->vector == 3);
  CHECK(std::memcmp(result->cpu.fxsave + kFxsaveSt0, &expected, 10) == 0);
  std::uint16_t fsw;
  std::memcpy(&fsw, result->cpu.fxsave + kFxsaveFsw, sizeof fsw);
  CHECK(((fsw >> 11) & 7) == 7);                  // TOP: one value pushed
  CHECK(result->cpu.fxsave[kFxsaveFtw] == 0x80);  // abridged tags: only register 7 valid
  CHECK(Load32(result->cpu.fxsave + kFxsaveXmm0 + 16) == 0xCAFEF00D);
  CHECK(Load32(result->cpu.fxsave + kFxsaveXmm0 + 20) == 0);
}

TEST_CASE("native runner: x87 and SSE state the snippet leaves alone comes back unchanged") {
  auto runner = StartRunner();
  auto check_unchanged = [&](conf_request& request) {
    // A run that fills the x87 stack first, so that anything left over from
    // it would show.
    Run(*runner, *MakeRequest({0xD9, 0xE8, 0xD9, 0xE8, 0xD9, 0xE8}));  // fld1 x3
    auto result = Run(*runner, request);
    CHECK(result->vector == 3);
    // FXSAVE fills in MXCSR_MASK; the request's is not used.
    std::memcpy(request.cpu.fxsave + kFxsaveMxcsrMask, result->cpu.fxsave + kFxsaveMxcsrMask, 4);
    CHECK(std::memcmp(result->cpu.fxsave, request.cpu.fxsave, sizeof result->cpu.fxsave) == 0);
  };
  SUBCASE("the initial state, which XSAVE may treat specially") {
    check_unchanged(*MakeRequest({0x90}));  // nop
  }
  SUBCASE("other control settings and an XMM value") {
    auto request = MakeRequest({0x90});
    const std::uint16_t fcw = 0x027F;    // 53-bit precision
    const std::uint32_t mxcsr = 0x1FC0;  // DAZ
    std::memcpy(request->cpu.fxsave + kFxsaveFcw, &fcw, sizeof fcw);
    std::memcpy(request->cpu.fxsave + kFxsaveMxcsr, &mxcsr, sizeof mxcsr);
    request->cpu.fxsave[kFxsaveXmm0 + 3 * 16] = 0x77;
    check_unchanged(*request);
  }
}

TEST_CASE("native runner: jmp $ times out") {
  auto runner = StartRunner();
  auto request = MakeRequest({0xEB, 0xFE});
  request->timeout_ms = 100;
  auto result = Run(*runner, *request);
  CHECK(result->outcome == CONF_TIMEOUT);
  CHECK(result->cpu.eip == CONF_CODE_ADDRESS);
  CheckRunnerWorks(*runner);
}

TEST_CASE("native runner: push with ESP 0 faults and the runner carries on") {
  auto runner = StartRunner();
  auto request = MakeRequest({0x50});  // push eax
  request->cpu.gpr[CONF_ESP] = 0;
  auto result = Run(*runner, *request);
  CHECK(result->vector == 14);
  CHECK(result->fault_address == 0xFFFFFFFC);
  CheckRunnerWorks(*runner);
}

TEST_CASE("native runner: a dead runner is an error, then restarts") {
  auto runner = StartRunner();
  // The runner does not stop a snippet's system calls; this one is
  // kill(getpid(), SIGKILL).
  std::vector<std::uint8_t> code = {0xB8};  // mov eax, __NR_getpid
  Append32(code, 20);
  code.insert(code.end(), {0xCD, 0x80, 0x89, 0xC3});  // int 0x80; mov ebx, eax
  code.push_back(0xB8);                               // mov eax, __NR_kill
  Append32(code, 37);
  code.push_back(0xB9);  // mov ecx, SIGKILL
  Append32(code, 9);
  code.insert(code.end(), {0xCD, 0x80});
  conf_result result;
  auto ran = runner->Run(*MakeRequest(code), result);
  REQUIRE_FALSE(ran.ok());
  CHECK(ran.error().find("signal 9") != std::string::npos);
  CheckRunnerWorks(*runner);
}

TEST_CASE("native runner: a missing runner is an error") {
  auto runner = NativeRunner::Start("/nonexistent/bt_native_runner");
  REQUIRE_FALSE(runner.ok());
  CHECK(runner.error().find("/nonexistent/bt_native_runner") != std::string::npos);
}

}  // namespace
}  // namespace bt::conformance
