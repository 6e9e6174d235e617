// The virtual CPU: runs translated code, and handles what comes back from it
// (exits, callouts, host faults turned into shadow misses, SMC or guest
// exceptions).
#pragma once

#include "decoder/decoder.h"
#include "devices/mmio_bus.h"
#include "devices/pic_8259.h"
#include "devices/port_bus.h"
#include "devices/timed_device.h"
#include "mmu/physical_memory.h"
#include "mmu/shadow_mmu.h"
#include "platform/host_fault.h"
#include "platform/host_memory.h"
#include "runtime/indirect_table.h"
#include "translator/code_cache.h"
#include "translator/cpu_state.h"
#include "translator/trampolines.h"
#include "translator/translator.h"

#include <bt/machine.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

namespace bt::runtime {

struct Descriptor;
using translator::CpuState;
using translator::TranslationUnit;

struct VcpuCounters {
  std::uint64_t cache_lookups = 0;
  std::uint64_t cache_hits = 0;
  std::uint64_t cache_misses = 0;
  std::uint64_t dispatcher_entries = 0;
  std::uint64_t smc_invalidations = 0;
  std::uint64_t adaptive_resolved = 0;
  std::uint64_t adaptive_reverted = 0;
  std::uint64_t mapped_after_page_fault = 0;
  std::array<std::uint64_t, static_cast<std::size_t>(CalloutKind::kCount)> callouts{};
  std::array<std::uint64_t, static_cast<std::size_t>(HostFaultCause::kCount)> host_faults{};
  decltype(Stats::exits) exits{};  // indexed by StopReason
};

// An exception or interrupt on its way through the guest's IDT.
struct GuestEvent {
  enum class Source : std::uint8_t {
    kException,          // detected by the CPU (faults and traps)
    kSoftwareException,  // int3, into: a gate DPL check, no EXT bit
    kSoftwareInterrupt,  // int n
    kExternal,           // a device's interrupt through the PIC
  };
  std::uint8_t vector = 0;
  Source source = Source::kException;
  bool has_error_code = false;
  std::uint32_t error_code = 0;
  std::uint32_t return_eip = 0;  // the EIP the handler's frame holds
  // The EIP a fault while delivering this event reports: the instruction
  // that caused it (int n, a fault) or that was interrupted.
  std::uint32_t fault_eip = 0;
};

// A guest page fault found by a software walk: the linear address (CR2) and
// the error code.
struct LinearFault {
  std::uint32_t address = 0;
  std::uint32_t error_code = 0;
};

// Exception vectors (SDM Vol. 3, table 6-1).
enum ExceptionVector : std::uint8_t {
  kDivideError = 0,
  kBreakpoint = 3,
  kOverflow = 4,
  kBoundRange = 5,
  kInvalidOpcode = 6,
  kDeviceNotAvailable = 7,
  kDoubleFault = 8,
  kInvalidTss = 10,
  kSegmentNotPresent = 11,
  kStackFault = 12,
  kGeneralProtection = 13,
  kPageFault = 14,
  kX87Error = 16,
  kAlignmentCheck = 17,
  kSimdError = 19,
};

// The guest's page size, for the runtime's walks and page-by-page copies.
inline constexpr std::uint32_t kPageSize = mmu::PhysicalMemory::kPageSize;

// Exceptions that push an error code (SDM Vol. 3, table 6-1).
constexpr bool ExceptionHasErrorCode(std::uint8_t vector) {
  return vector == 8 || (vector >= 10 && vector <= 14) || vector == 17 || vector == 21;
}

// A fault raised while delivering or returning from `cause`, with the EXT
// bit in its error code when `cause` came from outside the program.
GuestEvent FaultDuring(const GuestEvent& cause, std::uint8_t vector, std::uint32_t error_code);
// What a fault found while running `insn` is raised during: itself, as far
// as FaultDuring is concerned.
GuestEvent InstructionCause(const decoder::DecodedInstruction& insn);
// The fault of an access outside data segment `segment` (SDM Vol. 3A 6.15):
// #SS(0) through SS, #GP(0) through the others.
std::uint8_t LimitFault(unsigned segment);

class Vcpu final : private translator::CodeSource {
 public:
  struct Parts {
    mmu::PhysicalMemory& memory;
    mmu::ShadowMmu& mmu;
    devices::PortBus& ports;
    devices::MmioBus& mmio;
    translator::CodeCache& cache;
    translator::Translator& translator;
    const translator::Trampolines& trampolines;
    const decoder::Decoder& decoder;
    devices::Pic8259Pair& pic;
    // The devices that move with time (PIT, RTC): the vCPU advances each when
    // its deadline comes, and listens for the deadlines guest writes move.
    std::span<devices::TimedDevice* const> timed_devices;
  };

