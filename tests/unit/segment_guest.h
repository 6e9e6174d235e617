// The guest of the segment tests (segment_limits_test.cc for ES, SS and
// DS, fs_gs_limits_test.cc for FS and GS): a GDT of based, limited,
// expand-down, read-only and null segments, RAM that shows where a load
// read, and the harness that runs a body under every translator setting
// and checks the #GP(0) and #SS(0) it expects.
#pragma once

#include "tests/support/system_guest.h"

#include <bt/machine.h>

#include <doctest/doctest.h>

#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

namespace bt::segment_guest {

namespace x86 = asmjit::x86;
using testing::CheckFault;
using testing::Descriptor;
using testing::ExpectSkip;
using testing::Here;
using testing::kBig;
using testing::kByteGranular32;
using testing::kOut;
using testing::kSettings;
using Fault = testing::LoggedFault;

// Segment bases; RAM from kDsBase to kPatternEnd holds each dword's own
// linear address, so a load shows where it read.
constexpr std::uint32_t kDsBase = 0x200000, kEsBase = 0x220000, kSsBase = 0x240000;
constexpr std::uint32_t kPatternEnd = 0x260000;
constexpr std::uint32_t kTss = 0x302000, kStack0 = testing::kStackTop;

enum Selector : std::uint16_t {
  kCode0 = 0x08,
  kData0 = 0x10,
  kDs = 0x18,        // base kDsBase, limit 0xFFFF
  kEs = 0x20,        // base kEsBase, limit 0xFFFF
  kSs = 0x28,        // base kSsBase, limit 0xFFFF
  kDown = 0x30,      // base kDsBase, expand-down above 0xFFF, B set
  kDown16 = 0x38,    // base kDsBase, expand-down above 0xFFF, B clear
  kReadOnly = 0x40,  // base kDsBase, limit 0xFFFF, read-only
  kCodeData = 0x48,  // base kDsBase, limit 0xFFFF, readable code
  kLowStack = 0x50,  // base 0, limit 0x380FFF: the harness's stack and log fit
  kTssSelector = 0x58,
  kCode3 = 0x63,
  kData3 = 0x6B,
  kStack3 = 0x73,     // DPL 3, base kSsBase, limit 0xFFFF
  kStack16 = 0x78,    // B clear: a 16-bit stack
  kBasedCode = 0x80,  // code with base kDsBase
  kBasedFlat = 0x88,  // base kDsBase, limit 4 GiB: per-CPU data or TLS in FS or GS
  kCode16 = 0x90,     // 16-bit code
};

constexpr std::uint64_t kGdtEntries[] = {
    0,
    testing::kFlatCode0,                                 // 0x08
    testing::kFlatData0,                                 // 0x10
    Descriptor(kDsBase, 0xFFFF, 0x93, kByteGranular32),  // 0x18
    Descriptor(kEsBase, 0xFFFF, 0x93, kByteGranular32),  // 0x20
    Descriptor(kSsBase, 0xFFFF, 0x93, kByteGranular32),  // 0x28
    Descriptor(kDsBase, 0xFFF, 0x97, kByteGranular32),   // 0x30
    Descriptor(kDsBase, 0xFFF, 0x97, 0),                 // 0x38
    Descriptor(kDsBase, 0xFFFF, 0x91, kByteGranular32),  // 0x40
    Descriptor(kDsBase, 0xFFFF, 0x9B, kByteGranular32),  // 0x48
    Descriptor(0, 0x380, 0x93, kBig),                    // 0x50
    Descriptor(kTss, 0x67, 0x89, 0),                     // 0x58
    testing::kFlatCode3,                                 // 0x60
    testing::kFlatData3,                                 // 0x68
    Descriptor(kSsBase, 0xFFFF, 0xF3, kByteGranular32),  // 0x70
    Descriptor(0, 0xFFFF, 0x93, 0),                      // 0x78
    Descriptor(kDsBase, 0xFFFFF, 0x9B, kBig),            // 0x80
    Descriptor(kDsBase, 0xFFFFF, 0x93, kBig),            // 0x88
    Descriptor(0, 0xFFFF, 0x9B, 0),                      // 0x90
};

// A guest with the GDT above whose RAM from kDsBase to kPatternEnd holds the
// pattern, and a TSS for ring-0 entry from ring 3.
class SegmentGuest : public testing::SystemGuest {
 public:
  explicit SegmentGuest(const std::function<void(x86::Assembler&)>& body,
                        TranslatorOptions translator = {})
      : SystemGuest(kGdtEntries, body, translator) {
    std::vector<std::uint32_t> pattern((kPatternEnd - kDsBase) / 4);
    for (std::uint32_t i = 0; i < pattern.size(); ++i) pattern[i] = kDsBase + 4 * i;
    REQUIRE(machine().WritePhysical(kDsBase, pattern.data(), pattern.size() * 4));
    Write32(kTss + 4, kStack0);
    Write32(kTss + 8, kData0);
  }
};

inline void Load(x86::Assembler& a, const x86::SReg& segment, std::uint16_t selector) {
  a.mov(x86::eax, selector);
  a.mov(segment, x86::ax);
}

// Flat DS, ES, SS and the harness's stack back, then the end of the run.
inline void Finish(x86::Assembler& a) {
  Load(a, x86::ss, kData0);
  a.mov(x86::esp, kStack0);
  Load(a, x86::ds, kData0);
  Load(a, x86::es, kData0);
  testing::Halt(a);
}

// A dword of the result area through FS, which stays flat.
inline x86::Mem Out(unsigned index) {
  x86::Mem mem = x86::dword_ptr_abs(kOut + 4 * index);
  mem.setSegment(x86::fs);
  return mem;
}

inline x86::Mem With(x86::Mem mem, const x86::SReg& segment) {
  mem.setSegment(segment);
  return mem;
}

// The faults a guest must log, in order: #GP(0) or #SS(0) at each
// instruction Expect emits, which the handler resumes after.
class FaultList {
 public:
  static constexpr std::uint32_t kGp = 13, kSs = 12;

