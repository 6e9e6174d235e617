// Hardware task switches between 32-bit TSSs (SDM Vol. 3A chapter 7; Vol. 2
// JMP, CALL, IRET, INT n): far call and jmp to a TSS or through a task gate,
// iret with NT back to the task in the back link, exceptions and int n
// through task gates in the IDT (a double fault among them), the busy bits,
// NT and the back link, CR0.TS and CR3, the faults before the commit point
// (in the old task) and after it (in the new one).
// The guest starts as task A (TR = kTssASelector); the other tasks' TSSs are
// written by the test (SetTask), their code lies in the guest's body.
#include "tests/support/system_guest.h"

#include <bt/machine.h>

#include <doctest/doctest.h>

#include <functional>
#include <vector>

namespace bt {
namespace {

namespace x86 = asmjit::x86;
using testing::CheckFault;
using testing::Descriptor;
using testing::EmitFar;
using testing::ExpectSkip;
using testing::Gate;
using testing::Halt;
using testing::Here;
using testing::kBig;
using testing::kOut;
using testing::kSettings;
using Fault = testing::LoggedFault;

constexpr std::uint32_t kTssA = 0x302000, kTssB = 0x302100, kTssC = 0x302200, kShortTss = 0x302300,
                        kTss16 = 0x302400, kLdt = 0x303000;
constexpr std::uint32_t kStackB = 0x370000, kStackC = 0x360000, kStackA0 = 0x378000,
                        kStackA3 = 0x368000;
// Fields of a 32-bit TSS (SDM Vol. 3A figure 7-2).
constexpr std::uint32_t kLink = 0, kEsp0 = 4, kSs0 = 8, kCr3 = 0x1C, kEip = 0x20, kEflags = 0x24,
                        kEax = 0x28, kEbx = 0x34, kEsp = 0x38, kEs = 0x48, kCs = 0x4C, kSs = 0x50,
                        kDs = 0x54, kLdtField = 0x60;
constexpr std::uint32_t kNt = 1u << 14, kCf = 1, kVm = 1u << 17, kTs = 1u << 3;
constexpr std::uint8_t kAvailable = 0x89, kBusy = 0x8B;

enum Selector : std::uint16_t {
  kCode0 = 0x08,
  kData0 = 0x10,
  kTssASelector = 0x18,
  kTssBSelector = 0x20,
  kTssCSelector = 0x28,
  kShortTssSelector = 0x30,
  kAbsentTss = 0x38,
  kGateToB = 0x40,
  kAbsentGate = 0x48,
  kLdtSelector = 0x50,
  kCode3 = 0x5B,
  kData3 = 0x63,
  kTss16Selector = 0x68,
  kAbsentData = 0x70,
  // In the LDT.
  kLdtData = 0x04,
  kLdtAbsentData = 0x0C,
  kPastLdt = 0x14,
};

constexpr std::uint64_t kGdtEntries[] = {
    0,
    testing::kFlatCode0,                         // 0x08
    testing::kFlatData0,                         // 0x10
    Descriptor(kTssA, 0x67, kAvailable, 0),      // 0x18 task A
    Descriptor(kTssB, 0x67, kAvailable, 0),      // 0x20 task B
    Descriptor(kTssC, 0x67, kAvailable, 0),      // 0x28 task C
    Descriptor(kShortTss, 0x50, kAvailable, 0),  // 0x30 below the 0x67 minimum
    Descriptor(kTssB, 0x67, 0x09, 0),            // 0x38 not present
    Gate(0, kTssBSelector, 0x85),                // 0x40 task gate to B
    Gate(0, kTssBSelector, 0x05),                // 0x48 task gate to B, not present
    Descriptor(kLdt, 0x0F, 0x82, 0),             // 0x50 LDT, 2 entries
    testing::kFlatCode3,                         // 0x58
    testing::kFlatData3,                         // 0x60
    Descriptor(kTss16, 0x2B, 0x81, 0),           // 0x68 16-bit TSS
    Descriptor(0, 0xFFFFF, 0x13, kBig),          // 0x70 data, not present
};
// Not accessed yet: a load sets the bit.
constexpr std::uint64_t kLdtEntries[] = {
    Descriptor(0, 0xFFFFF, 0x92, kBig),  // 0x04 data, DPL 0
    Descriptor(0, 0xFFFFF, 0x12, kBig),  // 0x0C data, not present
};

// What SetTask writes into a TSS: EAX-EDI but ESP become seed + the
// register's number, ES and DS both `ds`, FS and GS null.
struct Task {
  std::uint32_t eip = 0, esp = 0, eflags = 0x2, cr3 = 0, seed = 0;
  std::uint16_t cs = kCode0, ss = kData0, ds = kData0, ldt = 0, link = 0;
};

class TaskGuest : public testing::SystemGuest {
 public:
  explicit TaskGuest(const std::function<void(x86::Assembler&)>& body,
                     TranslatorOptions translator = {})
      : testing::SystemGuest(
            kGdtEntries,
            [&](x86::Assembler& a) {
              a.mov(x86::eax, kTssASelector);
              a.ltr(x86::ax);
              body(a);
            },
            translator) {
    REQUIRE(machine().WritePhysical(kLdt, kLdtEntries, sizeof(kLdtEntries)));
  }