  static Result<std::unique_ptr<Vcpu>> Create(const Parts& parts);
  ~Vcpu();

  StopInfo Run(const RunLimits& limits);
  // Thread-safe.
  void RequestStop() { Interrupt(StopReason::kStopRequested); }
  // Called by the debug-exit device on the vCPU thread.
  void DebugExit(std::uint32_t value);
  // Called on the vCPU thread by a device that resets the machine (a port
  // write): the run stops with kReset after the instruction that wrote.
  void StopForReset();
  // Device listener: the PIC's INTR output may have risen.
  static void OnInterruptRequest(void* self);
  // Thread-safe: a device has work for the vCPU thread (host input came in).
  // The run loop calls the device service before it next delivers an
  // interrupt or runs guest code, waking a halted guest for it.
  static void OnDeviceAttention(void* self);
  using DeviceService = void (*)(void* context);
  void SetDeviceService(DeviceService service, void* context) {
    device_service_ = service;
    device_service_context_ = context;
  }

  CpuState& state() { return *state_; }
  const CpuState& state() const { return *state_; }
  const VcpuCounters& counters() const { return counters_; }
  // Bit n set: exception n stops the run instead of reaching the guest.
  void set_intercepted_exceptions(std::uint32_t mask) { intercepted_exceptions_ = mask; }
  // Drops translations of guest-physical [address, address + bytes) after the
  // VMM wrote there behind the window's back.
  void InvalidatePhysical(std::uint64_t address, std::uint64_t bytes);

  // The CR0 hook: call it after every change of CpuState::cr0 (mov to CR0,
  // clts, lmsw, task switches), with the value before the change, from a
  // callout that then leaves translated code (ExitWith(std::nullopt,
  // next EIP)). Translations depend on CR0.TS, EM and MP: x87/MMX/SSE
  // instructions run natively unless those make them fault, so units are
  // keyed on translator::UnitMode(cr0, cr4) (see fpu_mode.cc). The hook switches
  // the inline indirect-branch table to the new mode at once; the
  // dispatcher's next lookup would notice a missed change too, and units
  // never chain across modes, so the exit is what makes the new mode take
  // effect at the next instruction. PG and WP reshape the shadow MMU
  // (UpdatePagingMode).
  void OnCr0Changed(std::uint32_t old_cr0);

 private:
  Vcpu(const Parts& parts, platform::PageMemory state_memory);

  // CodeSource
  const std::uint8_t* CodePage(std::uint32_t page_base, std::uint32_t* physical_page) override;
  translator::Adaptation AdaptationAt(std::uint32_t eip) override;