  void Expect(x86::Assembler& a, std::uint32_t vector, const std::function<void()>& emit) {
    Add(vector, ExpectSkip(a, emit));
  }
  void Add(std::uint32_t vector, std::uint32_t eip) { expected_.push_back({vector, eip}); }
  void Check(testing::SystemGuest& guest) const {
    const std::vector<Fault> faults = guest.Faults();
    REQUIRE(faults.size() == expected_.size());
    for (std::size_t i = 0; i < faults.size(); ++i) {
      CAPTURE(i);
      CheckFault(faults[i], expected_[i].first, 0, expected_[i].second, cs);
    }
  }

  std::uint16_t cs = kCode0;  // where the faults happen

 private:
  std::vector<std::pair<std::uint32_t, std::uint32_t>> expected_;
};

// Runs the guest `body` emits under each translator setting, with FS flat
// and ending with Finish; checks the faults `body` expected, then `check`.
// `prepare` may change the guest before it runs.
inline void RunEverySetting(const std::function<void(x86::Assembler&, FaultList&)>& body,
                            const std::function<void(SegmentGuest&)>& check,
                            const std::function<void(SegmentGuest&)>& prepare = nullptr) {
  for (const TranslatorOptions& settings : kSettings) {
    CAPTURE(settings.max_unit_instructions);
    CAPTURE(settings.chaining);
    FaultList faults;
    SegmentGuest guest(
        [&](x86::Assembler& a) {
          Load(a, x86::fs, kData0);
          body(a, faults);
          Finish(a);
        },
        settings);
    if (prepare) prepare(guest);
    guest.Run();
    faults.Check(guest);
    check(guest);
  }
}

// A far call to kCode3:0 (ptr16:32).
inline void EmitFarCall(x86::Assembler& a) {
  a.db(0x9A);
  a.dd(0);
  a.dw(kCode3);
}

// DS, ES and SS loaded with kDs, kEs and kSs, and ESP 0x8000 in SS.
inline void LoadBased(x86::Assembler& a) {
  Load(a, x86::ds, kDs);
  Load(a, x86::es, kEs);
  Load(a, x86::ss, kSs);
  a.mov(x86::esp, 0x8000);
}

}  // namespace bt::segment_guest
