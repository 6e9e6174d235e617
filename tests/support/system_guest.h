// Protected-mode guests for unit tests of system instructions and privilege
// levels: a GDT the test gives, ring-0 handlers for exceptions 0-19 that log
// each exception and then resume where the guest said (or fix CR0 and
// restart the instruction), and helpers to run them and read what they
// logged.
#pragma once

#include "tests/support/assembled_guest.h"

#include <bt/machine.h>

#include <doctest/doctest.h>

#include <chrono>
#include <functional>
#include <memory>
#include <span>
#include <vector>

namespace bt::testing {

inline constexpr std::uint32_t kGdt = 0x300000, kGdtr = 0x300100, kIdtr = 0x300110;
inline constexpr std::uint32_t kIdt = 0x301000;
// The exception log: a count, what the handler does, where it resumes, then
// one LoggedFault an exception.
inline constexpr std::uint32_t kLogCount = 0x304000, kAction = 0x304004, kResume = 0x304008;
inline constexpr std::uint32_t kLogEntries = 0x304010;
inline constexpr std::uint32_t kOut = 0x305000;  // results the guest stores
inline constexpr std::uint32_t kStackTop = 0x380000;
inline constexpr std::uint16_t kCodeSelector = 0x08;  // ring-0 code in every GDT given

// What the handler does after logging: resume at [kResume], or clear CR0.TS
// (clts) or CR0.EM and CR0.TS (mov to CR0) and restart the instruction.
enum Action : std::uint32_t { kSkip, kClts, kClearEmTs };

// G and D/B set: 4 GiB, 32-bit.
inline constexpr std::uint8_t kBig = 0xC0, kByteGranular32 = 0x40;

constexpr std::uint64_t Descriptor(std::uint32_t base, std::uint32_t limit, std::uint8_t access,
                                   std::uint8_t flags) {
  return (limit & 0xFFFFull) | std::uint64_t{base & 0xFFFFFF} << 16 | std::uint64_t{access} << 40 |
         std::uint64_t{(limit >> 16) & 0xF} << 48 | std::uint64_t{flags & 0xF0u} << 48 |
         std::uint64_t{base >> 24} << 56;
}

// Flat 32-bit code (execute/read) and data (read/write) segments of DPL 0
// and 3.
inline constexpr std::uint64_t kFlatCode0 = Descriptor(0, 0xFFFFF, 0x9B, kBig),
                               kFlatData0 = Descriptor(0, 0xFFFFF, 0x93, kBig),
                               kFlatCode3 = Descriptor(0, 0xFFFFF, 0xFB, kBig),
                               kFlatData3 = Descriptor(0, 0xFFFFF, 0xF3, kBig);

constexpr std::uint64_t Gate(std::uint32_t offset, std::uint16_t selector, std::uint8_t access) {
  return (offset & 0xFFFFu) | std::uint64_t{selector} << 16 | std::uint64_t{access} << 40 |
         std::uint64_t{offset >> 16} << 48;
}

// `size` bytes at `address` through SS: the harness's own bookkeeping does not
// depend on DS, which a return to an outer ring may have nulled (SDM Vol. 2A
// IRET) and tests may load with other segments; SS is flat in every test's
// ring 0 and ring 3.
inline asmjit::x86::Mem Flat(std::uint32_t address, unsigned size = 4) {
  asmjit::x86::Mem mem = asmjit::x86::ptr_abs(address, size);
  mem.setSegment(asmjit::x86::ss);
  return mem;
}

// What the handler found on its stack; ESP and SS only for an exception from
// an outer ring.
struct LoggedFault {
  std::uint32_t vector, error_code, eip, cs, eflags, esp, ss, unused;
};

// A guest that loads `gdt` and an IDT with the logging handlers, sets ESP to
// kStackTop and runs `body` in ring 0 with the code selector the loader
// left.
class SystemGuest {
 public:
  SystemGuest(std::span<const std::uint64_t> gdt,
              const std::function<void(asmjit::x86::Assembler&)>& body,
              TranslatorOptions translator = {}) {
    namespace x86 = asmjit::x86;
    std::vector<std::uint32_t> handlers;
    image_ = AssembleGuest([&](x86::Assembler& a) {
      asmjit::Label start = a.newLabel();
      a.lgdt(x86::ptr_abs(kGdtr));
      a.lidt(x86::ptr_abs(kIdtr));
      a.mov(x86::esp, kStackTop);
      a.jmp(start);
      EmitHandlers(a, handlers);
      a.bind(start);
      body(a);
    });
    MachineConfig config;
    config.ram_bytes = 16u << 20;
    config.boot.kernel_image = image_;
    config.translator = translator;
    auto created = Machine::Create(config);
    REQUIRE(created);
    machine_ = std::move(created.value());
    REQUIRE(machine_->WritePhysical(kGdt, gdt.data(), gdt.size_bytes()));
    WriteTableRegister(kGdtr, static_cast<std::uint16_t>(gdt.size_bytes() - 1), kGdt);
    WriteTableRegister(kIdtr, 0x7FF, kIdt);
    for (std::uint32_t vector = 0; vector < handlers.size(); ++vector) {
      SetGate(vector, Gate(handlers[vector], kCodeSelector, 0x8E));
    }
  }