  // Adaptive translation of memory operands (adaptive.cc).
  struct AdaptiveRecord {
    std::uint32_t recent_pages[4] = {~0u, ~0u, ~0u, ~0u};  // linear pages faulted on
    std::uint8_t next_recent = 0;
    std::uint8_t reverts = 0;
    std::uint16_t repeats = 0;  // faults on one of recent_pages
    bool resolved = false;
    bool device = false;  // has reached an address without RAM: stays resolved
    // Resolved runs: those on the page, frame and address space of the run
    // before (which a shadow mapping would have served natively), and the
    // others, each of which may have spared a fault.
    std::uint32_t runs_on_mapped_page = 0;
    std::uint32_t runs_sparing_a_fault = 0;
    std::uint32_t last_page = ~0u;
    std::uint32_t last_frame = 0;
    std::uint64_t generation = 0;
    // Divisions: #DE host traps, checks since the last #DE, and whether a
    // callout checks before the division.
    std::uint16_t divide_faults = 0;
    std::uint8_t divide_reverts = 0;
    bool check_divide = false;
    std::uint32_t checks_without_fault = 0;
  };
  // Decodes the instruction at linear `eip`; false if it cannot be fetched.
  bool DecodeAt(std::uint32_t eip, decoder::DecodedInstruction& insn);
  // The record of `eip`, made if there is none; past kMaxTracked records
  // the tracking starts over.
  AdaptiveRecord& TrackedRecord(std::uint32_t eip);
  // A host fault in the window at `linear`, from the instruction at `eip`.
  void NoteMemoryFault(std::uint32_t eip, std::uint32_t linear);
  // The instruction at `eip` reached an address without RAM: resolves it
  // for good, so that it reaches the device through the MMIO bus. False if
  // the instruction is not one the translator can resolve.
  bool ResolveForDevice(std::uint32_t eip);
  // A #DE host trap from the division at `eip`.
  void NoteDivideFault(std::uint32_t eip);
  bool CheckDivide(const decoder::DecodedInstruction& insn);  // kCheckDivide
  // Drops the translations holding the instruction at `eip`, so that it is
  // translated again with its current adaptive choices.
  void RetranslateInstruction(std::uint32_t eip);
  // Changes with every CR3 load and full shadow flush.
  std::uint64_t AddressSpaceGeneration() const;
  bool ResolveMemory(const decoder::DecodedInstruction& insn);  // kResolveMemory
  bool ReleaseMemory();                                         // kReleaseMemory
  // ResolveMemory's part for an operand at `physical`, outside RAM.
  bool ResolveDevice(const decoder::DecodedInstruction& insn, std::uint64_t physical,
                     AdaptiveRecord* record);

  TranslationUnit* FindOrTranslate(std::uint32_t eip, bool one_shot);
  // Fills the indirect-branch table's slot for `unit`.
  void RememberIndirectTarget(TranslationUnit& unit);
  // May `owner`'s exit jump straight into `target`, and what may break the
  // chain? With paging, a chain within the owner's pages is as good as the
  // owner (whose mapping was checked when it was entered); one into another
  // page holds until that page's translation may change: for a global page
  // an invlpg of it or a paging-mode change, for others also a CR3 load.
  std::optional<translator::ChainScope> ChainScopeOf(const TranslationUnit& owner,
                                                     const TranslationUnit& target);
  // Whether `unit`'s pages are all global, if each is still mapped to the
  // frame it was translated from.
  std::optional<bool> CodePagesGlobal(const TranslationUnit& unit);
  // The lookup of the unit at EIP failed: deliver the fetch fault, or stop.
  std::optional<StopInfo> LookupFailed();
  void ForgetUnit(const TranslationUnit& unit);
  // Drops the translations of guest-physical `page` and lets the guest
  // write it again.
  void InvalidateCodePage(std::uint32_t page);
  // Grants or revokes access to the poll page (see kPollOffset).
  void SetPollPage(platform::Protection protection) {
    state_memory_.Protect(translator::kCpuStateBytes, kPageSize, protection);
  }
  void Interrupt(StopReason reason);
  std::optional<StopInfo> HandleExit(translator::ExitReason reason);
  StopInfo MakeStop(StopReason reason, std::string message);
  StopInfo MakeInstructionStop(StopReason reason, const decoder::DecodedInstruction& insn,
                               const std::string& what);
  void WaitWhileHalted();
  // Runs in the thread that enforces the time budget and the timed devices'
  // deadlines while the vCPU runs translated code.
  void WatchEvents(std::chrono::steady_clock::time_point budget_deadline);
  // Advances every timed device to now.
  void ServiceTimers();
  // A timed device's deadline listener: `timer` (a TimerSlot) moved to
  // `deadline`.
  static void OnTimerDeadline(void* timer, std::chrono::steady_clock::time_point deadline);
  // The earliest deadline of timers_ (under events_mutex_).
  std::chrono::steady_clock::time_point EarliestTimerDeadline() const;
  // Delivers the PIC's interrupt if the guest accepts one now.
  std::optional<StopInfo> DeliverExternalInterrupt();

