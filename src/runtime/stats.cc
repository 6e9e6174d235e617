// Names of the public enums and the report that `btvm --stats` prints.
#include <bt/machine.h>
#include <bt/stats.h>

#include <algorithm>
#include <array>
#include <cstdarg>
#include <cstdio>
#include <string>
#include <tuple>

namespace bt {
namespace {

// Stats::exits is a plain array indexed by StopReason (stats.h cannot include
// machine.h), so the two must be kept in step by hand.
static_assert(static_cast<std::size_t>(StopReason::kHostError) + 1 ==
                  std::tuple_size_v<decltype(Stats::exits)>,
              "Stats::exits needs one slot per StopReason");

constexpr int kLabelWidth = 26;

__attribute__((format(printf, 2, 3))) void Append(std::string& out, const char* format, ...) {
  char line[256];
  va_list args;
  va_start(args, format);
  int length = std::vsnprintf(line, sizeof line, format, args);
  va_end(args);
  if (length > 0) out.append(line, std::min<std::size_t>(length, sizeof line - 1));
}

void AppendCount(std::string& out, std::string_view label, std::uint64_t value) {
  Append(out, "  %-*.*s %llu\n", kLabelWidth, static_cast<int>(label.size()), label.data(),
         static_cast<unsigned long long>(value));
}

// One line per non-zero counter of `counts`, whose slots are named by Enum.
template <class Enum, std::size_t N>
void AppendNonZero(std::string& out, const char* heading,
                   const std::array<std::uint64_t, N>& counts) {
  std::uint64_t total = 0;
  for (std::uint64_t count : counts) total += count;
  Append(out, "%s: %llu\n", heading, static_cast<unsigned long long>(total));
  for (std::size_t i = 0; i < N; ++i) {
    if (counts[i] != 0) AppendCount(out, ToString(static_cast<Enum>(i)), counts[i]);
  }
}

}  // namespace

std::string_view ToString(StopReason reason) {
  switch (reason) {
    case StopReason::kDebugExit: return "debug-exit";
    case StopReason::kHalted: return "halted";
    case StopReason::kTripleFault: return "triple-fault";
    case StopReason::kReset: return "reset";
    case StopReason::kUnsupportedInstruction: return "unsupported-instruction";
    case StopReason::kGuestException: return "guest-exception";
    case StopReason::kBudgetExhausted: return "budget-exhausted";
    case StopReason::kStopRequested: return "stop-requested";
    case StopReason::kHostError: return "host-error";
  }
  return "unknown-stop-reason";
}

std::string_view ToString(CalloutKind kind) {
  switch (kind) {
    case CalloutKind::kPortIn: return "port-in";
    case CalloutKind::kPortOut: return "port-out";
    case CalloutKind::kHlt: return "hlt";
    case CalloutKind::kCli: return "cli";
    case CalloutKind::kSti: return "sti";
    case CalloutKind::kPushf: return "pushf";
    case CalloutKind::kPopf: return "popf";
    case CalloutKind::kCpuid: return "cpuid";
    case CalloutKind::kRdtsc: return "rdtsc";
    case CalloutKind::kControlRegister: return "control-register";
    case CalloutKind::kPaging: return "paging";
    case CalloutKind::kResolvedMemory: return "resolved-memory";
    case CalloutKind::kDivideCheck: return "divide-check";
    case CalloutKind::kStringCheck: return "string-check";
    case CalloutKind::kDescriptorTable: return "descriptor-table";
    case CalloutKind::kSegmentLoad: return "segment-load";
    case CalloutKind::kFarJump: return "far-jump";
    case CalloutKind::kInterrupt: return "interrupt";
    case CalloutKind::kEmulated: return "emulated";
    case CalloutKind::kSegmentCheck: return "segment-check";
    case CalloutKind::kMsr: return "msr";
    case CalloutKind::kFastSystemCall: return "sysenter-sysexit";
    case CalloutKind::kFpuUnavailable: return "fpu-unavailable";
    case CalloutKind::kCount: break;
  }
  return "unknown-callout";
}

std::string_view ToString(HostFaultCause cause) {
  switch (cause) {
    case HostFaultCause::kShadowMiss: return "shadow-miss";
    case HostFaultCause::kGuestPageFault: return "guest-page-fault";
    case HostFaultCause::kDeviceAccess: return "device-access";
    case HostFaultCause::kCodeWrite: return "code-write";
    case HostFaultCause::kGuestException: return "guest-exception";
    case HostFaultCause::kEventPoll: return "event-poll";
    case HostFaultCause::kStringWrap: return "string-wrap";
    case HostFaultCause::kReturnStackFull: return "return-stack-full";
    case HostFaultCause::kPcThunkChanged: return "pc-thunk-changed";
    case HostFaultCause::kCount: break;
  }
  return "unknown-host-fault";
}

std::string Stats::Format() const {
  std::string out;
  out += "translation:\n";
  AppendCount(out, "units translated", units_translated);
  AppendCount(out, "instructions translated", instructions_translated);
  if (units_translated != 0) {
    Append(out, "  %-*s %.1f\n", kLabelWidth, "instructions per unit",
           static_cast<double>(instructions_translated) / static_cast<double>(units_translated));
  }
  Append(out, "  %-*s %.3f ms\n", kLabelWidth, "translation time", translation_ns / 1e6);
  if (translation_ns != 0) {
    double seconds = static_cast<double>(translation_ns) / 1e9;
    Append(out, "  %-*s %.0f\n", kLabelWidth, "instructions per second",
           static_cast<double>(instructions_translated) / seconds);
  }

  out += "code cache:\n";
  AppendCount(out, "lookups", cache_lookups);
  if (cache_lookups != 0) {
    Append(out, "  %-*s %llu (%.2f%%)\n", kLabelWidth, "hits",
           static_cast<unsigned long long>(cache_hits),
           100.0 * static_cast<double>(cache_hits) / static_cast<double>(cache_lookups));
  } else {
    AppendCount(out, "hits", cache_hits);
  }
  AppendCount(out, "misses", cache_misses);
  AppendCount(out, "chains made", chains_made);
  AppendCount(out, "chains broken", chains_broken);
  AppendCount(out, "flushes", cache_flushes);
  AppendCount(out, "units evicted", units_evicted);
  AppendCount(out, "smc invalidations", smc_invalidations);

  out += "runtime:\n";
  AppendCount(out, "dispatcher entries", dispatcher_entries);
  out += "shadow page tables:\n";
  AppendCount(out, "full flushes", shadow_full_flushes);
  AppendCount(out, "cr3 flushes", shadow_cr3_flushes);
  AppendCount(out, "address spaces kept", shadow_space_hits);
  AppendCount(out, "pages kept", shadow_pages_kept);
  AppendCount(out, "invlpg flushes", shadow_page_flushes);
  AppendCount(out, "pages unparked", shadow_pages_unparked);
  AppendCount(out, "adaptively resolved", adaptive_resolved);
  AppendCount(out, "adaptively reverted", adaptive_reverted);
  AppendCount(out, "mapped after a #PF", mapped_after_page_fault);
  AppendNonZero<CalloutKind>(out, "callouts", callouts);
  AppendNonZero<HostFaultCause>(out, "host faults", host_faults);
  AppendNonZero<StopReason>(out, "exits", exits);
  return out;
}

}  // namespace bt