  Machine& machine() { return *machine_; }

  // Runs to the guest's cli; hlt. A guest that goes astray (faulting in a
  // loop) fails the test on the time budget instead of hanging it.
  Registers Run() {
    const StopInfo stop = machine_->Run({.time_budget = std::chrono::seconds(30)});
    REQUIRE_MESSAGE(stop.reason == StopReason::kHalted, stop.message);
    return machine_->GetRegisters();
  }

  std::vector<LoggedFault> Faults() {
    const std::uint32_t count = Read32(kLogCount);
    std::vector<LoggedFault> faults(count);
    if (count) {
      REQUIRE(machine_->ReadPhysical(kLogEntries, faults.data(), count * sizeof(LoggedFault)));
    }
    return faults;
  }

  std::uint32_t Read32(std::uint32_t address) {
    std::uint32_t value = 0;
    REQUIRE(machine_->ReadPhysical(address, &value, 4));
    return value;
  }
  std::uint64_t Read64(std::uint32_t address) {
    std::uint64_t value = 0;
    REQUIRE(machine_->ReadPhysical(address, &value, 8));
    return value;
  }
  void Write32(std::uint32_t address, std::uint32_t value) {
    REQUIRE(machine_->WritePhysical(address, &value, 4));
  }
  void SetGate(std::uint32_t vector, std::uint64_t gate) {
    REQUIRE(machine_->WritePhysical(kIdt + vector * 8, &gate, sizeof(gate)));
  }

 private:
  static void EmitHandlers(asmjit::x86::Assembler& a, std::vector<std::uint32_t>& handlers) {
    namespace x86 = asmjit::x86;
    asmjit::Label common = a.newLabel();
    for (unsigned vector = 0; vector < 20; ++vector) {
      handlers.push_back(Here(a));
      const bool error_code = vector == 8 || (vector >= 10 && vector <= 14) || vector == 17;
      if (!error_code) a.push(0);
      a.push(vector);
      a.jmp(common);
    }
    // [esp]: vector, error code, EIP, CS, EFLAGS (ESP, SS); below them EAX
    // and EBX.
    asmjit::Label restart = a.newLabel(), not_clts = a.newLabel(), skip = a.newLabel();
    a.bind(common);
    a.push(x86::eax);
    a.push(x86::ebx);
    a.mov(x86::ebx, Flat(kLogCount));
    a.shl(x86::ebx, 5);
    for (int i = 0; i < 7; ++i) {
      a.mov(x86::eax, x86::dword_ptr(x86::esp, 8 + 4 * i));
      x86::Mem entry = x86::dword_ptr(x86::ebx, static_cast<std::int32_t>(kLogEntries) + 4 * i);
      entry.setSegment(x86::ss);
      a.mov(entry, x86::eax);
    }
    a.inc(Flat(kLogCount));
    a.mov(x86::eax, Flat(kAction));
    a.cmp(x86::eax, kClts);
    a.jne(not_clts);
    a.clts();
    a.jmp(restart);
    a.bind(not_clts);
    a.cmp(x86::eax, kClearEmTs);
    a.jne(skip);
    a.mov(x86::eax, x86::cr0);
    a.and_(x86::eax, ~0xCu);
    a.mov(x86::cr0, x86::eax);
    a.jmp(restart);
    a.bind(skip);
    a.mov(x86::eax, Flat(kResume));
    a.mov(x86::dword_ptr(x86::esp, 16), x86::eax);
    a.bind(restart);
    a.pop(x86::ebx);
    a.pop(x86::eax);
    a.add(x86::esp, 8);
    a.iretd();
  }