  // Host faults (signal context).
  static bool OnHostFault(void* self, platform::HostFault& fault);
  bool HandleHostFault(platform::HostFault& fault);
  bool HandleCodeWrite(platform::HostFault& fault, std::uint32_t page);
  // A host fault at `linear` in the guest window: a shadow miss, a code
  // write or a guest #PF.
  bool HandleWindowFault(platform::HostFault& fault, const TranslationUnit* unit,
                         std::uint32_t linear, mmu::View view);
  void ExitFromFault(platform::HostFault& fault, const TranslationUnit& unit,
                     translator::ExitReason reason, std::uint32_t vector);

  // Callouts (callouts.cc).
  static bool OnCallout(void* self, CpuState* state, const void* record);
  bool HandleCallout(const decoder::DecodedInstruction& insn);
  bool EmulateLegacy(const decoder::DecodedInstruction& insn);  // legacy_instructions.cc
  bool ExitWith(std::optional<StopInfo> stop, std::uint32_t eip);
  // Ends the callout with `event` to deliver (interrupts.cc).
  bool Raise(const GuestEvent& event);
  bool RaiseFault(std::uint8_t vector, const decoder::DecodedInstruction& insn,
                  std::uint32_t error_code = 0);
  bool Iret(const decoder::DecodedInstruction& insn);
  // Far jmp and call (far_transfer.cc).
  bool FarTransfer(const decoder::DecodedInstruction& insn, std::uint16_t selector,
                   std::uint32_t offset, bool call);
  bool TransferThroughCallGate(const decoder::DecodedInstruction& insn, std::uint16_t selector,
                               const Descriptor& gate, bool call);
  // Task switches (task_switch.cc).
  //
  // What started a task switch: it decides the busy bits, the back link and
  // NT (SDM Vol. 3A table 7-2).
  enum class TaskSwitch : std::uint8_t { kJmp, kCall, kIret, kInterrupt };
  // Far jmp or call to the TSS or task gate `descriptor` that `selector`
  // names.
  bool TransferToTask(const decoder::DecodedInstruction& insn, std::uint16_t selector,
                      const Descriptor& descriptor, bool call);
  // iret with EFLAGS.NT: back to the task in the current TSS's back link.
  bool ReturnToPreviousTask(const decoder::DecodedInstruction& insn);
  // Ends the callout of `insn`, whose stack access faulted (#PF) or lies
  // outside RAM (the run stops).
  bool StackOutsideRam(const decoder::DecodedInstruction& insn);
  // System instructions (system_instructions.cc).
  // The 16-bit selector operand of `insn` (register or memory); false if
  // reading it faulted (access_fault_) or reached no RAM.
  bool ReadSelectorOperand(const decoder::DecodedInstruction& insn, std::uint16_t& selector);
  // Ends the callout of `insn`, whose memory operand faulted (#PF) or lies
  // outside RAM (the run stops).
  bool OperandOutsideRam(const decoder::DecodedInstruction& insn);
  bool StoreSystemRegister(const decoder::DecodedInstruction& insn);    // sgdt sidt sldt str smsw
  bool LoadMachineStatusWord(const decoder::DecodedInstruction& insn);  // lmsw clts
  bool LoadSystemSegment(const decoder::DecodedInstruction& insn);      // lldt ltr
  bool CheckSegment(const decoder::DecodedInstruction& insn);           // lar lsl verr verw
  bool MoveDebugRegister(const decoder::DecodedInstruction& insn);      // mov to/from DRn
  // The #NM or #UD of an x87/MMX/SSE instruction under CR0.TS/EM (fpu_mode.cc).
  bool RaiseFpuUnavailable(const decoder::DecodedInstruction& insn);
  // rdmsr and wrmsr (msrs.cc).
  bool ReadMsr(const decoder::DecodedInstruction& insn);
  bool WriteMsr(const decoder::DecodedInstruction& insn);
  std::uint64_t GuestTsc() const;
  // sysenter and sysexit (sysenter.cc).
  bool Sysenter(const decoder::DecodedInstruction& insn);
  bool Sysexit(const decoder::DecodedInstruction& insn);
  // The UnitKey::mode translations must have now; entering new CR0 or CR4
  // bits empties the inline indirect-branch table (fpu_mode.cc).
  std::uint32_t CurrentUnitMode();
  // Refreshes CpuState::segment_bounds from CS if it is not flat; returns
  // translator::kModeCodeSegment then (code_segment.cc).
  std::uint32_t CodeSegmentMode();
  // Segment bases and limits (segment_access.cc).
  //
  // Refreshes CpuState::segment_bounds from the data segments that are not
  // flat; returns their kModeCheckedSegment bits.
  std::uint32_t SegmentMode();
  // Ends the callout that loaded segment `index`: on in translated code,
  // unless it loaded SS or changed what the unit assumed of its segments.
  bool AfterSegmentLoad(unsigned index, std::uint32_t next_eip);
  // The first access through FS or GS in the current view (kSegmentUse).
  bool UseSegment(const decoder::DecodedInstruction& insn);
  // Raises #GP(0), or #SS(0) for SS, when the memory operand of a callout
  // that accesses it lies outside its segment; true if it did.
  bool OperandOutsideLimit(const decoder::DecodedInstruction& insn);
  // The linear address of SS:`offset` for an access of `bytes` (> 0) to the
  // current stack, or nullopt outside SS's bounds (#SS).
  std::optional<std::uint32_t> StackAddress(std::uint32_t offset, std::uint32_t bytes,
                                            bool write) const;
  bool CheckString(const decoder::DecodedInstruction& insn);  // kStringCheck
  bool EmulateString(const decoder::DecodedInstruction& insn);
  // Elements of a string instruction the runtime runs in one callout; a
  // rep with more leaves translated code and runs on from the instruction.
  static constexpr std::uint32_t kStringElementsPerCallout = 16384;
  // ins and outs (port_string.cc), once the I/O permission check allowed
  // `port`.
  bool PortString(const decoder::DecodedInstruction& insn, std::uint16_t port);

