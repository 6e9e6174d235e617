// A translation unit (TU): host code made from a run of guest instructions,
// plus what is needed to find it, chain to it, invalidate it and map a host
// fault inside it back to a guest instruction. Units live in the code cache's
// own memory; the intrusive hooks below are how the cache indexes them.
#pragma once

#include "decoder/decoded_instruction.h"
#include "translator/cpu_state.h"

#include <boost/intrusive/list.hpp>
#include <boost/intrusive/unordered_set.hpp>
#include <cstdint>
#include <cstring>

namespace bt::translator {

namespace bi = boost::intrusive;
using NormalLink = bi::link_mode<bi::normal_link>;

struct TranslationUnit;

// How a host fault inside an instruction's host code differs from the
// instruction's architectural start state.
enum class Fixup : std::uint8_t {
  kNone,
  kUndoPop4,  // ESP was already incremented by 4 (pop to memory)
  kUndoPop2,
  kRestoreSpill,  // guest register `argument` is parked in CpuState::spill
  kStringAccess,  // a string instruction with host-absolute ESI/EDI; ESI also
                  // holds the base of segment `argument & 0xF` and EDI that
                  // of `argument >> 4` (kNoStringBase for none)
  kSegmentFault,  // a failed segment limit check: the host trap here is the
                  // guest's exception `argument` (#GP or #SS), error code 0
  kPcThunkGuard,  // an inlined call's guard of its PC thunk (EmitPcThunkCall);
                  // guest ECX is parked in R9
  kEspPending,    // in a run of pushes and pops (EmitStackRun): guest ESP is
                  // ESP + 4 * (std::int8_t)`argument`
};

// A kStringAccess argument nibble: no segment base in that register.
constexpr std::uint8_t kNoStringBase = 0xF;

struct FaultMapEntry {
  std::uint32_t host_offset;  // first host byte this entry covers
  std::uint32_t guest_eip;
  Fixup fixup;
  std::uint8_t argument;
};

// Points the rel32 field of a jmp or jcc at `target`.
inline void PatchRel32(std::uint8_t* field, const std::uint8_t* target) {
  auto rel = static_cast<std::int32_t>(target - (field + sizeof(std::int32_t)));
  std::memcpy(field, &rel, sizeof(rel));
}

// One direct exit of a unit: a jmp or jcc whose rel32 field is `rel32`.
// While unchained it goes to `slow_path`, which hands this link to the
// dispatcher; chaining patches the rel32 to enter the target directly.
// How a chained exit depends on guest paging (see CodeCache::Chain).
enum class ChainScope : std::uint8_t {
  kPage,    // into the owner's own pages, or paging is off
  kGlobal,  // into another page whose translation is global
  kLocal,   // into another page of the current address space only
};

struct ExitLink {
  bi::list_member_hook<NormalLink> incoming_hook;    // in target->incoming
  bi::list_member_hook<NormalLink> cross_page_hook;  // in the cache's cross-page list
  TranslationUnit* owner = nullptr;
  TranslationUnit* target = nullptr;
  std::uint8_t* rel32 = nullptr;
  std::uint8_t* slow_path = nullptr;
  std::uint32_t target_eip = 0;
  ChainScope scope = ChainScope::kPage;
};

// A unit's membership in the list of units made from one guest page.
struct PageRef {
  bi::list_member_hook<NormalLink> hook;
  TranslationUnit* unit = nullptr;
};

using IncomingList =
    bi::list<ExitLink,
             bi::member_hook<ExitLink, bi::list_member_hook<NormalLink>, &ExitLink::incoming_hook>>;
using CrossPageList = bi::list<ExitLink, bi::member_hook<ExitLink, bi::list_member_hook<NormalLink>,
                                                         &ExitLink::cross_page_hook>>;
using PageList =
    bi::list<PageRef, bi::member_hook<PageRef, bi::list_member_hook<NormalLink>, &PageRef::hook>>;

// What a unit's code assumed, beyond its guest address.
//
// `eip` is the architectural EIP, an offset in CS, as everything the
// translator records is: the fault map, exit targets, pushed return
// addresses, callout records. Only fetches are linear (code_base + eip:
// the decode source, page boundaries, physical pages, chain scopes). With
// a flat CS the two are the same, and code_base and code_limit hold the
// flat values, so keys and code are as they would be without segments.
struct UnitKey {
  std::uint32_t eip;
  std::uint32_t mode;  // UnitMode(): CPU state the code depends on
  // Where the page of the linear address of `eip` is in guest-physical
  // memory: with paging, one linear address holds different code in
  // different address spaces.
  std::uint32_t physical_page;
  // CS's base and limit for a unit of kModeCodeSegment: its code checks
  // branch targets against the limit, and its straight-line code stops
  // where the limit does, so it may only run under them.
  std::uint32_t code_base = 0;
  std::uint32_t code_limit = 0xFFFFFFFF;
  bool operator==(const UnitKey&) const = default;
  std::uint32_t Linear() const { return code_base + eip; }
  // Whether a unit of this key may run where one of `other` does.
  bool SameAssumptions(const UnitKey& other) const {
    return mode == other.mode && code_base == other.code_base && code_limit == other.code_limit;
  }
};

// UnitKey::mode bits: CR4.TSD is set, so rdtsc is a callout (#GP at CPL >
// 0); CR4.OSFXSR is clear, so SSE instructions are #UD.
constexpr std::uint32_t kModeTsd = 1u << 16, kModeSseOff = 1u << 17;
// UnitKey::mode bit: the unit runs in the user view (CPL 3 with paging).
constexpr std::uint32_t kModeUserView = 1u << 18;
// UnitKey::mode bits, shifted left by the segment register's number (ES,
// SS, DS, FS, GS): the segment is not flat (a limit below 4 GiB,
// expand-down, read-only or null; for ES, SS and DS also a base), so the
// unit's accesses through it add its base and check its bounds at run time
// (CpuState::segment_bounds). Flat segments, which every common 32-bit OS
// keeps, cost nothing; nor do FS and GS with a base but a flat limit (per-CPU
// data, thread-local storage), whose base every unit adds.
constexpr std::uint32_t kModeCheckedSegment = 1u << 19;
constexpr std::uint32_t kModeCheckedSegments =
    kModeCheckedSegment << kEs | kModeCheckedSegment << kSs | kModeCheckedSegment << kDs |
    kModeCheckedSegment << kFs | kModeCheckedSegment << kGs;
constexpr bool SegmentChecked(std::uint32_t mode, unsigned segment) {
  return segment <= kGs && (mode & kModeCheckedSegment << segment) != 0;
}
// UnitKey::mode bits: code of the unit's view has accessed memory through
// FS (GS). Until then the view's modes leave the segment out, its
// kModeCheckedSegment bit clear whatever it holds, and an access through it
// is a callout (Kind::kSegmentUse) that marks it used in the view and runs
// again from a unit of the new mode. Operating systems use each of FS and
// GS in one view and keep it null in the other (Linux: FS for per-CPU data
// in the kernel, GS for thread-local storage in user space), where its
// reloads would otherwise change the mode at kernel entries and exits and
// at context switches.
constexpr std::uint32_t kModeUsesFs = 1u << 25, kModeUsesGs = 1u << 26;
constexpr std::uint32_t UsesSegmentBit(unsigned segment) {
  return segment == kFs ? kModeUsesFs : segment == kGs ? kModeUsesGs : 0;
}
// The kModeCheckedSegment bits units of mode `mode` depend on.
constexpr std::uint32_t DependentSegments(std::uint32_t mode) {
  return (kModeCheckedSegment << kEs | kModeCheckedSegment << kSs | kModeCheckedSegment << kDs) |
         ((mode & kModeUsesFs) ? kModeCheckedSegment << kFs : 0) |
         ((mode & kModeUsesGs) ? kModeCheckedSegment << kGs : 0);
}

// The salt of the indirect-branch table's entries and lookups (see
// kIndirectTableOffset) for units of mode `mode`: one per view and set of
// checked and used segments. Their low 16 bits differ (an odd factor is
// invertible modulo 2^16), so two eips that share a slot never differ by
// their salts.
constexpr std::uint32_t IndirectSalt(std::uint32_t mode) {
  constexpr unsigned kShift = 18;  // kModeUserView, then the segments
  static_assert(kModeUserView == 1u << kShift && kModeCheckedSegment == 1u << (kShift + 1) &&
                kModeUsesGs >> kShift < (1u << 16));
  constexpr std::uint32_t kOddFactor = 0x9E3779B1u;
  const std::uint32_t bits = kModeUserView | kModeCheckedSegments | kModeUsesFs | kModeUsesGs;
  return ((mode & bits) >> kShift) * kOddFactor;
}
// UnitKey::mode bit: CS is not flat (a base, or a limit below 4 GiB; SDM
// Vol. 3A 3.4.5, 5.3), and UnitKey::code_base and code_limit hold it. Data
// accesses through a cs: override add its base and check its bounds like
// those of a checked ES, SS or DS; near branches check their targets
// against the limit (#GP(0) at the branch), and indirect ones leave
// through the dispatcher, as the inline lookup table holds flat units only.
constexpr std::uint32_t kModeCodeSegment = kModeCheckedSegment << kCs;

// The UnitKey::mode for control registers 0 and 4. x87, MMX and SSE
// instructions run natively, so units depend on whether CR0.TS/EM/MP make
// them fault: they keep the CR0 bits that do, and are 0 whenever none would
// fault, so the usual state (TS and EM clear, whatever MP) has one set of
// translations and translated code tests nothing at run time. rdtsc runs
// inline unless CR4.TSD may make it fault; SSE unless CR4.OSFXSR is clear.
constexpr std::uint32_t UnitMode(std::uint32_t cr0, std::uint32_t cr4) {
  const std::uint32_t cr4_bits =
      ((cr4 & kCr4Tsd) ? kModeTsd : 0) | ((cr4 & kCr4Osfxsr) ? 0 : kModeSseOff);
  if (cr0 & kCr0Ts) return (cr0 & (kCr0Mp | kCr0Em | kCr0Ts)) | cr4_bits;
  return (cr0 & kCr0Em) | cr4_bits;
}

// True when an instruction of `fpu_class` faults under UnitKey::mode `mode`
// (SDM Vol. 3A table 2-2): x87 with EM or TS, wait with MP and TS, MMX with
// EM (#UD) or TS (#NM), SSE also without OSFXSR (#UD).
constexpr bool FpuFaults(decoder::FpuClass fpu_class, std::uint32_t mode) {
  switch (fpu_class) {
    case decoder::FpuClass::kX87:
    case decoder::FpuClass::kMmx: return (mode & (kCr0Em | kCr0Ts)) != 0;
    case decoder::FpuClass::kSse: return (mode & (kCr0Em | kCr0Ts | kModeSseOff)) != 0;
    case decoder::FpuClass::kWait: return (mode & (kCr0Mp | kCr0Ts)) == (kCr0Mp | kCr0Ts);
    case decoder::FpuClass::kNone: return false;
  }
  return false;
}

struct TranslationUnit {
  bi::unordered_set_member_hook<NormalLink> hash_hook;
  IncomingList incoming;
  PageRef pages[2];
  ExitLink* exits = nullptr;  // in the unit's own memory
  UnitKey key{};
  std::uint32_t physical_page[2] = {};
  std::uint8_t page_count = 0;
  std::uint16_t exit_count = 0;
  bool live = true;
  bool cached = true;  // false for one-off units run once and dropped
  std::uint32_t guest_bytes = 0;
  std::uint8_t* code = nullptr;
  std::uint32_t code_size = 0;
  const FaultMapEntry* fault_map = nullptr;
  std::uint32_t fault_map_size = 0;
  // Where in `code` the check of each call's continuation falls through
  // when the guest returned where the call would
  // (UnitBuilder::EmitContinuation): the offset of its loop, which
  // CodeCache::Unlink turns into a jmp, so a return into a dropped unit
  // looks its target up instead of running on in code that may be stale.
  const std::uint16_t* continuation_checks = nullptr;
  std::uint8_t continuation_count = 0;

  // The fault map entry covering host address `host` (inside code).
  const FaultMapEntry& FaultEntryAt(const std::uint8_t* host) const;
  // Whether the guest instruction at `eip` (an offset in CS) is one of the
  // unit's.
  bool HoldsInstructionAt(std::uint32_t eip) const;
};

}  // namespace bt::translator
