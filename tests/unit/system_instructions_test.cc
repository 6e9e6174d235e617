// System instructions of a protected-mode kernel, checked against the SDM
// (Vol. 2 for each instruction, Vol. 3A table 2-2 for CR0.TS/EM/MP): the
// stores sgdt/sidt/sldt/str/smsw, lldt/ltr, lar/lsl/verr/verw, lmsw/clts and
// #NM, rdmsr/wrmsr, sysenter/sysexit. Guests run with a GDT of assorted
// descriptors and an IDT whose handlers log each exception (vector, error
// code, EIP) and then skip the instruction or fix CR0 and restart it.
// Where QEMU deviates from the SDM (tests/guests/system_regs.c lists how:
// ltr of a null selector, IA32_SYSENTER_CS[15:2] = 0, EM with TS, #GP for
// unknown MSRs, sidt with a 16-bit operand size, TSC writes) the check lives
// here, not in the system_regs guest.
#include "tests/support/system_guest.h"

#include <bt/machine.h>

#include <cpuid.h>
#include <doctest/doctest.h>

#include <cstring>
#include <functional>
#include <vector>

namespace bt {
namespace {

namespace x86 = asmjit::x86;
using testing::CheckFault;
using testing::Descriptor;
using testing::ExpectSkip;
using testing::Gate;
using testing::Halt;
using testing::Here;
using testing::kAction;
using testing::kBig;
using testing::kByteGranular32;
using testing::kClearEmTs;
using testing::kClts;
using testing::kCodeSelector;
using testing::kGdt;
using testing::kIdt;
using testing::kIdtr;
using testing::kOut;
using testing::kSettings;
using testing::kSkip;
using Fault = testing::LoggedFault;

constexpr std::uint32_t kTss = 0x302000, kLdt = 0x303000;

// Indexed by selector >> 3.
constexpr std::uint64_t kGdtEntries[] = {
    0,
    Descriptor(0, 0xFFFFF, 0x9B, kBig),                  // 0x08 code
    Descriptor(0, 0xFFFFF, 0x93, kBig),                  // 0x10 data
    Descriptor(kTss, 0x67, 0x89, 0),                     // 0x18 32-bit TSS, available
    Descriptor(kTss + 0x100, 0x67, 0x89, 0),             // 0x20 another
    Descriptor(kLdt, 0x17, 0x82, 0),                     // 0x28 LDT, 3 entries
    Descriptor(kTss + 0x200, 0x67, 0x09, 0),             // 0x30 32-bit TSS, not present
    Descriptor(0, 0xFFFFF, 0xF3, kBig),                  // 0x38 data, DPL 3
    Descriptor(0, 0xFFFFF, 0x99, kBig),                  // 0x40 code, execute-only
    Descriptor(0, 0xFFFFF, 0x9F, kBig),                  // 0x48 code, conforming, readable
    Descriptor(0x1000, 0x12345, 0x91, kByteGranular32),  // 0x50 data, read-only
    Gate(0x12345678, kCodeSelector, 0x8E),               // 0x58 interrupt gate
    Gate(0x9ABCDEF0, kCodeSelector, 0x8C),               // 0x60 call gate
    Descriptor(kTss + 0x300, 0x2B, 0x81, 0),             // 0x68 16-bit TSS, available
    Descriptor(0, 0xFFFF, 0x13, 0),                      // 0x70 data, not present
    Descriptor(0, 0xFFFF, 0x80, 0),                      // 0x78 system type 0 (reserved)
    Descriptor(kLdt, 0x17, 0x02, 0),                     // 0x80 LDT, not present
    Descriptor(0, 0xFFFFF, 0xB3, kBig),                  // 0x88 data, DPL 1
};
constexpr std::uint16_t kGdtLimit = sizeof(kGdtEntries) - 1;
constexpr std::uint64_t kLdtEntries[] = {
    Descriptor(0x2000, 0xFFF, 0x93, kByteGranular32),  // 0x04 data
    Descriptor(0, 0xFFFFF, 0x9B, kBig),                // 0x0C code, readable
    Descriptor(0, 0x1FFF, 0xF1, kByteGranular32),      // 0x14 data, DPL 3, read-only
};

// The shared harness with the GDT and LDT above.
class SystemGuest : public testing::SystemGuest {
 public:
  explicit SystemGuest(const std::function<void(x86::Assembler&)>& body,
                       TranslatorOptions translator = {})
      : testing::SystemGuest(kGdtEntries, body, translator) {
    REQUIRE(machine().WritePhysical(kLdt, kLdtEntries, sizeof(kLdtEntries)));
  }
};

TEST_CASE("sgdt and sidt store the limit and the full 32-bit base, also with o16") {
  SystemGuest guest([](x86::Assembler& a) {
    a.sgdt(x86::ptr_abs(kOut));
    a.sidt(x86::ptr_abs(kOut + 8));
    // An IDT base whose top byte the 286 format would drop: lidt takes it
    // (nothing is delivered before it is put back).
    a.mov(x86::word_ptr_abs(kOut + 0x40), 0x0123);
    a.mov(x86::dword_ptr_abs(kOut + 0x42), 0xAB012345u);
    a.lidt(x86::ptr_abs(kOut + 0x40));
    a.embed("\x66\x0F\x01\x0D", 4);  // o16 sidt [kOut + 0x10]
    const std::uint32_t at = kOut + 0x10;
    a.embed(&at, 4);
    a.lidt(x86::ptr_abs(kIdtr));
    Halt(a);
  });
  guest.Run();
  CHECK((guest.Read64(kOut) & 0xFFFFFFFFFFFF) == (std::uint64_t{kGdt} << 16 | kGdtLimit));
  CHECK((guest.Read64(kOut + 8) & 0xFFFFFFFFFFFF) == (std::uint64_t{kIdt} << 16 | 0x7FF));
  CHECK((guest.Read64(kOut + 0x10) & 0xFFFFFFFFFFFF) == (0xAB012345ull << 16 | 0x0123));
}

TEST_CASE(
    "sldt, str and smsw: registers get them zero-extended (smsw: all of CR0), memory 16 bits") {
  const Registers r = SystemGuest([](x86::Assembler& a) {
                        a.mov(x86::eax, 0xFFFFFFFF);
                        a.str(x86::eax);  // 0 after reset
                        a.mov(x86::ebx, 0xFFFFFFFF);
                        a.sldt(x86::bx);  // o16: the upper half stays
                        a.mov(x86::ecx, 0x28);
                        a.lldt(x86::cx);
                        a.mov(x86::ecx, 0x18);
                        a.ltr(x86::cx);
                        a.mov(x86::dword_ptr_abs(kOut), 0xFFFFFFFF);
                        a.str(x86::word_ptr_abs(kOut));
                        a.mov(x86::dword_ptr_abs(kOut + 4), 0xFFFFFFFF);
                        a.sldt(x86::word_ptr_abs(kOut + 4));
                        a.mov(x86::dword_ptr_abs(kOut + 8), 0xFFFFFFFF);
                        a.smsw(x86::word_ptr_abs(kOut + 8));
                        a.str(x86::ecx);
                        a.sldt(x86::edx);
                        a.mov(x86::esi, 0xFFFFFFFF);
                        a.smsw(x86::esi);
                        a.mov(x86::edi, 0xFFFFFFFF);
                        a.smsw(x86::di);
                        Halt(a);
                      }).Run();
  CHECK(r.eax == 0);
  CHECK(r.ebx == 0xFFFF0000);
  CHECK(r.ecx == 0x18);
  CHECK(r.edx == 0x28);
  CHECK(r.esi == 0x11);  // PE, ET: CR0 as Multiboot leaves it
  CHECK(r.edi == 0xFFFF0011);
}

TEST_CASE("sldt, str and smsw to memory write 16 bits") {
  SystemGuest guest([](x86::Assembler& a) {
    a.mov(x86::ecx, 0x28);
    a.lldt(x86::cx);
    a.mov(x86::ecx, 0x18);
    a.ltr(x86::cx);
    for (std::uint32_t i = 0; i < 3; ++i) a.mov(x86::dword_ptr_abs(kOut + 4 * i), 0xFFFFFFFF);
    a.str(x86::word_ptr_abs(kOut));
    a.sldt(x86::word_ptr_abs(kOut + 4));
    a.smsw(x86::word_ptr_abs(kOut + 8));
    Halt(a);
  });
  guest.Run();
  CHECK(guest.Read32(kOut) == 0xFFFF0018);
  CHECK(guest.Read32(kOut + 4) == 0xFFFF0028);
  CHECK(guest.Read32(kOut + 8) == 0xFFFF0011);
}

TEST_CASE("ltr takes an available TSS and marks it busy; #GP or #NP with the selector otherwise") {
  std::vector<std::uint32_t> at;
  SystemGuest guest([&](x86::Assembler& a) {
    a.mov(x86::ecx, 0x18);
    a.ltr(x86::cx);
    a.str(x86::esi);
    // Busy now; null; TI set; past the GDT limit; an LDT; a data segment;
    // not present; as a 16-bit TSS, accepted.
    for (std::uint16_t selector : {0x18, 0x00, 0x1C, 0x90, 0x28, 0x10, 0x30}) {
      a.mov(x86::ecx, selector);
      at.push_back(ExpectSkip(a, [&] { a.ltr(x86::cx); }));
    }
    a.mov(x86::word_ptr_abs(kOut), 0x68);
    a.ltr(x86::word_ptr_abs(kOut));
    a.str(x86::edi);
    Halt(a);
  });
  const Registers r = guest.Run();
  CHECK(r.esi == 0x18);
  CHECK(r.edi == 0x68);
  CHECK((guest.Read64(kGdt + 0x18) >> 40 & 0xFF) == 0x8B);  // busy 32-bit TSS
  CHECK((guest.Read64(kGdt + 0x68) >> 40 & 0xFF) == 0x83);  // busy 16-bit TSS
  CHECK((guest.Read64(kGdt + 0x20) >> 40 & 0xFF) == 0x89);
  const std::vector<Fault> faults = guest.Faults();
  REQUIRE(faults.size() == 7);
  CheckFault(faults[0], 13, 0x18, at[0]);
  CheckFault(faults[1], 13, 0, at[1]);
  CheckFault(faults[2], 13, 0x1C, at[2]);
  CheckFault(faults[3], 13, 0x90, at[3]);
  CheckFault(faults[4], 13, 0x28, at[4]);
  CheckFault(faults[5], 13, 0x10, at[5]);
  CheckFault(faults[6], 11, 0x30, at[6]);
}

TEST_CASE(
    "lldt takes an LDT descriptor or a null selector; #GP or #NP with the selector otherwise") {
  std::vector<std::uint32_t> at;
  SystemGuest guest([&](x86::Assembler& a) {
    a.mov(x86::ecx, 0x28);
    a.lldt(x86::cx);
    a.sldt(x86::esi);
    for (std::uint16_t selector : {0x18, 0x2C, 0x80}) {
      a.mov(x86::ecx, selector);
      at.push_back(ExpectSkip(a, [&] { a.lldt(x86::cx); }));
    }
    a.mov(x86::ecx, 3);  // null: LDTR becomes unusable
    a.lldt(x86::cx);
    a.sldt(x86::edi);
    // The LDT is gone: its selectors no longer check out.
    a.push(0x42);  // ZF set
    a.popfd();
    a.mov(x86::ecx, 0x04);
    a.lsl(x86::ebx, x86::ecx);
    a.pushfd();
    a.pop(x86::edx);
    Halt(a);
  });
  const Registers r = guest.Run();
  CHECK(r.esi == 0x28);
  CHECK(r.edi == 3);
  CHECK((r.edx & 0x40) == 0);
  const std::vector<Fault> faults = guest.Faults();
  REQUIRE(faults.size() == 3);
  CheckFault(faults[0], 13, 0x18, at[0]);
  CheckFault(faults[1], 13, 0x2C, at[1]);
  CheckFault(faults[2], 11, 0x80, at[2]);
}

struct SegmentCheck {
  std::uint16_t selector;
  bool lar, lsl;
  std::uint32_t limit;
  bool verr, verw;
};

// LDT selectors work after lldt 0x28.
constexpr SegmentCheck kChecks[] = {
    {0x00, false, false, 0, false, false},  // null
    {0x03, false, false, 0, false, false},
    {0x08, true, true, 0xFFFFFFFF, true, false},
    {0x0B, false, false, 0, false, false},  // RPL 3 > DPL 0
    {0x10, true, true, 0xFFFFFFFF, true, true},
    {0x18, true, true, 0x67, false, false},
    {0x28, true, true, 0x17, false, false},
    {0x30, true, true, 0x67, false, false},  // P is not checked
    {0x3B, true, true, 0xFFFFFFFF, true, true},
    {0x40, true, true, 0xFFFFFFFF, false, false},
    {0x4B, true, true, 0xFFFFFFFF, true, false},  // conforming: RPL 3 is fine
    {0x50, true, true, 0x12345, true, false},
    {0x58, false, false, 0, false, false},  // interrupt gate
    {0x60, true, false, 0, false, false},   // call gate: lar only
    {0x68, true, true, 0x2B, false, false},
    {0x70, true, true, 0xFFFF, true, true},
    {0x78, false, false, 0, false, false},  // reserved system type
    {0x89, true, true, 0xFFFFFFFF, true, true},
    {0x8A, false, false, 0, false, false},  // RPL 2 > DPL 1
    {0x90, false, false, 0, false, false},  // past the GDT limit
    {0x04, true, true, 0xFFF, true, true},
    {0x0C, true, true, 0xFFFFFFFF, true, false},
    {0x17, true, true, 0x1FFF, true, false},
    {0x1C, false, false, 0, false, false},  // past the LDT limit
};

std::uint64_t DescriptorOf(std::uint16_t selector) {
  return selector & 4 ? kLdtEntries[selector >> 3] : kGdtEntries[selector >> 3];
}

TEST_CASE("lar, lsl, verr and verw check descriptors and change only ZF") {
  enum { kLar, kLsl, kVerr, kVerw };
  constexpr std::uint32_t kSentinel = 0xDEADBEEF;
  constexpr std::uint32_t kOtherFlags = 0x895;  // CF PF AF SF OF
  SystemGuest guest([&](x86::Assembler& a) {
    a.mov(x86::ecx, 0x28);
    a.lldt(x86::cx);
    std::uint32_t out = kOut;
    for (const SegmentCheck& check : kChecks) {
      const bool expected[4] = {check.lar, check.lsl, check.verr, check.verw};
      for (int op = kLar; op <= kVerw; ++op) {
        // ZF starts opposite to the expected result.
        a.push(kOtherFlags | (expected[op] ? 0 : 0x40));
        a.popfd();
        a.mov(x86::eax, kSentinel);
        a.mov(x86::ecx, check.selector);
        switch (op) {
          case kLar: a.lar(x86::eax, x86::ecx); break;
          case kLsl: a.lsl(x86::eax, x86::ecx); break;
          case kVerr: a.verr(x86::cx); break;
          case kVerw: a.verw(x86::cx); break;
        }
        a.pushfd();
        a.pop(x86::dword_ptr_abs(out + 4));
        a.mov(x86::dword_ptr_abs(out), x86::eax);
        out += 8;
      }
    }
    // 16-bit destinations keep bits 31:16; a memory source.
    a.mov(x86::eax, kSentinel);
    a.mov(x86::ecx, 0x08);
    a.lar(x86::ax, x86::cx);
    a.mov(x86::ebx, kSentinel);
    a.mov(x86::word_ptr_abs(kOut + 0x1000), 0x50);
    a.lsl(x86::bx, x86::word_ptr_abs(kOut + 0x1000));
    a.mov(x86::edx, kSentinel);
    a.lar(x86::edx, x86::word_ptr_abs(kOut + 0x1000));
    Halt(a);
  });
  const Registers r = guest.Run();
  std::uint32_t out = kOut;
  for (const SegmentCheck& check : kChecks) {
    CAPTURE(check.selector);
    const bool expected[4] = {check.lar, check.lsl, check.verr, check.verw};
    const std::uint32_t lar_value =
        check.lar ? static_cast<std::uint32_t>(DescriptorOf(check.selector) >> 32) & 0x00F0FF00 : 0;
    const std::uint32_t values[4] = {check.lar ? lar_value : kSentinel,
                                     check.lsl ? check.limit : kSentinel, kSentinel, kSentinel};
    for (int op = kLar; op <= kVerw; ++op) {
      CAPTURE(op);
      const std::uint32_t flags = guest.Read32(out + 4);
      CHECK(((flags & 0x40) != 0) == expected[op]);
      CHECK((flags & kOtherFlags) == kOtherFlags);
      CHECK(guest.Read32(out) == values[op]);
      out += 8;
    }
  }
  CHECK(r.eax == ((kSentinel & 0xFFFF0000) | 0x9B00));
  CHECK(r.ebx == ((kSentinel & 0xFFFF0000) | 0x2345));
  CHECK(r.edx == 0x00409100);
}

TEST_CASE("rdmsr and wrmsr: the SYSENTER MSRs, PAT, MISC_ENABLE, EFER; #GP(0) for the rest") {
  constexpr std::uint32_t kPatValue = 0x00010504, kPatHigh = 0x00070607;
  constexpr std::uint32_t kEfer = 0xC0000080, kNxe = 1u << 11;
  std::vector<std::uint32_t> at;
  SystemGuest guest([&](x86::Assembler& a) {
    auto wrmsr = [&](std::uint32_t msr, std::uint32_t edx, std::uint32_t eax) {
      a.mov(x86::ecx, msr);
      a.mov(x86::edx, edx);
      a.mov(x86::eax, eax);
      a.wrmsr();
    };
    std::uint32_t out = kOut;
    auto rdmsr = [&](std::uint32_t msr) {
      a.mov(x86::ecx, msr);
      a.rdmsr();
      a.mov(x86::dword_ptr_abs(out), x86::eax);
      a.mov(x86::dword_ptr_abs(out + 4), x86::edx);
      out += 8;
    };
    rdmsr(0x174);  // 0: SYSENTER_CS after reset
    rdmsr(0x277);  // 8: PAT after reset
    rdmsr(0x1A0);  // 16: MISC_ENABLE
    wrmsr(0x174, 5, 0x12340008);
    wrmsr(0x175, 1, 0x89ABCDEF);
    wrmsr(0x176, 0, 0x00C0FFEE);
    rdmsr(0x174);  // 24
    rdmsr(0x175);  // 32
    rdmsr(0x176);  // 40
    wrmsr(0x277, kPatHigh, kPatValue);
    rdmsr(0x277);  // 48
    wrmsr(0x1A0, 0, 0x1801 | 1u << 22);
    rdmsr(0x1A0);  // 56
    wrmsr(0x8B, 0, 0);
    rdmsr(0x8B);   // 64
    rdmsr(0x17);   // 72
    rdmsr(kEfer);  // 80: after reset
    wrmsr(kEfer, 0, kNxe);
    rdmsr(kEfer);  // 88
    // Faults, each leaving EAX/EDX and the MSR as they were.
    a.mov(x86::ecx, 0x12345678);
    at.push_back(ExpectSkip(a, [&] { a.rdmsr(); }));
    at.push_back(ExpectSkip(a, [&] { a.wrmsr(); }));
    a.mov(x86::ecx, 0x1B);  // IA32_APIC_BASE: no APIC in CPUID
    at.push_back(ExpectSkip(a, [&] { a.rdmsr(); }));
    a.mov(x86::ecx, 0x17);  // IA32_PLATFORM_ID is read-only
    at.push_back(ExpectSkip(a, [&] { a.wrmsr(); }));
    a.mov(x86::ecx, 0x277);  // PAT entry 3 = 2: reserved memory type
    a.mov(x86::edx, 0);
    a.mov(x86::eax, 0x02000000);
    at.push_back(ExpectSkip(a, [&] { a.wrmsr(); }));
    a.mov(x86::ecx, 0x1A0);  // clears bit 11, which is read-only
    a.mov(x86::eax, 0x1001);
    at.push_back(ExpectSkip(a, [&] { a.wrmsr(); }));
    a.mov(x86::eax, 0x1801 | 1u << 22);  // sets XD disable: NX cannot be turned off
    a.mov(x86::edx, 1u << 2);
    at.push_back(ExpectSkip(a, [&] { a.wrmsr(); }));
    // EFER: CPUID reports no SYSCALL (SCE, bit 0) and no long mode (LME,
    // bit 8; LMA, bit 10); bits 63:12 are reserved.
    a.mov(x86::ecx, kEfer);
    for (const std::uint64_t value :
         {kNxe | 1ull, kNxe | 1ull << 8, kNxe | 1ull << 10, kNxe | 1ull << 12, kNxe | 1ull << 63}) {
      a.mov(x86::eax, static_cast<std::uint32_t>(value));
      a.mov(x86::edx, static_cast<std::uint32_t>(value >> 32));
      at.push_back(ExpectSkip(a, [&] { a.wrmsr(); }));
    }
    rdmsr(0x277);  // 96
    rdmsr(0x1A0);  // 104
    rdmsr(kEfer);  // 112
    wrmsr(kEfer, 0, 0);
    rdmsr(kEfer);  // 120
    Halt(a);
  });
  guest.Run();
  CHECK(guest.Read64(kOut) == 0);
  CHECK(guest.Read64(kOut + 8) == 0x0007040600070406);
  CHECK(guest.Read64(kOut + 16) == 0x1801);
  CHECK(guest.Read64(kOut + 24) == 0x0000000512340008);  // bits 63:16 read back (SDM)
  CHECK(guest.Read64(kOut + 32) == 0x89ABCDEF);          // 32 bits without Intel 64
  CHECK(guest.Read64(kOut + 40) == 0x00C0FFEE);
  CHECK(guest.Read64(kOut + 48) == (std::uint64_t{kPatHigh} << 32 | kPatValue));
  CHECK(guest.Read64(kOut + 56) == (0x1801 | 1u << 22));
  CHECK(guest.Read64(kOut + 64) == 0);
  CHECK(guest.Read64(kOut + 72) == 0);
  CHECK(guest.Read64(kOut + 80) == 0);
  CHECK(guest.Read64(kOut + 88) == kNxe);
  CHECK(guest.Read64(kOut + 96) == (std::uint64_t{kPatHigh} << 32 | kPatValue));
  CHECK(guest.Read64(kOut + 104) == (0x1801 | 1u << 22));
  CHECK(guest.Read64(kOut + 112) == kNxe);
  CHECK(guest.Read64(kOut + 120) == 0);
  const std::vector<Fault> faults = guest.Faults();
  REQUIRE(faults.size() == at.size());
  for (std::size_t i = 0; i < at.size(); ++i) {
    CAPTURE(i);
    CheckFault(faults[i], 13, 0, at[i]);
  }
}

TEST_CASE("AMD's NB_CFG keeps EnableCf8ExtCfg when CPUID says AMD, and is #GP(0) otherwise") {
  constexpr std::uint32_t kNbConfig = 0xC001001F, kEnableCf8ExtCfgHigh = 1u << 14;
  // Guests see the host's vendor.
  unsigned max_leaf = 0, vendor_ebx = 0, vendor_ecx = 0, vendor_edx = 0;
  __cpuid(0, max_leaf, vendor_ebx, vendor_ecx, vendor_edx);
  const bool amd = vendor_ebx == 0x68747541;  // "Auth"
  std::vector<std::uint32_t> at;
  SystemGuest guest([&](x86::Assembler& a) {
    a.mov(x86::ecx, kNbConfig);
    a.mov(x86::eax, 0);
    a.mov(x86::edx, kEnableCf8ExtCfgHigh);
    at.push_back(ExpectSkip(a, [&] { a.wrmsr(); }));
    a.mov(x86::eax, 0x11111111);
    a.mov(x86::edx, 0x22222222);
    at.push_back(ExpectSkip(a, [&] { a.rdmsr(); }));
    a.mov(x86::dword_ptr_abs(kOut), x86::eax);
    a.mov(x86::dword_ptr_abs(kOut + 4), x86::edx);
    a.mov(x86::eax, 1);  // another bit: not writable
    at.push_back(ExpectSkip(a, [&] { a.wrmsr(); }));
    Halt(a);
  });
  guest.Run();
  const std::vector<Fault> faults = guest.Faults();
  if (amd) {
    CHECK(guest.Read64(kOut) == std::uint64_t{kEnableCf8ExtCfgHigh} << 32);
    REQUIRE(faults.size() == 1);
    CheckFault(faults[0], 13, 0, at[2]);
  } else {
    CHECK(guest.Read64(kOut) == 0x2222222211111111);  // untouched by the faulting rdmsr
    REQUIRE(faults.size() == 3);
    for (std::size_t i = 0; i < at.size(); ++i) CheckFault(faults[i], 13, 0, at[i]);
  }
}

TEST_CASE("wrmsr to IA32_TIME_STAMP_COUNTER moves what rdtsc and rdmsr read") {
  const Registers r = SystemGuest([](x86::Assembler& a) {
                        a.mov(x86::ecx, 0x10);
                        a.mov(x86::edx, 0x100);  // 2^40
                        a.xor_(x86::eax, x86::eax);
                        a.wrmsr();
                        a.rdtsc();
                        a.mov(x86::esi, x86::edx);
                        a.mov(x86::edi, x86::eax);
                        a.rdmsr();
                        a.mov(x86::ebx, x86::edx);
                        a.mov(x86::ebp, x86::eax);
                        Halt(a);
                      }).Run();
  const std::uint64_t by_rdtsc = std::uint64_t{r.esi} << 32 | r.edi;
  const std::uint64_t by_rdmsr = std::uint64_t{r.ebx} << 32 | r.ebp;
  CHECK(by_rdtsc >= (1ull << 40));
  CHECK(by_rdtsc - (1ull << 40) < (1ull << 36));  // well under a minute of cycles
  CHECK(by_rdmsr >= by_rdtsc);
  CHECK(by_rdmsr - by_rdtsc < (1ull << 36));
}

TEST_CASE("rdtsc runs inline and keeps the flags; with CR4.TSD it is a callout") {
  SystemGuest guest([](x86::Assembler& a) {
    a.stc();
    a.rdtsc();
    a.setc(x86::bl);  // CF survived
    a.mov(x86::esi, x86::edx);
    a.mov(x86::eax, x86::cr4);
    a.or_(x86::eax, 0x4);  // TSD: rdtsc faults at CPL > 0, so it is checked
    a.mov(x86::cr4, x86::eax);
    a.rdtsc();
    a.mov(x86::edi, x86::edx);
    Halt(a);
  });
  const Registers r = guest.Run();
  CHECK((r.ebx & 0xFF) == 1);
  CHECK(r.edi >= r.esi);
  CHECK(guest.machine().GetStats().callouts[static_cast<std::size_t>(CalloutKind::kRdtsc)] == 1);
}

// IA32_SYSENTER_CS = cs, IA32_SYSENTER_ESP = kSysenterStack, IA32_SYSENTER_EIP
// = entry.
constexpr std::uint32_t kSysenterStack = 0x370000;
void SetSysenterMsrs(x86::Assembler& a, std::uint32_t cs, const asmjit::Label& entry) {
  a.mov(x86::ecx, 0x174);
  a.xor_(x86::edx, x86::edx);
  a.mov(x86::eax, cs);
  a.wrmsr();
  a.mov(x86::ecx, 0x175);
  a.mov(x86::eax, kSysenterStack);
  a.wrmsr();
  a.mov(x86::ecx, 0x176);
  a.lea(x86::eax, x86::ptr(entry));
  a.wrmsr();
}

TEST_CASE("sysenter loads CS, SS, ESP and EIP from the MSRs and clears IF") {
  const Registers r = SystemGuest([&](x86::Assembler& a) {
                        asmjit::Label entry = a.newLabel();
                        SetSysenterMsrs(a, 0x0B, entry);  // the RPL is ignored
                        a.push(0x243);                    // IF, ZF, CF
                        a.popfd();
                        a.mov(x86::ebp, x86::esp);
                        a.sysenter();
                        a.bind(entry);
                        a.pushfd();
                        a.pop(x86::edx);
                        a.mov(x86::ecx, x86::esp);
                        a.mov(x86::eax, x86::cs);
                        a.mov(x86::ebx, x86::ss);
                        a.mov(x86::esp, x86::ebp);
                        Halt(a);
                      }).Run();
  CHECK(r.eax == 0x08);
  CHECK(r.ebx == 0x10);
  CHECK(r.ecx == kSysenterStack);
  CHECK((r.edx & 0x200) == 0);
  CHECK((r.edx & 0xC1) == 0x41);
}

TEST_CASE("sysenter and sysexit with IA32_SYSENTER_CS = 0 are #GP(0)") {
  std::uint32_t sysenter_at = 0, sysexit_at = 0;
  SystemGuest guest([&](x86::Assembler& a) {
    a.mov(x86::ecx, 0x174);
    a.xor_(x86::edx, x86::edx);
    a.mov(x86::eax, 3);  // selector bits 15:2 zero
    a.wrmsr();
    sysenter_at = ExpectSkip(a, [&] { a.sysenter(); });
    sysexit_at = ExpectSkip(a, [&] { a.sysexit(); });
    Halt(a);
  });
  guest.Run();
  const std::vector<Fault> faults = guest.Faults();
  REQUIRE(faults.size() == 2);
  CheckFault(faults[0], 13, 0, sysenter_at);
  CheckFault(faults[1], 13, 0, sysexit_at);
}

TEST_CASE("sysexit enters CPL 3 at EDX with ESP = ECX; sysenter returns to CPL 0") {
  const Registers r = SystemGuest([&](x86::Assembler& a) {
                        asmjit::Label user = a.newLabel(), entry = a.newLabel();
                        SetSysenterMsrs(a, kCodeSelector, entry);
                        a.mov(x86::ecx, 0x360000);
                        a.lea(x86::edx, x86::ptr(user));
                        a.sysexit();
                        a.bind(user);
                        a.mov(x86::eax, x86::cs);
                        a.mov(x86::ebx, x86::ss);
                        a.mov(x86::esi, x86::esp);
                        a.sysenter();
                        a.bind(entry);
                        a.mov(x86::edi, x86::cs);
                        a.mov(x86::ebp, x86::esp);
                        Halt(a);
                      }).Run();
  CHECK(r.eax == 0x1B);  // SYSENTER_CS + 16, RPL 3
  CHECK(r.ebx == 0x23);  // SYSENTER_CS + 24, RPL 3
  CHECK(r.esi == 0x360000);
  CHECK(r.edi == 0x08);
  CHECK(r.ebp == kSysenterStack);
}

// Sets CR0 |= bits through mov to CR0, as kernels do.
void SetCr0Bits(x86::Assembler& a, std::uint32_t bits) {
  a.mov(x86::eax, x86::cr0);
  a.or_(x86::eax, bits);
  a.mov(x86::cr0, x86::eax);
}

constexpr std::uint32_t kMp = 2, kEm = 4, kTs = 8;

TEST_CASE("CR0.TS: x87, MMX and SSE raise #NM until clts; wait only with MP") {
  for (const TranslatorOptions& settings : kSettings) {
    CAPTURE(settings.max_unit_instructions);
    CAPTURE(settings.chaining);
    std::vector<std::uint32_t> at;
    SystemGuest guest(
        [&](x86::Assembler& a) {
          testing::EmitEnableSse(a);
          a.mov(x86::dword_ptr_abs(kAction), kClts);  // lazy FPU switching
          SetCr0Bits(a, kTs);
          at.push_back(Here(a));
          a.fld1();  // #NM, then again after clts
          a.fstp(x86::dword_ptr_abs(kOut));
          SetCr0Bits(a, kTs);
          at.push_back(Here(a));
          a.movd(x86::mm0, x86::eax);
          a.emms();
          SetCr0Bits(a, kTs);
          at.push_back(Here(a));
          a.xorps(x86::xmm0, x86::xmm0);
          SetCr0Bits(a, kTs);
          a.fwait();  // MP clear: runs
          a.smsw(x86::esi);
          SetCr0Bits(a, kTs | kMp);
          at.push_back(Here(a));
          a.fwait();
          SetCr0Bits(a, kTs);
          at.push_back(Here(a));
          a.cvttsd2si(x86::eax, x86::qword_ptr_abs(kOut + 8));  // SSE2 naming no XMM register
          a.smsw(x86::edi);
          Halt(a);
        },
        settings);
    const Registers r = guest.Run();
    CHECK(guest.Read32(kOut) == 0x3F800000);  // fld1 ran after the restart
    CHECK((r.esi & kTs) != 0);                // wait did not fault
    CHECK((r.edi & kTs) == 0);
    const std::vector<Fault> faults = guest.Faults();
    REQUIRE(faults.size() == at.size());
    for (std::size_t i = 0; i < at.size(); ++i) {
      CAPTURE(i);
      CheckFault(faults[i], 7, 0, at[i]);
    }
  }
}

TEST_CASE("CR0.EM: x87 raises #NM, MMX and SSE #UD (also with TS set), wait runs") {
  for (const TranslatorOptions& settings : kSettings) {
    CAPTURE(settings.max_unit_instructions);
    std::vector<std::uint32_t> at;
    SystemGuest guest(
        [&](x86::Assembler& a) {
          testing::EmitEnableSse(a);
          a.mov(x86::dword_ptr_abs(kAction), kClearEmTs);
          SetCr0Bits(a, kEm | kMp);
          a.fwait();
          at.push_back(Here(a));
          a.fldz();
          a.fstp(x86::st0);
          SetCr0Bits(a, kEm);
          at.push_back(Here(a));
          a.pxor(x86::mm1, x86::mm1);
          a.emms();
          SetCr0Bits(a, kEm | kTs);  // #UD before #NM (QEMU: #NM)
          at.push_back(Here(a));
          a.addps(x86::xmm0, x86::xmm1);
          SetCr0Bits(a, kEm | kTs);
          at.push_back(Here(a));
          a.pxor(x86::mm2, x86::mm2);
          a.emms();
          SetCr0Bits(a, kEm);
          at.push_back(Here(a));
          a.stmxcsr(x86::dword_ptr_abs(kOut));
          Halt(a);
        },
        settings);
    guest.Run();
    CHECK(guest.Read32(kOut) == 0x1F80);
    const std::vector<Fault> faults = guest.Faults();
    REQUIRE(faults.size() == 5);
    CheckFault(faults[0], 7, 0, at[0]);
    for (std::size_t i = 1; i < faults.size(); ++i) CheckFault(faults[i], 6, 0, at[i]);
  }
}

TEST_CASE("CR4.OSFXSR clear: SSE instructions are #UD, MMX (pshufw too) and x87 run") {
  std::vector<std::uint32_t> at;
  SystemGuest guest([&](x86::Assembler& a) {
    a.mov(x86::dword_ptr_abs(kAction), kSkip);
    a.pxor(x86::mm1, x86::mm1);
    a.emms();
    a.fldz();
    a.fstp(x86::st0);
    at.push_back(ExpectSkip(a, [&] { a.addps(x86::xmm0, x86::xmm1); }));
    at.push_back(ExpectSkip(a, [&] { a.stmxcsr(x86::dword_ptr_abs(kOut)); }));
    a.pshufw(x86::mm0, x86::mm1, 0);  // SSE on MMX registers: the MMX exceptions
    a.emms();
    testing::EmitEnableSse(a);
    a.stmxcsr(x86::dword_ptr_abs(kOut + 4));  // the same kind of unit, now with OSFXSR
    Halt(a);
  });
  guest.Run();
  CHECK(guest.Read32(kOut + 4) == 0x1F80);
  const std::vector<Fault> faults = guest.Faults();
  REQUIRE(faults.size() == at.size());
  for (std::size_t i = 0; i < at.size(); ++i) CheckFault(faults[i], 6, 0, at[i]);
}

// Regression guard for the translation scheme: code translated while TS was
// clear, reached again by a chained branch or through the indirect-branch
// table after TS is set, must not run natively.
TEST_CASE("setting TS reaches code already translated without it, by any branch") {
  for (const TranslatorOptions& settings : kSettings) {
    CAPTURE(settings.max_unit_instructions);
    CAPTURE(settings.chaining);
    std::uint32_t fpu_at = 0;
    SystemGuest guest(
        [&](x86::Assembler& a) {
          asmjit::Label function = a.newLabel(), loop = a.newLabel(), done = a.newLabel();
          a.mov(x86::dword_ptr_abs(kAction), kClts);
          a.xor_(x86::esi, x86::esi);
          a.lea(x86::ebx, x86::ptr(function));
          a.bind(loop);
          a.call(x86::ebx);  // indirect: the inline lookup table
          a.inc(x86::esi);
          a.cmp(x86::esi, 3);
          a.je(done);
          SetCr0Bits(a, kTs);
          a.jmp(loop);
          a.bind(function);
          fpu_at = Here(a);
          a.fld1();
          a.fstp(x86::st0);
          a.ret();
          a.bind(done);
          // Once more through a direct call, after a clean run.
          a.call(function);
          SetCr0Bits(a, kTs);
          a.call(function);
          Halt(a);
        },
        settings);
    guest.Run();
    const std::vector<Fault> faults = guest.Faults();
    REQUIRE(faults.size() == 3);
    for (const Fault& fault : faults) CheckFault(fault, 7, 0, fpu_at);
  }
}

TEST_CASE("lmsw loads MP, EM and TS but cannot clear PE; clts and lmsw count as CR callouts") {
  std::uint32_t at = 0;
  SystemGuest guest([&](x86::Assembler& a) {
    a.mov(x86::dword_ptr_abs(kAction), kClts);
    a.mov(x86::eax, 0xFFF0 | kTs | kMp);  // PE clear, bits above 3 ignored
    a.lmsw(x86::ax);
    a.smsw(x86::esi);
    at = Here(a);
    a.fwait();
    a.smsw(x86::edi);
    Halt(a);
  });
  const Registers r = guest.Run();
  CHECK(r.esi == (0x11 | kTs | kMp));
  CHECK(r.edi == (0x11 | kMp));
  const std::vector<Fault> faults = guest.Faults();
  REQUIRE(faults.size() == 1);
  CheckFault(faults[0], 7, 0, at);
  const Stats stats = guest.machine().GetStats();
  CHECK(stats.callouts[static_cast<std::size_t>(CalloutKind::kFpuUnavailable)] == 1);
  CHECK(stats.callouts[static_cast<std::size_t>(CalloutKind::kControlRegister)] >= 4);
}

TEST_CASE(
    "debug registers keep what is written, with their fixed bits; DR4/5 alias DR6/7 until CR4.DE") {
  std::uint32_t at = 0;
  SystemGuest guest([&](x86::Assembler& a) {
    a.mov(x86::esi, x86::dr7);  // reset value
    a.mov(x86::dword_ptr_abs(kOut), x86::esi);
    a.mov(x86::eax, 0x12345678);
    a.mov(x86::dr0, x86::eax);
    a.mov(x86::dr3, x86::eax);
    a.mov(x86::eax, 0);
    a.mov(x86::dr6, x86::eax);
    a.mov(x86::eax, 0xFFFFFFFF);
    a.mov(x86::dr7, x86::eax);
    a.mov(x86::ebx, x86::dr0);
    a.mov(x86::ecx, x86::dr3);
    a.mov(x86::edx, x86::dr4);  // DR6
    a.mov(x86::edi, x86::dr5);  // DR7
    a.mov(x86::eax, x86::cr4);
    a.or_(x86::eax, 0x8);  // DE
    a.mov(x86::cr4, x86::eax);
    at = ExpectSkip(a, [&] { a.mov(x86::eax, x86::dr4); });
    Halt(a);
  });
  const Registers r = guest.Run();
  CHECK(guest.Read32(kOut) == 0x400);
  CHECK(r.ebx == 0x12345678);
  CHECK(r.ecx == 0x12345678);
  CHECK(r.edx == 0xFFFF0FF0);
  CHECK(r.edi == (0xFFFFFFFFu & ~0x0000D800u));
  const std::vector<Fault> faults = guest.Faults();
  REQUIRE(faults.size() == 1);
  CheckFault(faults[0], 6, 0, at);
}

}  // namespace
}  // namespace bt