  // Interrupt and exception delivery (interrupts.cc).
  enum class Delivery : std::uint8_t { kDone, kNestedFault, kStop };
  std::optional<StopInfo> Deliver(GuestEvent event);
  Delivery DeliverOnce(const GuestEvent& event, GuestEvent& nested);
  // Delivers `event` through the task gate `gate` (task_switch.cc).
  Delivery DeliverThroughTaskGate(const GuestEvent& event, const Descriptor& gate,
                                  GuestEvent& nested);
  // Reads the descriptor of the TSS a task switch from `source` goes to:
  // #GP(selector), or #TS for an iret, unless it is a 32-bit TSS in the GDT
  // that is busy for an iret and available otherwise; #NP if not present.
  Delivery ReadTssDescriptor(std::uint16_t selector, TaskSwitch source, const GuestEvent& cause,
                             Descriptor& tss, GuestEvent& nested);
  // Switches to the task of the checked TSS `tss` (SDM Vol. 3A 7.3), saving
  // `return_eip` as the old task's EIP. Faults before the commit point are
  // raised during `cause`; those after it in the new task, at its first
  // instruction.
  Delivery SwitchTask(std::uint16_t selector, const Descriptor& tss, TaskSwitch source,
                      std::uint32_t return_eip, const GuestEvent& cause, GuestEvent& nested);
  // Sets or clears the busy bit of the TSS descriptor `selector` names in
  // the GDT; false if the GDT access failed.
  bool MarkTssBusy(std::uint16_t selector, bool busy);
  // `cause` as a fault raised in the task now current reports it: at the
  // EIP the task starts at.
  GuestEvent InCurrentTask(const GuestEvent& cause) const;
  // Paging (paging.cc): control-register loads, invlpg, guest #PF.
  bool LoadControlRegister(const decoder::DecodedInstruction& insn);
  // Loads CR3 as mov to CR3 does, which drops the shadow MMU's non-global
  // mappings when paging is on.
  void LoadCr3(std::uint32_t value);
  bool Invlpg(const decoder::DecodedInstruction& insn);
  // Hands the paging control registers and IA32_EFER.NXE to the MMU; drops
  // what depended on the old linear-to-physical mapping.
  void UpdatePagingMode();
  // The CPL hook: call it after every change of the CPL (interrupt
  // delivery, iret, far transfers, sysenter, sysexit, task switches) once
  // CS holds the new one, after CR0.PG changes and after a CR3 load (which
  // may switch shadow spaces). Puts GS on the guest window of the current
  // privilege level's view.
  void OnPrivilegeChanged();
  // The view code at the current privilege level runs in.
  mmu::View CurrentView() const { return parts_.mmu.ViewFor(state_->Cpl()); }
  void OnAddressSpaceChanged();
  // What survives a CR3 load (global pages), and what an invlpg of
  // `linear` takes.
  void OnCr3Loaded();
  void OnPageInvalidated(std::uint32_t linear);
  // Empties the return stack (translator::kReturnStackGuardOffset) but for
  // the running callout's own return address, so that no return goes on in
  // a caller's unit translated under mappings changed since.
  void ForgetReturns();
  // At iret: if the guest's handler made the access that took the last #PF
  // valid, maps its page now, which spares the retry a host fault.
  void MapAfterPageFault();
  // A #PF event for `fault` at the instruction at `eip`; sets CR2.
  GuestEvent PageFaultEvent(const LinearFault& fault, std::uint32_t eip);
  // Ends the callout of `insn` with the #PF its last guest access found.
  bool RaiseAccessFault(const decoder::DecodedInstruction& insn);
  // Copies between `data` and guest linear memory, through the page tables
  // of `view` when paging is on. False if the access faults (then
  // access_fault_ holds the #PF) or reaches no RAM.
  bool AccessGuest(std::uint32_t address, void* data, std::size_t bytes, bool write,
                   mmu::View view);
  // Where an access of at most two pages lies in guest RAM.
  struct GuestPieces {
    struct Piece {
      std::uint64_t physical;
      std::size_t bytes;
    } piece[2];
    unsigned count = 0;
  };
  // AccessGuest's checks and page walks (which set the accessed and dirty
  // bits) without the copy, which CopyGuest then makes.
  bool LocateGuest(std::uint32_t address, std::size_t bytes, bool write, mmu::View view,
                   GuestPieces& pieces);
  void CopyGuest(const GuestPieces& pieces, void* data, bool write);

