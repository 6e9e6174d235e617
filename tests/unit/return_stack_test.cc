// Guest calls and returns as host calls and returns on the return stack
// (kReturnStackGuardOffset): a return goes where the guest's return address
// says, whatever the return stack holds.
#include "tests/support/assembled_guest.h"
#include "tests/support/intercepting_machine.h"
#include "translator/unit_builder.h"

#include <bt/machine.h>

#include <doctest/doctest.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <ctime>

namespace bt {
namespace {

namespace x86 = asmjit::x86;
using testing::AssembleGuest;
using testing::Here;

constexpr std::uint32_t kStack = 0xF00000;

std::uint64_t ReturnStackFull(const Machine& machine) {
  return machine.GetStats().host_faults[static_cast<std::size_t>(HostFaultCause::kReturnStackFull)];
}

// EBX = 1 + 2 + ... + depth, summed on the way back out of `depth` nested
// calls, `rounds` times over into EDX.
std::vector<std::uint8_t> RecursionGuest(std::uint32_t depth, std::uint32_t rounds) {
  return AssembleGuest([&](x86::Assembler& a) {
    asmjit::Label round = a.newLabel(), sum = a.newLabel(), base = a.newLabel();
    a.mov(x86::esp, kStack);
    a.xor_(x86::edx, x86::edx);
    a.mov(x86::esi, rounds);
    a.bind(round);
    a.mov(x86::eax, depth);
    a.call(sum);
    a.add(x86::edx, x86::ebx);
    a.dec(x86::esi);
    a.jnz(round);
    a.hlt();
    a.bind(sum);
    a.test(x86::eax, x86::eax);
    a.jz(base);
    a.push(x86::eax);
    a.dec(x86::eax);
    a.call(sum);
    a.pop(x86::eax);
    a.add(x86::ebx, x86::eax);
    a.ret();
    a.bind(base);
    a.xor_(x86::ebx, x86::ebx);
    a.ret();
  });
}

// The guest's driver: calls `callee` `rounds` times, counting the returns
// in EBX, then halts.
void EmitRoundsOfCalls(x86::Assembler& a, std::uint32_t rounds, const asmjit::Label& callee) {
  asmjit::Label round = a.newLabel();
  a.mov(x86::esp, kStack);
  a.mov(x86::esi, rounds);
  a.xor_(x86::ebx, x86::ebx);
  a.bind(round);
  a.call(callee);
  a.add(x86::ebx, 1);
  a.dec(x86::esi);
  a.jnz(round);
  a.hlt();
}

TEST_CASE("calls nested deeper than the return stack holds return right") {
  constexpr std::uint32_t kDepth = 100000, kRounds = 3;
  auto machine = testing::BootIntercepting(RecursionGuest(kDepth, kRounds));
  REQUIRE(machine->Run().reason == StopReason::kHalted);
  const Registers r = machine->GetRegisters();
  CHECK(r.ebx == kDepth * (kDepth + 1) / 2);
  CHECK(r.edx == kRounds * (kDepth * (kDepth + 1) / 2));
  CHECK(r.esp == kStack);
  // The return stack filled and was emptied, more than once per round.
  CHECK(ReturnStackFull(*machine) >= kRounds);
}

TEST_CASE("a return to an address other than the call's goes there") {
  std::uint32_t elsewhere = 0;
  const auto image = AssembleGuest([&](x86::Assembler& a) {
    asmjit::Label callee = a.newLabel(), other = a.newLabel(), loop = a.newLabel();
    a.mov(x86::esp, kStack);
    a.mov(x86::esi, 100);
    a.xor_(x86::edi, x86::edi);
    a.bind(loop);
    a.call(callee);
    a.mov(x86::eax, 1);  // where the call returns to: skipped
    a.hlt();
    a.bind(other);
    a.inc(x86::edi);
    a.dec(x86::esi);
    a.jnz(loop);
    a.mov(x86::eax, 2);
    a.hlt();
    a.bind(callee);
    elsewhere = Here(a);
    a.lea(x86::eax, x86::ptr(other));
    a.mov(x86::dword_ptr(x86::esp), x86::eax);
    a.ret();
  });
  REQUIRE(elsewhere != 0);
  auto machine = testing::BootIntercepting(image);
  REQUIRE(machine->Run().reason == StopReason::kHalted);
  const Registers r = machine->GetRegisters();
  CHECK(r.eax == 2);
  CHECK(r.edi == 100);
  CHECK(r.esp == kStack);
}

TEST_CASE("a return to an outer frame, past unfinished calls, goes there") {
  // f1 saves ESP (as setjmp would); f3, two calls deeper, puts it back and
  // returns, straight to f1's caller: the continuations of the calls in f1
  // and f2 stay behind on the return stack and must not be taken.
  const auto image = AssembleGuest([&](x86::Assembler& a) {
    asmjit::Label f1 = a.newLabel(), f2 = a.newLabel(), f3 = a.newLabel();
    EmitRoundsOfCalls(a, 200, f1);
    a.bind(f1);
    a.mov(x86::edi, x86::esp);
    a.call(f2);
    a.add(x86::ebx, 100);  // never runs
    a.ret();
    a.bind(f2);
    a.call(f3);
    a.add(x86::ebx, 10000);  // never runs
    a.ret();
    a.bind(f3);
    a.mov(x86::esp, x86::edi);
    a.ret();
  });
  auto machine = testing::BootIntercepting(image);
  REQUIRE(machine->Run().reason == StopReason::kHalted);
  const Registers r = machine->GetRegisters();
  CHECK(r.ebx == 200);
  CHECK(r.esp == kStack);
}

TEST_CASE("calls that never return leave later returns right") {
  // call/pop reads EIP; the call's continuation is never returned to, and
  // the returns of the frames below it find it on top of theirs.
  const auto image = AssembleGuest([&](x86::Assembler& a) {
    asmjit::Label outer = a.newLabel(), inner = a.newLabel();
    EmitRoundsOfCalls(a, 300, outer);
    a.bind(outer);
    a.call(inner);
    a.add(x86::ebx, 10);
    a.ret();
    a.bind(inner);
    asmjit::Label next = a.newLabel();
    a.call(next);
    a.bind(next);
    a.pop(x86::eax);
    a.add(x86::ebx, 100);
    a.ret();
  });
  auto machine = testing::BootIntercepting(image);
  REQUIRE(machine->Run().reason == StopReason::kHalted);
  const Registers r = machine->GetRegisters();
  CHECK(r.ebx == 300 * 111);
  CHECK(r.esp == kStack);
}

TEST_CASE("a return into a caller whose code was rewritten runs the new code") {
  // The call is the last instruction of its page; the instruction it
  // returns to, the first of the next. The third time round, the callee
  // writes to the caller's page and then rewrites that instruction: the
  // caller's unit dies while its continuation is on the return stack, and
  // then the unit it had chained to, which holds the old instruction. The
  // return must get to the new one.
  const auto image = AssembleGuest([&](x86::Assembler& a) {
    asmjit::Label callee = a.newLabel(), loop = a.newLabel(), site = a.newLabel();
    asmjit::Label scratch = a.newLabel();
    a.mov(x86::esp, kStack);
    a.xor_(x86::ecx, x86::ecx);
    a.xor_(x86::edx, x86::edx);
    a.jmp(loop);
    // AssembleGuest's code starts past a page boundary, where asmjit aligns.
    while (Here(a) % 4096 != 0) a.nop();
    a.bind(scratch);
    a.dd(0);
    constexpr std::uint32_t kCallBytes = 5;
    while ((Here(a) + kCallBytes) % 4096 != 0) a.nop();
    a.bind(loop);
    a.call(callee);
    a.bind(site);
    a.mov(x86::eax, 0x11111111);
    a.add(x86::edx, x86::eax);
    a.inc(x86::ecx);
    a.cmp(x86::ecx, 3);
    a.jne(loop);
    a.hlt();
    while (Here(a) % 4096 != 0) a.nop();
    a.bind(callee);
    asmjit::Label done = a.newLabel();
    a.cmp(x86::ecx, 2);
    a.jne(done);
    a.mov(x86::dword_ptr(scratch), 1);
    a.mov(x86::dword_ptr(site, 1), 0x22222222);
    a.bind(done);
    a.ret();
  });
  auto machine = testing::BootIntercepting(image);
  REQUIRE(machine->Run().reason == StopReason::kHalted);
  const Registers r = machine->GetRegisters();
  CHECK(r.eax == 0x22222222);
  CHECK(r.edx == 0x44444444);
}

TEST_CASE("a call after a unit's last side exit returns to the code after it") {
  // As many conditional branches before the call as a unit has side exits
  // (translator::UnitBuilder::kMaxExits - 2): the unit ends after the call,
  // and its return leaves for the instruction after it. The second time
  // round, the call is chained and its return comes back into the unit.
  constexpr unsigned kSideExits = translator::UnitBuilder::kMaxExits - 2;
  const auto image = AssembleGuest([&](x86::Assembler& a) {
    asmjit::Label callee = a.newLabel(), never = a.newLabel(), body = a.newLabel();
    a.mov(x86::esp, kStack);
    a.mov(x86::esi, 2);
    a.xor_(x86::ebx, x86::ebx);
    a.bind(body);
    a.xor_(x86::eax, x86::eax);
    for (unsigned i = 0; i < kSideExits; ++i) {
      a.test(x86::eax, x86::eax);
      a.jnz(never);
    }
    a.call(callee);
    a.add(x86::ebx, 0x1000);
    a.dec(x86::esi);
    a.jnz(body);
    a.hlt();
    a.bind(never);
    a.mov(x86::ebx, 0xBAD);
    a.hlt();
    a.bind(callee);
    a.add(x86::ebx, 1);
    a.ret();
  });
  auto machine = testing::BootIntercepting(image);
  REQUIRE(machine->Run().reason == StopReason::kHalted);
  const Registers r = machine->GetRegisters();
  CHECK(r.ebx == 0x2002);
  CHECK(r.esp == kStack);
}

std::atomic<unsigned> g_signals{0};

void CountSignal(int) { g_signals.fetch_add(1, std::memory_order_relaxed); }

TEST_CASE("signals for the running thread wait while calls fill the return stack") {
  // The application's handler has no alternate stack. The guest spins
  // with its calls filling all but 512 bytes of the return stack: had the
  // kernel put the handler's frame below translated code's RSP, it would
  // have reached the guard page. Run() holds the signal back instead, and
  // the handler runs once Run() has returned.
  static constexpr std::uint32_t kDepth = translator::kReturnStackBytes / 8 - 64;
  auto machine = testing::BootIntercepting(AssembleGuest([](x86::Assembler& a) {
    // Two rounds: in the second, all is translated and chained, and no exit
    // to the runtime empties the return stack.
    asmjit::Label round = a.newLabel(), down = a.newLabel(), bottom = a.newLabel();
    asmjit::Label spin = a.newLabel();
    a.mov(x86::esp, kStack);
    a.mov(x86::esi, 2);
    a.bind(round);
    a.mov(x86::eax, kDepth);
    a.call(down);
    a.dec(x86::esi);
    a.jnz(round);
    a.hlt();
    a.bind(down);
    a.dec(x86::eax);
    a.jz(bottom);
    a.call(down);
    a.ret();
    a.bind(bottom);
    a.mov(x86::ecx, 200000000);  // about 0.1 s
    a.bind(spin);
    a.dec(x86::ecx);
    a.jnz(spin);
    a.ret();
  }));
  struct sigaction action {
  }, previous{};
  action.sa_handler = CountSignal;
  action.sa_flags = SA_RESTART;
  sigemptyset(&action.sa_mask);
  REQUIRE(sigaction(SIGPROF, &action, &previous) == 0);
  sigevent event{};
  event.sigev_notify = SIGEV_THREAD_ID;
  event.sigev_signo = SIGPROF;
  event._sigev_un._tid = gettid();  // SIGEV_THREAD_ID's field (glibc has no name for it)
  timer_t timer;
  REQUIRE(timer_create(CLOCK_THREAD_CPUTIME_ID, &event, &timer) == 0);
  const itimerspec every_20us{{0, 20000}, {0, 20000}};
  REQUIRE(timer_settime(timer, 0, &every_20us, nullptr) == 0);

  g_signals = 0;
  const StopInfo stop = machine->Run();
  timer_delete(timer);
  sigaction(SIGPROF, &previous, nullptr);

  REQUIRE(stop.reason == StopReason::kHalted);
  CHECK(machine->GetRegisters().esp == kStack);
  CHECK(ReturnStackFull(*machine) == 0);
  CHECK(g_signals.load() > 0);
  sigset_t held;
  REQUIRE(pthread_sigmask(SIG_BLOCK, nullptr, &held) == 0);
  CHECK(!sigismember(&held, SIGPROF));
}

}  // namespace
}  // namespace bt
