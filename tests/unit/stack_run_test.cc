// Runs of pushes and pops that move ESP once (EmitStackRun): a fault
// part-way is precise, with ESP, memory and registers as the instructions
// before the faulting one left them.
#include "tests/support/assembled_guest.h"
#include "tests/support/intercepting_machine.h"

#include <bt/machine.h>

#include <doctest/doctest.h>

#include <functional>

namespace bt {
namespace {

namespace x86 = asmjit::x86;
using testing::AssembleGuest;
using testing::Here;

// Linear 4 MiB + 4 KiB is present (at physical kPresent) and the pages
// either side of it are not; the rest of the first 4 MiB is identity-mapped.
constexpr std::uint32_t kDirectory = 0x800000, kTable = 0x801000, kPresent = 0x900000;
constexpr std::uint32_t kPage = 0x401000;

std::unique_ptr<Machine> Boot(const std::function<void(x86::Assembler&)>& body) {
  auto machine = testing::BootIntercepting(AssembleGuest([&](x86::Assembler& a) {
    testing::EmitEnablePaging(a, kDirectory);
    body(a);
    a.hlt();
  }));
  const std::uint32_t directory[2] = {0x00000083, kTable | 3};
  REQUIRE(machine->WritePhysical(kDirectory, directory, sizeof(directory)));
  const std::uint32_t pte = kPresent | 3;
  REQUIRE(machine->WritePhysical(kTable + 4 * ((kPage >> 12) & 0x3FF), &pte, 4));
  return machine;
}

std::uint32_t PresentDword(const Machine& machine, std::uint32_t linear) {
  std::uint32_t value = 0;
  REQUIRE(machine.ReadPhysical(kPresent + (linear - kPage), &value, 4));
  return value;
}

TEST_CASE("a push that faults in a run leaves the pushes before it done") {
  std::uint32_t faulting = 0;
  auto machine = Boot([&](x86::Assembler& a) {
    a.mov(x86::esp, kPage + 8);
    a.mov(x86::eax, 0x11111111);
    a.mov(x86::ebx, 0x22222222);
    a.push(x86::eax);
    a.push(x86::ebx);
    faulting = Here(a);
    a.push(0x33333333);  // into the page below, which is not present
    a.push(x86::ecx);
  });
  const StopInfo stop = machine->Run();
  REQUIRE(stop.reason == StopReason::kGuestException);
  CHECK(stop.vector == 14);
  CHECK(stop.eip == faulting);
  CHECK(stop.fault_address == kPage - 4);
  CHECK(stop.error_code == 2);  // a supervisor write to a page not present
  CHECK(machine->GetRegisters().esp == kPage);
  CHECK(PresentDword(*machine, kPage + 4) == 0x11111111);
  CHECK(PresentDword(*machine, kPage) == 0x22222222);
}

TEST_CASE("a pop that faults in a run leaves the pops before it done") {
  std::uint32_t faulting = 0;
  auto machine = Boot([&](x86::Assembler& a) {
    a.mov(x86::dword_ptr(kPage + 4088), 0x44444444);
    a.mov(x86::dword_ptr(kPage + 4092), 0x55555555);
    a.mov(x86::esp, kPage + 4088);
    a.xor_(x86::esi, x86::esi);
    a.xor_(x86::edi, x86::edi);
    a.mov(x86::ebp, 0x66666666);
    a.pop(x86::esi);
    a.pop(x86::edi);
    faulting = Here(a);
    a.pop(x86::ebp);  // from the page above, which is not present
    a.pop(x86::ebx);
  });
  const StopInfo stop = machine->Run();
  REQUIRE(stop.reason == StopReason::kGuestException);
  CHECK(stop.vector == 14);
  CHECK(stop.eip == faulting);
  CHECK(stop.fault_address == kPage + 4096);
  CHECK(stop.error_code == 0);  // a supervisor read of a page not present
  const Registers r = machine->GetRegisters();
  CHECK(r.esp == kPage + 4096);
  CHECK(r.esi == 0x44444444);
  CHECK(r.edi == 0x55555555);
  CHECK(r.ebp == 0x66666666);
}

TEST_CASE("pushes and pops in a run keep their order and values") {
  auto machine = Boot([&](x86::Assembler& a) {
    a.mov(x86::esp, kPage + 4096);
    a.mov(x86::eax, 1);
    a.mov(x86::ebx, 2);
    a.mov(x86::ecx, 3);
    a.push(x86::eax);
    a.push(x86::ebx);
    a.push(0x40);
    a.pop(x86::edx);  // 0x40
    a.push(x86::ecx);
    a.pop(x86::esi);  // 3
    a.pop(x86::edi);  // 2
    a.pop(x86::ebp);  // 1
  });
  REQUIRE(machine->Run().reason == StopReason::kHalted);
  const Registers r = machine->GetRegisters();
  CHECK(r.esp == kPage + 4096);
  CHECK(r.edx == 0x40);
  CHECK(r.esi == 3);
  CHECK(r.edi == 2);
  CHECK(r.ebp == 1);
}

}  // namespace
}  // namespace bt