  // A guest access failed while delivering `cause`: a #PF in `nested`, or
  // a stop for an access outside RAM.
  Delivery AccessFailedDuring(const GuestEvent& cause, const char* outside_ram, GuestEvent& nested);
  // Descriptor tables and segment loads (segments.cc).
  //
  // The linear address of the descriptor `selector` names in the GDT or,
  // with TI set, in the LDT; false if it lies outside the table or the LDTR
  // is null.
  bool DescriptorAddress(std::uint16_t selector, std::uint32_t& address) const;
  // Reads the descriptor `selector` names; a selector outside its table
  // gives `vector`(selector) in `nested`.
  Delivery ReadDescriptor(std::uint16_t selector, const GuestEvent& cause, Descriptor& descriptor,
                          GuestEvent& nested, std::uint8_t vector = kGeneralProtection);
  // Loads segment register `index` from `selector` at privilege `cpl`. A
  // selector the register may not hold gives `invalid`(selector) in
  // `nested` (#GP for instructions, #TS for a task switch), a segment not
  // present #NP(selector), #SS for SS.
  Delivery LoadSegmentRegister(unsigned index, std::uint16_t selector, unsigned cpl,
                               std::uint8_t invalid, const GuestEvent& cause, GuestEvent& nested);

  // Segment checks of control transfers between privilege levels
  // (privilege.cc). Each gives kDone, a fault in `nested` or a stop.
  //
  // Reads the descriptor of code segment `selector` (#GP(0) if null).
  Delivery ReadCodeSegment(std::uint16_t selector, const GuestEvent& cause, Descriptor& code,
                           GuestEvent& nested);
  // Checks that `code` may run at privilege `cpl` after a transfer through
  // a gate or a return.
  Delivery CheckCodeSegment(const Descriptor& code, std::uint16_t selector, unsigned cpl,
                            const GuestEvent& cause, GuestEvent& nested);
  // Checks `selector` as the stack segment of privilege `cpl`: unusable ones
  // give `vector` (#TS for a stack switch into an inner level, #GP for a
  // return to an outer one), a not-present one #SS.
  Delivery CheckStackSegment(std::uint16_t selector, unsigned cpl, std::uint8_t vector,
                             const GuestEvent& cause, Descriptor& stack, GuestEvent& nested);
  // The SS:ESP for privilege `cpl` from the current TSS (SDM Vol. 3A 6.12.1).
  Delivery ReadTssStack(unsigned cpl, const GuestEvent& cause, std::uint16_t& ss,
                        std::uint32_t& esp, GuestEvent& nested);
  // Where iret and far ret return to: CS, and for an outer privilege level
  // also SS:ESP.
  struct ReturnTarget {
    translator::SegmentState cs, ss;
    std::uint32_t esp = 0;
    bool outer = false;
  };
  // The checks iret and far ret share (SDM Vol. 2, IRET and RET): CS from
  // the popped `cs`, which may not be more privileged than the CPL; for a
  // less privileged one, SS:ESP popped from offset `stack` in SS with
  // `size`-byte pops; then the popped `eip` against CS's limit.
  Delivery CheckReturn(std::uint16_t cs, std::uint32_t eip, std::uint32_t stack, unsigned size,
                       const GuestEvent& cause, ReturnTarget& target, GuestEvent& nested);
  // Loads CS and, for an outer level, SS (the caller sets ESP); then nulls
  // the data segment registers the new CPL may not use.
  void LoadReturnSegments(const ReturnTarget& target);
  // Ends a callout whose check gave a fault or a stop.
  bool FailCheck(Delivery result, const GuestEvent& nested,
                 const decoder::DecodedInstruction& insn);
  // A stop for a segment libbt cannot run yet in CS or SS: a 16-bit one.
  Delivery UnsupportedSegment(std::uint16_t selector, const Descriptor& descriptor);
  // EFLAGS bits of `mask` that popf and iret may change at the current CPL
  // and IOPL.
  std::uint32_t ChangeableFlags(std::uint32_t mask) const;
  // May the current CPL access `bytes` ports from `port` (SDM Vol. 1,
  // 19.5)? False with access_fault_ set if reading the TSS faulted.
  bool IoPermitted(std::uint16_t port, unsigned bytes);
  // LoadSegmentRegister for `insn` at the CPL: false if it raised a fault
  // or stopped.
  bool LoadSegment(unsigned index, std::uint16_t selector, const decoder::DecodedInstruction& insn);
  void HoldInterruptsAfterStackLoad(unsigned segment);
  // Guest memory as the CPU's implicit supervisor accesses reach it:
  // descriptor tables, the TSS, interrupt and inner-ring stacks.
  bool ReadGuest(std::uint32_t address, void* data, std::size_t bytes);
  bool WriteGuest(std::uint32_t address, const void* data, std::size_t bytes);
  // Guest memory as an instruction's own operands and stack reach it: with
  // paging, user-mode accesses at CPL 3 (U/S and R/W checked, #PF with U).
  bool ReadOperand(std::uint32_t address, void* data, std::size_t bytes);
  bool WriteOperand(std::uint32_t address, const void* data, std::size_t bytes);
  std::uint32_t ReadRegister(std::uint8_t reg, unsigned size) const;
  void WriteRegister(std::uint8_t reg, unsigned size, std::uint32_t value);

