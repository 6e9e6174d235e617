// The guest CPU state block that translated code addresses through a host
// register, and the host register assignment of translated code. This is the
// one header that fixes offsets shared by generated code and C++.
#pragma once

#include <cstddef>
#include <cstdint>

namespace bt::translator {

// Guest general registers in the SDM's encoding order.
enum GuestRegister : std::uint8_t { kEax, kEcx, kEdx, kEbx, kEsp, kEbp, kEsi, kEdi };
// Segment registers in the SDM's encoding order (CpuState::segment).
enum SegmentRegister : std::uint8_t { kEs, kCs, kSs, kDs, kFs, kGs };

// EFLAGS bits (SDM Vol. 1, 3.4.3).
constexpr std::uint32_t kEflagsCf = 1u << 0, kEflagsPf = 1u << 2, kEflagsAf = 1u << 4,
                        kEflagsZf = 1u << 6, kEflagsSf = 1u << 7, kEflagsTf = 1u << 8,
                        kEflagsIf = 1u << 9, kEflagsDf = 1u << 10, kEflagsOf = 1u << 11,
                        kEflagsIopl = 3u << 12, kEflagsNt = 1u << 14, kEflagsRf = 1u << 16,
                        kEflagsVm = 1u << 17;

// CR0 bits (SDM Vol. 3A 2.5).
constexpr std::uint32_t kCr0Pe = 1u << 0, kCr0Mp = 1u << 1, kCr0Em = 1u << 2, kCr0Ts = 1u << 3,
                        kCr0Et = 1u << 4, kCr0Pg = 1u << 31;
// CR4.TSD: rdtsc only at CPL 0.
constexpr std::uint32_t kCr4Tsd = 1u << 2, kCr4De = 1u << 3, kCr4Pae = 1u << 5, kCr4Pge = 1u << 7,
                        kCr4Osfxsr = 1u << 9;

// Why translated code returned to the dispatcher.
enum class ExitReason : std::uint32_t {
  kBranch,      // a direct exit stub that may be chained; `exit_link` is set
  kIndirect,    // an indirect transfer that missed the inline lookup table
  kCallout,     // an instruction the runtime finishes; `exit_record` is set
  kGuestFault,  // a host fault became a guest exception; `fault_vector` is set
  kEventPoll,   // an event poll saw the poll page revoked
  kSmcRestart,  // the unit wrote its own code; re-run from `eip` one step
  kStop,        // a callout asked the run to stop
};

// EFLAGS bits that live in host RFLAGS while translated code runs; the rest
// (IF, IOPL, TF, AC, ID, VM, ...) are virtual and kept in `eflags_virtual`.
constexpr std::uint32_t kHostFlagsMask = 0x0CD5;  // CF PF AF ZF SF DF OF

struct SegmentState {
  std::uint16_t selector = 0;
  std::uint32_t base = 0;
  std::uint32_t limit = 0xFFFFFFFF;
  std::uint16_t attributes = 0;
};

// The offsets [first, last] that accesses through a segment may reach (SDM
// Vol. 3A 5.3): [0, limit] expand-up, [limit + 1, 0xFFFF or 0xFFFFFFFF]
// expand-down; empty for a null selector, and for writes to a segment that
// is not writable (5.4.1). Kept negated for the flag-free arithmetic of
// translated code's checks (UnitBuilder::CheckLimit).
struct SegmentBounds {
  std::int64_t neg_first = 0;
  std::int64_t neg_last = -0xFFFFFFFFll;

  static constexpr SegmentBounds Empty() { return {-(std::int64_t{1} << 32), 0}; }
  bool operator==(const SegmentBounds&) const = default;
  // Whether all of [offset, offset + bytes) lies within; bytes > 0.
  constexpr bool Contains(std::uint32_t offset, std::uint64_t bytes) const {
    const std::int64_t first = offset;
    const auto last = static_cast<std::int64_t>(first + bytes - 1);
    return first + neg_first >= 0 && last + neg_last <= 0;
  }
};

// IA32_EFER.NXE: execute-disable in PAE paging (SDM Vol. 3A, 4.1.1).
constexpr std::uint64_t kEferNxe = 1ull << 11;

// Model-specific registers that libbt implements (runtime/msrs.cc).
struct MsrState {
  std::uint64_t tsc_offset = 0;  // guest TSC = host TSC + tsc_offset
  std::uint64_t sysenter_cs = 0;
  std::uint32_t sysenter_esp = 0, sysenter_eip = 0;
  std::uint64_t pat = 0x0007040600070406;  // power-up value (SDM Vol. 3A, "Programming the PAT")
  std::uint64_t misc_enable = 0x1801;      // fast strings; BTS and PEBS unavailable
  std::uint64_t efer = 0;                  // IA32_EFER: NXE only
  std::uint64_t amd_nb_config = 0;         // AMD NB_CFG: EnableCf8ExtCfg only
};

struct alignas(64) CpuState {
  // Offsets of everything up to `indirect_salt` are used by generated code.
  std::uint32_t gpr[8] = {};
  std::uint32_t eip = 0;
  std::uint32_t next_eip = 0;
  std::uint64_t host_flags = 0x2;  // arithmetic flags and DF as RFLAGS
  std::uint32_t eflags_virtual = 0x2;
  ExitReason exit_reason = ExitReason::kBranch;
  const void* exit_record = nullptr;    // exit stub, callout record
  std::uint32_t effective_address = 0;  // memory operand of a callout
  std::uint32_t fault_vector = 0;
  std::uint64_t host_rsp = 0;
  std::uint64_t window_base = 0;
  std::uint64_t callout_handler = 0;  // CalloutFunction
  std::uint64_t runtime = 0;          // first argument of callout_handler
  std::uint64_t spill = 0;            // a guest register parked by the translator
  // Translated code's host stack is the return stack (kReturnStackGuardOffset):
  // RSP when it is empty, pointing at the sentinel's slot; translated code's
  // RSP while a callout runs on the host stack; and the indirect-table salt
  // of the running units' view, for the sentinel's lookup.
  std::uint64_t return_stack_empty = 0;
  std::uint64_t translated_rsp = 0;
  std::uint32_t indirect_salt = 0;