  void SetTask(std::uint32_t tss, const Task& task) {
    std::uint32_t words[26] = {};
    words[kLink / 4] = task.link;
    words[kCr3 / 4] = task.cr3;
    words[kEip / 4] = task.eip;
    words[kEflags / 4] = task.eflags;
    for (std::uint32_t r = 0; r < 8; ++r) words[kEax / 4 + r] = task.seed + r;
    words[kEsp / 4] = task.esp;
    words[kEs / 4] = task.ds;
    words[kCs / 4] = task.cs;
    words[kSs / 4] = task.ss;
    words[kDs / 4] = task.ds;
    words[kLdtField / 4] = task.ldt;
    REQUIRE(machine().WritePhysical(tss, words, sizeof(words)));
  }

  // The access byte of the GDT descriptor `selector` names.
  std::uint8_t Access(std::uint16_t selector) {
    return static_cast<std::uint8_t>(Read64(testing::kGdt + (selector & ~7u)) >> 40);
  }
};

void StoreFlags(x86::Assembler& a, std::uint32_t address) {
  a.pushfd();
  a.pop(x86::dword_ptr_abs(address));
}

void SetNt(x86::Assembler& a) {
  a.pushfd();
  a.or_(x86::dword_ptr(x86::esp), kNt);
  a.popfd();
}

// Stores the access bytes of tasks A and B at `address` and `address + 1`.
void StoreBusyBits(x86::Assembler& a, std::uint32_t address) {
  a.mov(x86::al, x86::byte_ptr_abs(testing::kGdt + kTssASelector + 5));
  a.mov(x86::byte_ptr_abs(address), x86::al);
  a.mov(x86::al, x86::byte_ptr_abs(testing::kGdt + kTssBSelector + 5));
  a.mov(x86::byte_ptr_abs(address + 1), x86::al);
}

TEST_CASE("far call to a TSS saves the caller in its TSS, links back and nests; iret returns") {
  for (const TranslatorOptions& settings : kSettings) {
    std::uint32_t task_b = 0, after_call = 0, after_iret = 0;
    TaskGuest guest(
        [&](x86::Assembler& a) {
          a.mov(x86::eax, 0x1111);
          a.mov(x86::ebx, 0x2222);
          a.mov(x86::ecx, 0x3333);
          a.mov(x86::edx, 0x4444);
          a.mov(x86::ebp, 0x5555);
          a.mov(x86::esi, 0x6666);
          a.mov(x86::edi, 0x7777);
          a.stc();
          EmitFar(a, true, kTssBSelector);
          after_call = Here(a);
          StoreFlags(a, kOut + 0x40);
          a.str(x86::word_ptr_abs(kOut + 0x44));
          a.mov(x86::dword_ptr_abs(kOut + 0x48), x86::eax);
          a.mov(x86::eax, x86::cr0);
          a.mov(x86::dword_ptr_abs(kOut + 0x4C), x86::eax);
          a.mov(x86::eax, x86::cr3);
          a.mov(x86::dword_ptr_abs(kOut + 0x50), x86::eax);
          a.mov(x86::eax, x86::dword_ptr_abs(kOut + 0x48));
          Halt(a);

          task_b = Here(a);
          StoreFlags(a, kOut);
          a.mov(x86::dword_ptr_abs(kOut + 4), x86::eax);
          a.mov(x86::dword_ptr_abs(kOut + 8), x86::ebx);
          a.mov(x86::dword_ptr_abs(kOut + 0xC), x86::esp);
          a.str(x86::word_ptr_abs(kOut + 0x10));
          a.sldt(x86::word_ptr_abs(kOut + 0x14));
          a.mov(x86::word_ptr_abs(kOut + 0x18), x86::ds);
          a.mov(x86::eax, x86::cr0);
          a.mov(x86::dword_ptr_abs(kOut + 0x1C), x86::eax);
          StoreBusyBits(a, kOut + 0x20);
          a.clts();
          a.mov(x86::eax, 0xB0B0);  // does not reach task A, whose EAX its TSS holds
          a.iretd();
          after_iret = Here(a);
          Halt(a);
        },
        settings);
    // DS from the LDT, which the TSS names; CR3 is left alone without paging.
    guest.SetTask(kTssB, {.eip = task_b,
                          .esp = kStackB,
                          .cr3 = 0x12345000,
                          .seed = 0xB000,
                          .ds = kLdtData,
                          .ldt = kLdtSelector});
    const Registers r = guest.Run();
    CHECK(guest.Faults().empty());
    // In task B: its TSS's registers, NT set, CR0.TS set, both tasks busy.
    CHECK(guest.Read32(kOut) == (0x2 | kNt));
    CHECK(guest.Read32(kOut + 4) == 0xB000);
    CHECK(guest.Read32(kOut + 8) == 0xB003);
    CHECK(guest.Read32(kOut + 0xC) == kStackB);
    CHECK((guest.Read32(kOut + 0x10) & 0xFFFF) == kTssBSelector);
    CHECK((guest.Read32(kOut + 0x14) & 0xFFFF) == kLdtSelector);
    CHECK((guest.Read32(kOut + 0x18) & 0xFFFF) == kLdtData);
    CHECK((guest.Read32(kOut + 0x1C) & kTs) != 0);
    CHECK((guest.Read32(kOut + 0x20) & 0xFFFF) == (kBusy << 8 | kBusy));
    CHECK((guest.Read32(kTssB + kLink) & 0xFFFF) == kTssASelector);
    // Task A's TSS holds it as it was at the call.
    CHECK(guest.Read32(kTssA + kEip) == after_call);
    CHECK((guest.Read32(kTssA + kEflags) & (kCf | kNt)) == kCf);
    CHECK(guest.Read32(kTssA + kEbx) == 0x2222);
    CHECK(guest.Read32(kTssA + kEsp) == testing::kStackTop);
    CHECK(guest.Read32(kTssA + kCs) == kCode0);
    CHECK(guest.Read32(kTssA + kSs) == kData0);
    // The iret saved task B (NT cleared in the image) and made it available.
    CHECK(guest.Read32(kTssB + kEip) == after_iret);
    CHECK(guest.Read32(kTssB + kEflags) == 0x2);
    CHECK(guest.Read32(kTssB + kEax) == 0xB0B0);
    CHECK(guest.Access(kTssBSelector) == kAvailable);
    CHECK(guest.Access(kTssASelector) == kBusy);
    CHECK((guest.Read64(kLdt) >> 40 & 1) != 0);  // the LDT data descriptor: accessed
    // Back in task A: its registers and flags, TS set again, CR3 untouched.
    CHECK(r.eax == 0x1111);
    CHECK(r.ebx == 0x2222);
    CHECK(r.ecx == 0x3333);
    CHECK(r.edx == 0x4444);
    CHECK(r.ebp == 0x5555);
    CHECK(r.esi == 0x6666);
    CHECK(r.edi == 0x7777);
    CHECK(r.esp == testing::kStackTop);
    CHECK((guest.Read32(kOut + 0x40) & (kCf | kNt)) == kCf);
    CHECK((guest.Read32(kOut + 0x44) & 0xFFFF) == kTssASelector);
    CHECK((guest.Read32(kOut + 0x4C) & kTs) != 0);
    CHECK(guest.Read32(kOut + 0x50) == 0);
  }
}

TEST_CASE("far jmp to a TSS frees the old task, writes no link, keeps NT as the TSSs hold it") {
  std::uint32_t task_b = 0, after_jmp = 0;
  TaskGuest guest([&](x86::Assembler& a) {
    a.mov(x86::ebx, 0x5555);
    SetNt(a);  // kept in task A's image by a jmp
    EmitFar(a, false, kTssBSelector);
    after_jmp = Here(a);
    Halt(a);

    task_b = Here(a);
    StoreFlags(a, kOut);
    StoreBusyBits(a, kOut + 4);
    EmitFar(a, false, kTssASelector);  // task A is available again
  });
  guest.SetTask(kTssB, {.eip = task_b, .esp = kStackB, .eflags = 0x2 | kNt, .link = 0xABCD});
  const Registers r = guest.Run();
  CHECK(guest.Faults().empty());
  CHECK(guest.Read32(kOut) == (0x2 | kNt));  // as task B's TSS has it
  CHECK((guest.Read32(kOut + 4) & 0xFFFF) == (kBusy << 8 | kAvailable));
  CHECK((guest.Read32(kTssB + kLink) & 0xFFFF) == 0xABCD);
  CHECK((guest.Read32(kTssA + kEflags) & kNt) != 0);
  CHECK((guest.Read32(kTssB + kEflags) & kNt) != 0);
  CHECK(guest.Read32(kTssA + kEip) == after_jmp);
  CHECK(guest.Access(kTssASelector) == kBusy);
  CHECK(guest.Access(kTssBSelector) == kAvailable);
  CHECK(r.ebx == 0x5555);
  CHECK((r.eflags & kNt) != 0);
}

TEST_CASE("far call through a task gate switches to the gate's TSS; iret returns") {
  std::uint32_t task_b = 0;
  TaskGuest guest([&](x86::Assembler& a) {
    EmitFar(a, true, kGateToB);
    a.mov(x86::dword_ptr_abs(kOut + 4), 1);
    Halt(a);

    task_b = Here(a);
    a.str(x86::word_ptr_abs(kOut));
    a.iretd();
  });
  guest.SetTask(kTssB, {.eip = task_b, .esp = kStackB});
  guest.Run();
  CHECK(guest.Faults().empty());
  CHECK((guest.Read32(kOut) & 0xFFFF) == kTssBSelector);
  CHECK((guest.Read32(kTssB + kLink) & 0xFFFF) == kTssASelector);
  CHECK(guest.Read32(kOut + 4) == 1);
}

TEST_CASE(
    "task switches that fail before the commit point fault in the old task, changing nothing") {
  constexpr std::uint8_t kBusyTaskVector = 0x40, kLdtTaskVector = 0x41;
  std::vector<std::uint32_t> at;
  TaskGuest guest([&](x86::Assembler& a) {
    auto far = [&](bool call, std::uint16_t selector) {
      at.push_back(ExpectSkip(a, [&] { EmitFar(a, call, selector); }));
    };
    far(true, kAbsentTss);         // #NP(TSS)
    far(true, kAbsentGate);        // #NP(gate)
    far(true, kShortTssSelector);  // #TS(TSS): limit below 0x67
    far(false, kTssASelector);     // #GP(TSS): busy
    far(true, kTssBSelector | 3);  // #GP(TSS): RPL 3 above its DPL 0
    far(true, kGateToB | 3);       // #GP(gate)
    far(true, kLdtSelector);       // #GP: not a TSS, a gate or code
    // Task gates in the IDT to a busy TSS and to one with TI set:
    // #GP(TSS), without EXT for int n.
    for (const std::uint8_t vector : {kBusyTaskVector, kLdtTaskVector}) {
      at.push_back(ExpectSkip(a, [&] { a.int_(vector); }));
    }
    // iret with NT to a back link that is not a busy TSS: #TS(link).
    const std::uint16_t links[] = {kTssBSelector, 0, kLdtData};
    for (const std::uint16_t link : links) {
      a.mov(x86::dword_ptr_abs(kTssA + kLink), link);
      SetNt(a);
      at.push_back(ExpectSkip(a, [&] { a.iretd(); }));
      a.push(0x2);
      a.popfd();
    }
    a.str(x86::ebx);
    Halt(a);
  });
  guest.SetTask(kTssB, {.eip = 0x12345678, .esp = kStackB});
  guest.SetGate(kBusyTaskVector, Gate(0, kTssASelector, 0x85));
  guest.SetGate(kLdtTaskVector, Gate(0, kTssBSelector | 4, 0x85));
  const Registers r = guest.Run();
  const std::vector<Fault> faults = guest.Faults();
  REQUIRE(faults.size() == 12);
  CheckFault(faults[0], 11, kAbsentTss, at[0]);
  CheckFault(faults[1], 11, kAbsentGate, at[1]);
  CheckFault(faults[2], 10, kShortTssSelector, at[2]);
  CheckFault(faults[3], 13, kTssASelector, at[3]);
  CheckFault(faults[4], 13, kTssBSelector, at[4]);
  CheckFault(faults[5], 13, kGateToB, at[5]);
  CheckFault(faults[6], 13, kLdtSelector, at[6]);
  CheckFault(faults[7], 13, kTssASelector, at[7]);
  CheckFault(faults[8], 13, kTssBSelector | 4, at[8]);
  CheckFault(faults[9], 10, kTssBSelector, at[9]);
  CheckFault(faults[10], 10, 0, at[10]);
  CheckFault(faults[11], 10, kLdtData, at[11]);
  CHECK(r.ebx == kTssASelector);
  CHECK(guest.Access(kTssASelector) == kBusy);
  CHECK(guest.Access(kTssBSelector) == kAvailable);
  CHECK(guest.Read32(kTssB + kEip) == 0x12345678);
}

// A task B whose TSS has `task` changed from a good one faults as it starts.
struct LateFault {
  const char* what;
  Task task;
  std::uint32_t vector, error_code;
};

TEST_CASE("task switches that fail after the commit point fault in the new task at its start") {
  const LateFault cases[] = {
      {"LDT not an LDT", {.ldt = kData0}, 10, kData0},
      {"LDT with TI set", {.ldt = kLdtData}, 10, kLdtData & ~3u},
      {"SS a code segment", {.ss = kCode0}, 10, kCode0},
      {"SS null", {.ss = 0}, 10, 0},
      {"SS not present", {.ss = kAbsentData}, 12, kAbsentData},
      {"DS not present", {.ds = kAbsentData}, 11, kAbsentData},
      {"DS not present, in the LDT",
       {.ds = kLdtAbsentData, .ldt = kLdtSelector},
       11,
       kLdtAbsentData},
      {"DS past the LDT", {.ds = kPastLdt, .ldt = kLdtSelector}, 10, kPastLdt},
  };
  for (const LateFault& late : cases) {
    CAPTURE(late.what);
    std::uint32_t task_b = 0, after_jmp = 0;
    asmjit::Label resume;
    TaskGuest guest([&](x86::Assembler& a) {
      resume = a.newLabel();
      a.mov(x86::dword_ptr_abs(testing::kAction), testing::kSkip);
      a.lea(x86::eax, x86::ptr(resume));
      a.mov(x86::dword_ptr_abs(testing::kResume), x86::eax);
      EmitFar(a, false, kTssBSelector);
      after_jmp = Here(a);
      Halt(a);

      task_b = Here(a);
      Halt(a);
      // The handler returns here, in task B; its data segments are fixed.
      a.bind(resume);
      a.str(x86::word_ptr_abs(kOut));
      a.mov(x86::eax, kData0);
      a.mov(x86::ss, x86::ax);
      a.mov(x86::ds, x86::ax);
      a.mov(x86::es, x86::ax);
      Halt(a);
    });
    Task task = late.task;
    task.eip = task_b;
    task.esp = kStackB;
    guest.SetTask(kTssB, task);
    guest.Run();
    const std::vector<Fault> faults = guest.Faults();
    REQUIRE(faults.size() == 1);
    CheckFault(faults[0], late.vector, late.error_code, task_b);
    CHECK((guest.Read32(kOut) & 0xFFFF) == kTssBSelector);
    CHECK(guest.Read32(kTssA + kEip) == after_jmp);
    CHECK(guest.Access(kTssASelector) == kAvailable);
    CHECK(guest.Access(kTssBSelector) == kBusy);
  }
}

TEST_CASE("with paging on, a task switch loads CR3 from the new TSS and drops old mappings") {
  constexpr std::uint32_t kDirectoryA = 0x310000, kDirectoryB = 0x311000;
  constexpr std::uint32_t kProbe = 0x400000;  // mapped to 0x800000 in task B
  std::uint32_t task_b = 0;
  TaskGuest guest([&](x86::Assembler& a) {
    testing::EmitEnablePaging(a, kDirectoryA);
    a.mov(x86::eax, x86::dword_ptr_abs(kProbe));
    a.mov(x86::dword_ptr_abs(kOut), x86::eax);
    // The processor never saves CR3: the kernel keeps it in the TSS.
    a.mov(x86::dword_ptr_abs(kTssA + kCr3), kDirectoryA);
    EmitFar(a, true, kTssBSelector);
    a.mov(x86::eax, x86::dword_ptr_abs(kProbe));
    a.mov(x86::dword_ptr_abs(kOut + 8), x86::eax);
    a.mov(x86::eax, x86::cr3);
    a.mov(x86::dword_ptr_abs(kOut + 0xC), x86::eax);
    Halt(a);

    task_b = Here(a);
    a.mov(x86::eax, x86::dword_ptr_abs(kProbe));
    a.mov(x86::dword_ptr_abs(kOut + 4), x86::eax);
    a.mov(x86::eax, x86::cr3);
    a.mov(x86::dword_ptr_abs(kOut + 0x10), x86::eax);
    a.iretd();
  });
  // 4 MiB pages mapping the 16 MiB of RAM one to one, but for task B's
  // second one.
  for (std::uint32_t i = 0; i < 4; ++i) {
    guest.Write32(kDirectoryA + 4 * i, i << 22 | 0x83);
    guest.Write32(kDirectoryB + 4 * i, (i == 1 ? 2 : i) << 22 | 0x83);
  }
  guest.Write32(kProbe, 0x11111111);
  guest.Write32(0x800000, 0x22222222);
  guest.SetTask(kTssB, {.eip = task_b, .esp = kStackB, .cr3 = kDirectoryB});
  guest.Run();
  CHECK(guest.Faults().empty());
  CHECK(guest.Read32(kOut) == 0x11111111);
  CHECK(guest.Read32(kOut + 4) == 0x22222222);
  CHECK(guest.Read32(kOut + 8) == 0x11111111);
  CHECK(guest.Read32(kOut + 0xC) == kDirectoryA);
  CHECK(guest.Read32(kOut + 0x10) == kDirectoryB);
}

TEST_CASE("a double fault through a task gate: error code 0 on the new stack, iret back") {
  for (const TranslatorOptions& settings : kSettings) {
    std::uint32_t df_task = 0;
    std::vector<std::uint32_t> faulting, resumes;
    TaskGuest guest(
        [&](x86::Assembler& a) {
          a.mov(x86::ebx, 0x7777);
          // Twice: task C must be available again after its iret.
          for (int i = 0; i < 2; ++i) {
            asmjit::Label after = a.newLabel();
            a.lea(x86::eax, x86::ptr(after));
            a.mov(x86::dword_ptr_abs(testing::kResume), x86::eax);
            a.mov(x86::eax, 0xFFF8);  // past the GDT: #GP, whose gate is not present
            faulting.push_back(Here(a));
            a.mov(x86::ds, x86::ax);
            a.bind(after);
          }
          a.mov(x86::eax, kData0);
          a.mov(x86::ds, x86::ax);
          Halt(a);

          asmjit::Label start = a.newLabel();
          df_task = Here(a);
          a.bind(start);
          a.pop(x86::dword_ptr_abs(kOut));  // the error code
          a.mov(x86::dword_ptr_abs(kOut + 4), x86::esp);
          StoreFlags(a, kOut + 8);
          a.mov(x86::eax, x86::dword_ptr_abs(kTssC + kLink));
          a.mov(x86::dword_ptr_abs(kOut + 0xC), x86::eax);
          a.str(x86::word_ptr_abs(kOut + 0x10));
          a.mov(x86::eax, x86::dword_ptr_abs(kTssA + kEip));
          a.mov(x86::ecx, x86::dword_ptr_abs(kOut + 0x14));
          a.shl(x86::ecx, 2);
          a.mov(x86::dword_ptr(x86::ecx, kOut + 0x18), x86::eax);
          a.inc(x86::dword_ptr_abs(kOut + 0x14));
          // The faulting instruction is skipped by changing the saved EIP.
          a.mov(x86::eax, x86::dword_ptr_abs(testing::kResume));
          a.mov(x86::dword_ptr_abs(kTssA + kEip), x86::eax);
          a.iretd();
          a.jmp(start);  // where task C resumes at the next double fault
        },
        settings);
    guest.SetGate(8, Gate(0, kTssCSelector, 0x85));
    guest.SetGate(13, Gate(0, kCode0, 0x0E));  // not present
    guest.SetTask(kTssC, {.eip = df_task, .esp = kStackC});
    const Registers r = guest.Run();
    CHECK(guest.Faults().empty());
    CHECK(guest.Read32(kOut) == 0);
    CHECK(guest.Read32(kOut + 4) == kStackC);
    CHECK((guest.Read32(kOut + 8) & kNt) != 0);
    CHECK((guest.Read32(kOut + 0xC) & 0xFFFF) == kTssASelector);
    CHECK((guest.Read32(kOut + 0x10) & 0xFFFF) == kTssCSelector);
    CHECK(guest.Read32(kOut + 0x14) == 2);
    CHECK(guest.Read32(kOut + 0x18) == faulting[0]);
    CHECK(guest.Read32(kOut + 0x1C) == faulting[1]);
    CHECK(guest.Access(kTssCSelector) == kAvailable);
    CHECK(guest.Access(kTssASelector) == kBusy);
    CHECK(r.ebx == 0x7777);
  }
}

TEST_CASE("an exception with an error code through a task gate pushes it on the new task's stack") {
  std::uint32_t task_b = 0, faulting = 0;
  TaskGuest guest([&](x86::Assembler& a) {
    asmjit::Label after = a.newLabel();
    a.mov(x86::eax, 0xFFF8);
    faulting = Here(a);
    a.mov(x86::ds, x86::ax);
    a.bind(after);
    a.mov(x86::eax, kData0);
    a.mov(x86::ds, x86::ax);
    Halt(a);

    task_b = Here(a);
    a.pop(x86::dword_ptr_abs(kOut));
    a.mov(x86::eax, x86::dword_ptr_abs(kTssA + kEip));
    a.mov(x86::dword_ptr_abs(kOut + 4), x86::eax);
    a.lea(x86::eax, x86::ptr(after));
    a.mov(x86::dword_ptr_abs(kTssA + kEip), x86::eax);
    a.iretd();
  });
  guest.SetGate(13, Gate(0, kTssBSelector, 0x85));
  guest.SetTask(kTssB, {.eip = task_b, .esp = kStackB});
  guest.Run();
  CHECK(guest.Faults().empty());
  CHECK(guest.Read32(kOut) == 0xFFF8);
  CHECK(guest.Read32(kOut + 4) == faulting);
}

TEST_CASE("int n through a task gate: no error code; from ring 3 the gate's DPL decides") {
  constexpr std::uint8_t kTaskVector = 0x40, kPrivateTaskVector = 0x41, kFinishVector = 0x42;
  // Paging with a supervisor page, which task B reads from the CPL its CS
  // gives it when ring 3 switched to it.
  constexpr std::uint32_t kDirectory = 0x310000, kSupervisorPage = 0x400000;
  std::uint32_t task_b = 0, finish = 0, denied = 0;
  TaskGuest guest([&](x86::Assembler& a) {
    asmjit::Label user = a.newLabel();
    testing::EmitEnablePaging(a, kDirectory);
    a.mov(x86::eax, kData3);
    a.mov(x86::ds, x86::ax);
    a.mov(x86::es, x86::ax);
    a.int_(kTaskVector);  // from ring 0
    a.push(kData3);
    a.push(kStackA3);
    a.push(0x2);
    a.push(kCode3);
    a.lea(x86::eax, x86::ptr(user));
    a.push(x86::eax);
    a.iretd();
    finish = Here(a);
    Halt(a);

    a.bind(user);
    denied = ExpectSkip(a, [&] { a.int_(kPrivateTaskVector); });
    a.int_(kTaskVector);
    a.mov(x86::word_ptr_abs(kOut + 0x10), x86::cs);
    a.int_(kFinishVector);

    asmjit::Label start = a.newLabel();
    task_b = Here(a);
    a.bind(start);
    a.mov(x86::ecx, x86::dword_ptr_abs(kOut + 8));
    a.mov(x86::dword_ptr(x86::ecx, kOut), x86::esp);
    a.add(x86::dword_ptr_abs(kOut + 8), 4);
    a.mov(x86::eax, x86::dword_ptr_abs(kSupervisorPage));
    a.add(x86::dword_ptr_abs(kOut + 0x14), x86::eax);
    a.iretd();
    a.jmp(start);
  });
  // 4 MiB pages mapping RAM one to one, all for user access but the second.
  for (std::uint32_t i = 0; i < 4; ++i) {
    guest.Write32(kDirectory + 4 * i, i << 22 | (i == 1 ? 0x83 : 0x87));
  }
  guest.Write32(kSupervisorPage, 0x100);
  guest.SetGate(kTaskVector, Gate(0, kTssBSelector, 0xE5));
  guest.SetGate(kPrivateTaskVector, Gate(0, kTssBSelector, 0x85));
  guest.SetGate(kFinishVector, Gate(finish, kCode0, 0xEE));
  guest.SetTask(kTssB, {.eip = task_b, .esp = kStackB, .cr3 = kDirectory});
  guest.Write32(kTssA + kCr3, kDirectory);
  guest.Write32(kTssA + kEsp0, kStackA0);
  guest.Write32(kTssA + kSs0, kData0);
  guest.Run();
  const std::vector<Fault> faults = guest.Faults();
  REQUIRE(faults.size() == 1);
  CheckFault(faults[0], 13, kPrivateTaskVector * 8 + 2, denied, kCode3);
  CHECK(guest.Read32(kOut) == kStackB);
  CHECK(guest.Read32(kOut + 4) == kStackB);
  CHECK(guest.Read32(kOut + 8) == 8);
  CHECK((guest.Read32(kOut + 0x10) & 0xFFFF) == kCode3);
  CHECK(guest.Read32(kOut + 0x14) == 0x200);
  CHECK(guest.Read32(kTssA + kCs) == kCode3);  // saved by the int from ring 3
  CHECK(guest.Read32(kTssA + kSs) == kData3);
}

TEST_CASE("a switch to a 16-bit TSS or into virtual-8086 mode stops the run: not supported yet") {
  for (const bool vm : {false, true}) {
    CAPTURE(vm);
    std::uint32_t at = 0;
    TaskGuest guest([&](x86::Assembler& a) {
      at = Here(a);
      EmitFar(a, false, vm ? kTssBSelector : kTss16Selector);
    });
    guest.SetTask(kTssB, {.eip = 0x1000, .esp = kStackB, .eflags = 0x2 | kVm});
    const StopInfo stop = guest.machine().Run();
    CHECK(stop.reason == StopReason::kUnsupportedInstruction);
    CHECK(stop.eip == at);
    CHECK(stop.message.find(vm ? "virtual-8086" : "16-bit TSS") != std::string::npos);
  }
}

}  // namespace
}  // namespace bt