  Parts parts_;
  platform::PageMemory state_memory_;
  CpuState* state_;
  IndirectTable indirect_;
  // The translator::UnitMode of every unit the indirect-branch table points
  // to; the table's salt tells the other bits of their UnitKey::mode apart.
  std::uint32_t indirect_mode_ = 0;
  // The translator::kModeUsesFs and kModeUsesGs bits of the supervisor and
  // the user view.
  std::uint32_t segments_used_[2] = {};
  VcpuCounters counters_;
  std::optional<StopInfo> pending_stop_;
  std::optional<GuestEvent> pending_event_;
  // The UnitKey::mode of the unit whose callout is running.
  std::uint32_t unit_mode_ = 0;
  // Linear code pages already walked for execution, by view (CodePage);
  // emptied with the indirect-branch table when translations may change.
  struct CodeTlbEntry {
    std::uint32_t tag = 0;  // (linear page << 1 | user view) + 1; 0 is empty
    std::uint32_t physical_page = 0;
    bool global = false;  // survives CR3 loads (G with CR4.PGE)
  };
  // The entry for the code page of `eip`, walked now if not cached; null if
  // it cannot be fetched.
  const CodeTlbEntry* CodePageEntry(std::uint32_t eip);
  CodeTlbEntry code_tlb_[64];
  // The #PF the last VMM access or code fetch found, if it faulted.
  std::optional<LinearFault> access_fault_;
  // The last unit lookup failed on CS's limit: #GP(0) at EIP.
  bool beyond_code_limit_ = false;
  // The error code of a #PF found by a host fault in translated code.
  std::uint32_t host_page_fault_error_ = 0;
  // The access in the window that last took a guest #PF: the guest's
  // handler usually maps the page and returns to retry it.
  struct FaultedAccess {
    std::uint32_t linear;
    bool write;
    mmu::View view;
  };
  std::optional<FaultedAccess> faulted_access_;
  // Instructions that faulted in the window, by EIP (adaptive.cc). Code
  // segments with other bases share the records of an offset, which only
  // choose how an instruction is translated.
  std::unordered_map<std::uint32_t, AdaptiveRecord> adaptive_;
  // GS may point into the VMM's mapping of guest RAM (ResolveMemory).
  bool memory_resolved_ = false;
  // A device access in progress: the instruction runs on device_bytes_,
  // which ReleaseMemory writes back to the device if the operand is written.
  struct DeviceAccess {
    std::uint64_t physical = 0;
    std::uint32_t bytes = 0;
    bool written = false;
  };
  std::optional<DeviceAccess> device_access_;
  alignas(16) std::uint8_t device_bytes_[64] = {};
  std::uint32_t intercepted_exceptions_ = 0;
  bool one_shot_next_ = false;
  bool halted_ = false;
  // Between entering translated code and its exit, callouts included.
  bool in_translated_code_ = false;
  // Set by sti and SS loads: the next instruction runs before any interrupt.
  bool interrupt_shadow_ = false;
  // Set when a timed device's deadline passed or the PIC raised INTR;
  // checked where the dispatcher gets control.
  std::atomic<bool> timer_due_{false};
  std::atomic<bool> interrupt_requested_{false};
  std::atomic<bool> device_attention_{false};
  DeviceService device_service_ = nullptr;
  void* device_service_context_ = nullptr;
  TranslationUnit* next_unit_ = nullptr;

  std::atomic<int> interrupt_{-1};  // a StopReason, or -1
  std::mutex wake_mutex_;
  std::condition_variable wake_;
  // The event thread's schedule (under events_mutex_).
  std::mutex events_mutex_;
  std::condition_variable events_wake_;
  // One per timed device, with its next deadline (under events_mutex_).
  // Filled once at construction: the devices' listeners point into it.
  struct TimerSlot {
    Vcpu* vcpu;
    devices::TimedDevice* device;
    std::chrono::steady_clock::time_point deadline;
  };
  std::vector<TimerSlot> timers_;
  // The earliest of their deadlines.
  std::chrono::steady_clock::time_point timer_deadline_ =
      std::chrono::steady_clock::time_point::max();
  bool running_ = false;
};

// CPUID as the guest sees it: the host's, less what libbt does not support.
void GuestCpuid(std::uint32_t leaf, std::uint32_t subleaf, std::uint32_t out[4]);

// The MXCSR bits this CPU implements (FXSAVE's MXCSR_MASK); guest FPU state
// is restored with FXRSTOR, which faults on any other bit.
std::uint32_t HostMxcsrMask();

}  // namespace bt::runtime