  void WriteTableRegister(std::uint32_t at, std::uint16_t limit, std::uint32_t base) {
    REQUIRE(machine_->WritePhysical(at, &limit, 2));
    REQUIRE(machine_->WritePhysical(at + 2, &base, 4));
  }

  std::vector<std::uint8_t> image_;
  std::unique_ptr<Machine> machine_;
};

// Emits `emit_faulting` with the handler set to resume at the instruction
// after it; returns the faulting instruction's address. Registers and flags
// are as the caller left them; the stack is used. `origin` is the address
// of `a`'s first byte: in the guest's image, or 0 for code assembled as
// offsets in a code segment.
inline std::uint32_t ExpectSkip(asmjit::x86::Assembler& a,
                                const std::function<void()>& emit_faulting,
                                std::uint32_t origin = kLoadAddress + kHeaderBytes) {
  namespace x86 = asmjit::x86;
  asmjit::Label after = a.newLabel();
  a.mov(Flat(kAction), kSkip);
  a.push(x86::eax);
  a.lea(x86::eax, x86::ptr(after));
  a.mov(Flat(kResume), x86::eax);
  a.pop(x86::eax);
  const std::uint32_t at = origin + static_cast<std::uint32_t>(a.offset());
  emit_faulting();
  a.bind(after);
  return at;
}

// Emits a far call or jmp (ptr16:32) to `selector`:`offset`.
inline void EmitFar(asmjit::x86::Assembler& a, bool call, std::uint16_t selector,
                    std::uint32_t offset = 0) {
  a.db(call ? 0x9A : 0xEA);
  a.dd(offset);
  a.dw(selector);
}

inline void Halt(asmjit::x86::Assembler& a) {
  a.cli();
  a.hlt();
}

inline void CheckFault(const LoggedFault& fault, std::uint32_t vector, std::uint32_t error_code,
                       std::uint32_t eip, std::uint32_t cs = kCodeSelector) {
  CHECK(fault.vector == vector);
  CHECK(fault.error_code == error_code);
  CHECK(fault.eip == eip);
  CHECK(fault.cs == cs);
}

// Runs `machine`, whose guest turns paging on with the page directory at
// guest-physical `directory`, with every 4 MiB of linear memory mapped to
// the first (so nothing faults), for 200 ms of budget: the budget must end
// the run, within 10 s. Returns the registers where it stopped.
inline Registers RunUntilBudget(Machine& machine, std::uint32_t directory) {
  const std::vector<std::uint32_t> entries(1024, 0x87);  // 4 MiB, present, writable, user
  REQUIRE(machine.WritePhysical(directory, entries.data(), 4096));
  const auto start = std::chrono::steady_clock::now();
  const StopInfo stop = machine.Run({.time_budget = std::chrono::milliseconds(200)});
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(10));
  CHECK(stop.reason == StopReason::kBudgetExhausted);
  return machine.GetRegisters();
}

// The translator settings that tests run under where they differ.
inline const TranslatorOptions kSettings[] = {
    {},
    {.max_unit_instructions = 1},
    {.chaining = false},
};

}  // namespace bt::testing