  // Architectural state the runtime owns.
  std::uint32_t cr0 = 0x10;  // ET
  std::uint32_t cr2 = 0, cr3 = 0, cr4 = 0;
  // DR0-DR3, DR6, DR7 (DR4 and DR5 are unused slots): held for the guest,
  // as breakpoints are not emulated. Reset values (SDM Vol. 3A table 9-1).
  std::uint32_t dr[8] = {0, 0, 0, 0, 0, 0, 0xFFFF0FF0, 0x400};
  SegmentState segment[6];  // ES CS SS DS FS GS
  // The data segments' bounds for reads and for writes (CS's are unused),
  // kept by the runtime whenever units may run (Vcpu::CurrentUnitMode).
  SegmentBounds segment_bounds[6][2];
  std::uint32_t gdt_base = 0, idt_base = 0;
  std::uint16_t gdt_limit = 0, idt_limit = 0xFFFF;
  // LDTR and TR: selector and the descriptor cached when they were loaded
  // (SDM Vol. 3A 2.4.3-2.4.4); limit 0xFFFF at reset (table 9-1).
  SegmentState ldtr{0, 0, 0xFFFF, 0};
  SegmentState tr{0, 0, 0xFFFF, 0};
  MsrState msr;

  alignas(16) std::uint8_t guest_fpu[512] = {};
  // The host's x87 control word and MXCSR, the only FPU state the C++ ABI
  // asks a callee to keep (every x87 and XMM register is caller-saved).
  std::uint32_t host_mxcsr = 0;
  std::uint16_t host_fcw = 0;

  std::uint32_t Eflags() const {
    return (static_cast<std::uint32_t>(host_flags) & kHostFlagsMask) |
           (eflags_virtual & ~kHostFlagsMask) | 0x2;
  }
  void SetEflags(std::uint32_t value) {
    host_flags = (value & kHostFlagsMask) | 0x2;
    eflags_virtual = (value & ~kHostFlagsMask) | 0x2;
  }
  // The current privilege level: the RPL of CS in protected mode (SDM Vol.
  // 3A 5.5); libbt runs neither real nor virtual-8086 mode yet.
  unsigned Cpl() const { return segment[kCs].selector & 3; }
  unsigned Iopl() const { return (eflags_virtual & kEflagsIopl) >> 12; }
};

// The page after the state block is the event poll page: a unit reads it
// before its first backward or indirect transfer, so that any loop reads it
// once a round, and revoking access to it makes running code stop
// there without any flag test that would disturb guest EFLAGS. Forward
// direct transfers do not poll: a run of them ends within the guest's code.
constexpr std::size_t kCpuStateBytes = (sizeof(CpuState) + 4095) & ~std::size_t{4095};
constexpr std::int32_t kPollOffset = static_cast<std::int32_t>(kCpuStateBytes);

// After the poll page: the inline lookup table for indirect transfers, 64 Ki
// entries of {-(eip + salt), host code} indexed by the low 16 bits of the
// target, so translated code reaches it relative to the state register.
// The salt (IndirectSalt in translation_unit.h) differs between units of
// the two views and of different segment modes, so entries made in one
// never match a lookup in another: user code cannot reach supervisor pages
// through the table, and neither a change of view nor a segment load has to
// empty it.
struct IndirectEntry {
  std::uint32_t negated_eip;
  std::uint32_t eip;  // for the runtime, which empties entries by address
  const std::uint8_t* host;
};
constexpr std::size_t kIndirectEntries = 1u << 16;
constexpr std::int32_t kIndirectTableOffset = kPollOffset + 4096;

// After the table: the return stack, on which translated code runs. A guest
// call is a host call that pushes where the callee's return goes back to in
// the caller's unit (its continuation), and a guest return is a host ret,
// which the host CPU's return predictor gets right where a lookup through
// the table would cost a load chain and often a mispredicted jump. The
// continuation checks that the guest returned where the call would, and
// else looks the guest address up; an empty stack's ret lands on a
// sentinel that does the same. A call that finds the stack full faults on
// the guard page below it, and the runtime empties the stack and runs the
// call again (Vcpu::HandleHostFault). Nothing checks the room left, so no
// signal handler may run on this stack: the vCPU thread holds back all but
// the faults libbt handles on its alternate stack (platform::SignalsHeld).
constexpr std::int32_t kReturnStackGuardOffset =
    kIndirectTableOffset + static_cast<std::int32_t>(kIndirectEntries * sizeof(IndirectEntry));
constexpr std::size_t kReturnStackGuardBytes = 4096;
constexpr std::size_t kReturnStackBytes = 65536;
constexpr std::size_t kCpuBlockBytes =
    kReturnStackGuardOffset + kReturnStackGuardBytes + kReturnStackBytes;

// Signature of the C++ function that finishes a callout; returns true when
// translated code must not continue after it (next_eip/exit_reason are set).
using CalloutFunction = bool (*)(void* runtime, CpuState* state, const void* record);

}  // namespace bt::translator
