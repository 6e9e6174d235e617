// Segment loads from the LDT (SDM Vol. 3A 3.5.1; Vol. 2 MOV, POP, JMP):
// selectors with TI set name descriptors in the LDT that lldt loaded, with
// the checks of GDT selectors, #GP(selector) past the LDT's limit, and with
// no LDT at all.
#include "tests/support/system_guest.h"

#include <bt/machine.h>

#include <doctest/doctest.h>

#include <vector>

namespace bt {
namespace {

namespace x86 = asmjit::x86;
using testing::CheckFault;
using testing::ExpectSkip;
using testing::kOut;
using Fault = testing::LoggedFault;

constexpr std::uint32_t kLdt = 0x303000;

enum Selector : std::uint16_t {
  kCode0 = 0x08,
  kData0 = 0x10,
  kLdtSelector = 0x18,
  // In the LDT.
  kLdtData = 0x04,
  kLdtCode = 0x0C,
  kLdtAbsentData = 0x14,
  kLdtData3 = 0x1F,
  kPastLdt = 0x24,
};

constexpr std::uint64_t kGdtEntries[] = {
    0,
    testing::kFlatCode0,                       // 0x08
    testing::kFlatData0,                       // 0x10
    testing::Descriptor(kLdt, 0x1F, 0x82, 0),  // 0x18 LDT, 4 entries
};
// Not accessed yet: a load sets the bit.
constexpr std::uint64_t kLdtEntries[] = {
    testing::Descriptor(0, 0xFFFFF, 0x92, testing::kBig),  // 0x04 data, DPL 0
    testing::Descriptor(0, 0xFFFFF, 0x9A, testing::kBig),  // 0x0C code, DPL 0
    testing::Descriptor(0, 0xFFFFF, 0x12, testing::kBig),  // 0x14 data, not present
    testing::Descriptor(0, 0xFFFFF, 0xF2, testing::kBig),  // 0x1C data, DPL 3
};

// Emits a far jmp (ptr16:32) to `selector`:`target`.
void JumpFar(x86::Assembler& a, std::uint16_t selector, const asmjit::Label& target) {
  a.db(0xEA);
  a.embedLabel(target, 4);
  a.dw(selector);
}

TEST_CASE("segment loads with TI set use the LDT that lldt loaded") {
  std::vector<std::uint32_t> at;
  testing::SystemGuest guest(kGdtEntries, [&](x86::Assembler& a) {
    asmjit::Label in_ldt_code = a.newLabel(), back = a.newLabel();
    a.mov(x86::eax, kLdtSelector);
    a.lldt(x86::ax);
    a.mov(x86::eax, kLdtData);
    a.mov(x86::ds, x86::ax);
    a.mov(x86::ss, x86::ax);
    a.push(kLdtData3);
    a.pop(x86::fs);
    a.mov(x86::word_ptr_abs(kOut), x86::ds);
    a.mov(x86::word_ptr_abs(kOut + 2), x86::ss);
    a.mov(x86::word_ptr_abs(kOut + 4), x86::fs);
    JumpFar(a, kLdtCode, in_ldt_code);
    a.bind(in_ldt_code);
    a.mov(x86::word_ptr_abs(kOut + 6), x86::cs);
    const std::uint16_t selectors[] = {kPastLdt, kLdtAbsentData, kLdtCode | 3};
    for (const std::uint16_t selector : selectors) {
      a.mov(x86::eax, selector);
      at.push_back(ExpectSkip(a, [&] { a.mov(x86::es, x86::ax); }));
    }
    a.mov(x86::eax, kData0);
    a.mov(x86::ds, x86::ax);
    a.mov(x86::ss, x86::ax);
    // Back to CS in the GDT, which the handler's iret needs once the LDT
    // is gone; then TI selectors are #GP(selector).
    JumpFar(a, kCode0, back);
    a.bind(back);
    a.xor_(x86::eax, x86::eax);
    a.lldt(x86::ax);
    a.mov(x86::eax, kLdtData);
    at.push_back(ExpectSkip(a, [&] { a.mov(x86::es, x86::ax); }));
    testing::Halt(a);
  });
  REQUIRE(guest.machine().WritePhysical(kLdt, kLdtEntries, sizeof(kLdtEntries)));
  guest.Run();
  CHECK(guest.Read64(kOut) == (std::uint64_t{kLdtCode} << 48 | std::uint64_t{kLdtData3} << 32 |
                               kLdtData << 16 | kLdtData));
  CHECK((guest.Read64(kLdt) >> 40 & 1) != 0);  // accessed
  CHECK((guest.Read64(kLdt + 8) >> 40 & 1) != 0);
  const std::vector<Fault> faults = guest.Faults();
  REQUIRE(faults.size() == 4);
  CheckFault(faults[0], 13, kPastLdt, at[0], kLdtCode);
  CheckFault(faults[1], 11, kLdtAbsentData, at[1], kLdtCode);
  CheckFault(faults[2], 13, kLdtCode, at[2], kLdtCode);
  CheckFault(faults[3], 13, kLdtData, at[3]);
}

}  // namespace
}  // namespace bt
