// Counters describing what the translator, the cache and the runtime did.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace bt {

enum class CalloutKind : std::uint8_t {
  kPortIn,
  kPortOut,
  kHlt,
  kCli,
  kSti,
  kPushf,
  kPopf,
  kCpuid,
  kRdtsc,
  kControlRegister,  // mov to/from CRn and DRn, smsw, lmsw, clts
  kDescriptorTable,  // lgdt, lidt, sgdt, sidt, lldt, sldt, ltr, str
  kSegmentLoad,
  kFarJump,
  kInterrupt,
  kEmulated,        // instructions that 64-bit mode cannot encode, done in C++
  kSegmentCheck,    // lar, lsl, verr, verw
  kMsr,             // rdmsr, wrmsr
  kFastSystemCall,  // sysenter, sysexit
  kFpuUnavailable,  // x87/MMX/SSE faulting because of CR0.TS or CR0.EM
  kPaging,          // invlpg, invd, wbinvd
  kResolvedMemory,  // memory operands resolved by the runtime (adaptive translation)
  kDivideCheck,     // div/idiv checked for #DE before they run (adaptive translation)
  kStringCheck,     // string instructions checked against non-flat segment limits
  kCount,
};

enum class HostFaultCause : std::uint8_t {
  kShadowMiss,       // window page mapped: first touch, or a guest page walked
  kCodeWrite,        // write to a write-protected code page (SMC)
  kGuestException,   // host trap that is a guest exception (#DE, #GP, ...)
  kEventPoll,        // a stop or event request caught by translated code
  kStringWrap,       // a string instruction crossed the 4 GiB wrap
  kGuestPageFault,   // an access the guest page tables refuse: a guest #PF
  kDeviceAccess,     // the first access of an instruction to an address without RAM
  kReturnStackFull,  // guest calls nested too deep for the return stack, which was emptied
  kPcThunkChanged,   // an inlined call found other code than its PC thunk: the call ran alone
  kCount,
};

std::string_view ToString(CalloutKind kind);
std::string_view ToString(HostFaultCause cause);

struct Stats {
  std::uint64_t units_translated = 0;
  std::uint64_t instructions_translated = 0;
  std::uint64_t translation_ns = 0;
  std::uint64_t cache_lookups = 0;
  std::uint64_t cache_hits = 0;
  std::uint64_t cache_misses = 0;
  std::uint64_t chains_made = 0;
  std::uint64_t chains_broken = 0;
  std::uint64_t cache_flushes = 0;  // whole-cache evictions
  std::uint64_t units_evicted = 0;
  std::uint64_t smc_invalidations = 0;  // units dropped because their code was written
  // Instructions retranslated to have their memory operand resolved by the
  // runtime after repeated faults (adaptive translation), and back.
  std::uint64_t adaptive_resolved = 0;
  std::uint64_t adaptive_reverted = 0;
  // Pages mapped at the iret of a #PF handler that made them valid.
  std::uint64_t mapped_after_page_fault = 0;
  std::uint64_t dispatcher_entries = 0;
  // The shadow page tables (guest paging): flushes of all pages (mode
  // changes, overflow), CR3 loads (which drop the non-global pages the new
  // tables no longer give), and invlpg.
  std::uint64_t shadow_full_flushes = 0;
  std::uint64_t shadow_cr3_flushes = 0;
  // CR3 loads that found the shadow of that address space kept, and the
  // pages of it still valid then: host mappings not made again.
  std::uint64_t shadow_space_hits = 0;
  std::uint64_t shadow_pages_kept = 0;
  std::uint64_t shadow_page_flushes = 0;
  // Shadow misses that found the page still mapped, without access, onto
  // the same physical page since it was dropped: only its rights changed.
  std::uint64_t shadow_pages_unparked = 0;
  std::array<std::uint64_t, static_cast<std::size_t>(CalloutKind::kCount)> callouts{};
  std::array<std::uint64_t, static_cast<std::size_t>(HostFaultCause::kCount)> host_faults{};
  std::array<std::uint64_t, 9> exits{};  // indexed by StopReason

  // Multi-line, human-readable report (what `btvm --stats` prints).
  std::string Format() const;
};

}  // namespace bt
