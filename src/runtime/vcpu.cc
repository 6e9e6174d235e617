#include "runtime/vcpu.h"

#include "runtime/guest_fpu.h"

#include <chrono>
#include <cstdio>
#include <thread>

namespace bt::runtime {

using translator::ExitLink;
using translator::ExitReason;
using translator::Fixup;
using translator::Translator;

namespace {

// Host register (x86 encoding) holding each guest register.
constexpr unsigned kHostRegisterOf[8] = {0, 1, 2, 3, 12, 5, 6, 7};
constexpr unsigned kHostRsp = 4, kHostRsi = 6, kHostRdi = 7, kHostR9 = 9;

template <class E>
constexpr std::size_t Index(E value) {
  return static_cast<std::size_t>(value);
}

}  // namespace

Result<std::unique_ptr<Vcpu>> Vcpu::Create(const Parts& parts) {
  auto state =
      platform::PageMemory::Allocate(translator::kCpuBlockBytes, platform::Protection::kReadWrite);
  if (!state) return Error{state.error()};
  return std::unique_ptr<Vcpu>(new Vcpu(parts, std::move(state.value())));
}

Vcpu::Vcpu(const Parts& parts, platform::PageMemory state_memory)
    : parts_(parts),
      state_memory_(std::move(state_memory)),
      state_(new (state_memory_.data()) CpuState()),
      indirect_(reinterpret_cast<translator::IndirectEntry*>(state_memory_.data() +
                                                             translator::kIndirectTableOffset),
                parts.trampolines.exit_indirect) {
  state_->window_base =
      reinterpret_cast<std::uint64_t>(parts_.mmu.window(mmu::View::kSupervisor).base());
  state_memory_.Protect(translator::kReturnStackGuardOffset, translator::kReturnStackGuardBytes,
                        platform::Protection::kNone);
  auto* sentinel_slot =
      reinterpret_cast<const std::uint8_t**>(state_memory_.data() + translator::kCpuBlockBytes - 8);
  *sentinel_slot = parts.trampolines.return_sentinel;
  state_->return_stack_empty = reinterpret_cast<std::uint64_t>(sentinel_slot);
  state_->callout_handler = reinterpret_cast<std::uint64_t>(&Vcpu::OnCallout);
  state_->runtime = reinterpret_cast<std::uint64_t>(this);
  // FNINIT/reset values: FCW 0x037F, MXCSR 0x1F80 (SDM Vol. 1, 10.5.1).
  state_->guest_fpu[0] = 0x7F;
  state_->guest_fpu[1] = 0x03;
  state_->guest_fpu[24] = 0x80;
  state_->guest_fpu[25] = 0x1F;
  parts_.cache.SetInvalidationListener(
      [](void* self, const TranslationUnit& unit) { static_cast<Vcpu*>(self)->ForgetUnit(unit); },
      this);
  timers_.reserve(parts_.timed_devices.size());
  for (devices::TimedDevice* device : parts_.timed_devices) {
    timers_.push_back({this, device, std::chrono::steady_clock::time_point::max()});
    device->SetDeadlineListener(&Vcpu::OnTimerDeadline, &timers_.back());
  }
}

Vcpu::~Vcpu() {
  parts_.cache.SetInvalidationListener(nullptr, nullptr);
  for (const TimerSlot& timer : timers_) timer.device->SetDeadlineListener(nullptr, nullptr);
}

void Vcpu::RememberIndirectTarget(TranslationUnit& unit) {
  // Entries are found by EIP alone, which is linear only in a flat CS;
  // units of another CS do not look entries up either (kModeCodeSegment).
  if (unit.key.mode & translator::kModeCodeSegment) return;
  const std::optional<bool> global = CodePagesGlobal(unit);
  if (!global) return;
  indirect_.Fill(unit.key.eip, translator::IndirectSalt(unit.key.mode), unit.code, *global);
}

void Vcpu::ForgetUnit(const TranslationUnit& unit) { indirect_.Forget(unit.key.eip, unit.code); }

void Vcpu::InvalidateCodePage(std::uint32_t page) {
  counters_.smc_invalidations += parts_.cache.InvalidatePage(page);
  parts_.mmu.UnprotectCode(page);
}

void Vcpu::InvalidatePhysical(std::uint64_t address, std::uint64_t bytes) {
  if (bytes == 0) return;
  for (std::uint64_t page = address / kPageSize; page <= (address + bytes - 1) / kPageSize;
       ++page) {
    if (page >= parts_.mmu.page_count()) break;
    InvalidateCodePage(static_cast<std::uint32_t>(page));
  }
}

TranslationUnit* Vcpu::FindOrTranslate(std::uint32_t eip, bool one_shot) {
  access_fault_.reset();
  beyond_code_limit_ = false;
  translator::UnitKey key{eip, CurrentUnitMode(), 0};
  if (key.mode & translator::kModeCodeSegment) {
    key.code_base = state_->segment[translator::kCs].base;
    key.code_limit = state_->segment[translator::kCs].limit;
    // Segmentation comes before paging: no page walk for a fetch past the
    // limit (SDM Vol. 3A 5.3).
    if (eip > key.code_limit) {
      beyond_code_limit_ = true;
      return nullptr;
    }
  }
  const std::uint32_t linear = key.Linear();
  auto no_code = [&] {
    if (access_fault_) return;  // LookupFailed raises the fetch fault
    char text[96];
    std::snprintf(text, sizeof(text), "execution at 0x%08x, where there is no RAM", linear);
    pending_stop_ = MakeStop(StopReason::kGuestException, text);
    pending_stop_->vector = kPageFault;
  };
  if (!CodePage(linear & ~(kPageSize - 1), &key.physical_page)) {
    if (access_fault_) access_fault_->address = linear;
    no_code();
    return nullptr;
  }
  if (!one_shot) {
    ++counters_.cache_lookups;
    if (TranslationUnit* unit = parts_.cache.Lookup(key)) {
      // A unit whose last instruction runs into the next page found it
      // where it is now only if that page is still mapped the same.
      std::uint32_t next_page = 0;
      if (unit->page_count == 1 || (CodePage((linear | (kPageSize - 1)) + 1, &next_page) &&
                                    next_page == unit->physical_page[1])) {
        ++counters_.cache_hits;
        return unit;
      }
      InvalidateCodePage(unit->physical_page[1]);
    }
    ++counters_.cache_misses;
  }
  TranslationUnit* unit = nullptr;
  Translator::Status status = parts_.translator.Translate(key, one_shot, *this, &unit);
  if (status == Translator::Status::kCacheFull) {
    parts_.cache.Flush();
    indirect_.Clear();
    status = parts_.translator.Translate(key, one_shot, *this, &unit);
  }
  if (status == Translator::Status::kBeyondLimit) {
    beyond_code_limit_ = true;
    return nullptr;
  }
  if (status != Translator::Status::kOk) {
    no_code();
    return nullptr;
  }
  if (unit->cached) {
    for (unsigned i = 0; i < unit->page_count; ++i) {
      parts_.mmu.ProtectCode(unit->physical_page[i]);
    }
  }
  return unit;
}

StopInfo Vcpu::MakeStop(StopReason reason, std::string message) {
  StopInfo stop;
  stop.reason = reason;
  stop.eip = state_->eip;
  stop.message = std::move(message);
  return stop;
}

StopInfo Vcpu::MakeInstructionStop(StopReason reason, const decoder::DecodedInstruction& insn,
                                   const std::string& what) {
  char where[48];
  std::snprintf(where, sizeof(where), " at eip=0x%08x", insn.eip);
  StopInfo stop = MakeStop(reason, what + " " + decoder::HexBytes(insn) + " (" +
                                       parts_.decoder.Disassemble(insn) + ")" + where);
  stop.eip = insn.eip;
  stop.instruction_length = insn.length;
  std::copy(insn.bytes, insn.bytes + insn.length, stop.instruction_bytes.begin());
  return stop;
}

void Vcpu::Interrupt(StopReason reason) {
  int expected = -1;
  interrupt_.compare_exchange_strong(expected, static_cast<int>(reason));
  // Running code notices at its next event poll (see kPollOffset).
  SetPollPage(platform::Protection::kNone);
  std::lock_guard lock(wake_mutex_);
  wake_.notify_all();
}

void Vcpu::DebugExit(std::uint32_t value) {
  char text[64];
  std::snprintf(text, sizeof(text), "guest wrote 0x%x to the debug-exit port", value);
  pending_stop_ = MakeStop(StopReason::kDebugExit, text);
  pending_stop_->exit_value = value;
}

void Vcpu::StopForReset() {
  pending_stop_ = MakeStop(StopReason::kReset, "the guest reset the machine");
}

void Vcpu::WaitWhileHalted() {
  std::unique_lock lock(wake_mutex_);
  wake_.wait(lock, [this] {
    return interrupt_.load() >= 0 || timer_due_.load() || interrupt_requested_.load() ||
           device_attention_.load();
  });
}

void Vcpu::OnInterruptRequest(void* self) {
  auto* vcpu = static_cast<Vcpu*>(self);
  vcpu->interrupt_requested_ = true;
  // Device activity inside a callout: make running code come back to the
  // dispatcher at its next event poll. The dispatcher itself (timers,
  // device service) looks for interrupts before it enters code again, and
  // an mprotect and a host fault per timer tick would be wasted.
  if (vcpu->in_translated_code_) vcpu->SetPollPage(platform::Protection::kNone);
}

void Vcpu::OnDeviceAttention(void* self) {
  auto* vcpu = static_cast<Vcpu*>(self);
  vcpu->device_attention_ = true;
  // Set before the poll page is revoked, so that the dispatcher, which gives
  // the page back before it looks at the flags, cannot miss it.
  vcpu->SetPollPage(platform::Protection::kNone);
  std::lock_guard lock(vcpu->wake_mutex_);
  vcpu->wake_.notify_all();
}

void Vcpu::OnTimerDeadline(void* timer, std::chrono::steady_clock::time_point deadline) {
  auto* slot = static_cast<TimerSlot*>(timer);
  Vcpu* vcpu = slot->vcpu;
  {
    std::lock_guard lock(vcpu->events_mutex_);
    slot->deadline = deadline;
    vcpu->timer_deadline_ = vcpu->EarliestTimerDeadline();
  }
  vcpu->events_wake_.notify_all();
}

std::chrono::steady_clock::time_point Vcpu::EarliestTimerDeadline() const {
  auto earliest = std::chrono::steady_clock::time_point::max();
  for (const TimerSlot& timer : timers_) earliest = std::min(earliest, timer.deadline);
  return earliest;
}

void Vcpu::WatchEvents(std::chrono::steady_clock::time_point budget_deadline) {
  using Clock = std::chrono::steady_clock;
  std::unique_lock lock(events_mutex_);
  while (running_) {
    const Clock::time_point deadline = std::min(budget_deadline, timer_deadline_);
    if (deadline == Clock::time_point::max()) {
      events_wake_.wait(lock);
    } else {
      events_wake_.wait_until(lock, deadline);
    }
    const Clock::time_point now = Clock::now();
    if (now >= budget_deadline) {
      budget_deadline = Clock::time_point::max();
      lock.unlock();
      Interrupt(StopReason::kBudgetExhausted);
      lock.lock();
    }
    if (now >= timer_deadline_) {
      // Devices that are due wait for ServiceTimers without a deadline, so
      // that this thread sleeps until they have a new one.
      for (TimerSlot& timer : timers_) {
        if (timer.deadline <= now) timer.deadline = Clock::time_point::max();
      }
      timer_deadline_ = EarliestTimerDeadline();
      timer_due_ = true;
      SetPollPage(platform::Protection::kNone);
      std::lock_guard wake_lock(wake_mutex_);
      wake_.notify_all();
    }
  }
}

void Vcpu::ServiceTimers() {
  const auto now = std::chrono::steady_clock::now();
  for (TimerSlot& timer : timers_) OnTimerDeadline(&timer, timer.device->Advance(now));
}

std::optional<StopInfo> Vcpu::DeliverExternalInterrupt() {
  interrupt_requested_ = false;
  if (!(state_->eflags_virtual & translator::kEflagsIf) || !parts_.pic.InterruptPending()) {
    return std::nullopt;
  }
  const std::uint8_t vector = parts_.pic.Acknowledge();
  next_unit_ = nullptr;
  return Deliver({vector, GuestEvent::Source::kExternal, false, 0, state_->eip, state_->eip});
}

StopInfo Vcpu::Run(const RunLimits& limits) {
  platform::SetThreadFaultHandler(&Vcpu::OnHostFault, this);
  if (!platform::SetThreadGsBase(state_->window_base)) {
    platform::SetThreadFaultHandler(nullptr, nullptr);
    return MakeStop(StopReason::kHostError, "cannot set the GS base of the vCPU thread");
  }
  const auto budget_deadline = limits.time_budget.count() > 0
                                   ? std::chrono::steady_clock::now() + limits.time_budget
                                   : std::chrono::steady_clock::time_point::max();
  running_ = true;
  std::thread events([this, budget_deadline] { WatchEvents(budget_deadline); });
  TakeFpuForGuest(*state_);
  ServiceTimers();

  const platform::SignalsHeld signals_held;
  std::optional<StopInfo> stop;
  while (!stop) {
    if (int reason = interrupt_.exchange(-1); reason >= 0) {
      SetPollPage(platform::Protection::kReadWrite);
      stop = MakeStop(static_cast<StopReason>(reason),
                      reason == static_cast<int>(StopReason::kBudgetExhausted)
                          ? "the time budget ran out"
                          : "stop requested");
      break;
    }
    if (timer_due_.exchange(false)) ServiceTimers();
    if (device_attention_.exchange(false) && device_service_) {
      device_service_(device_service_context_);
    }
    if (!std::exchange(interrupt_shadow_, false)) {
      stop = DeliverExternalInterrupt();
      if (stop) break;
    }
    if (halted_) {
      WaitWhileHalted();
      continue;
    }
    TranslationUnit* unit = std::exchange(next_unit_, nullptr);
    if (!unit) unit = FindOrTranslate(state_->eip, std::exchange(one_shot_next_, false));
    if (!unit) {
      stop = LookupFailed();
      continue;
    }
    ++counters_.dispatcher_entries;
    state_->indirect_salt = translator::IndirectSalt(unit->key.mode);
    in_translated_code_ = true;
    const translator::ExitReason exit = parts_.trampolines.enter(state_, unit->code);
    in_translated_code_ = false;
    stop = HandleExit(exit);
  }
  GiveFpuBackToHost(*state_);
  pending_stop_.reset();
  ++counters_.exits[Index(stop->reason)];

  {
    std::lock_guard lock(events_mutex_);
    running_ = false;
  }
  events_wake_.notify_all();
  events.join();
  platform::SetThreadFaultHandler(nullptr, nullptr);
  return *stop;
}

std::optional<StopInfo> Vcpu::LookupFailed() {
  if (beyond_code_limit_) {
    return Deliver(
        {kGeneralProtection, GuestEvent::Source::kException, true, 0, state_->eip, state_->eip});
  }
  if (!access_fault_) return std::move(pending_stop_);
  return Deliver(PageFaultEvent(*access_fault_, state_->eip));
}

std::optional<StopInfo> Vcpu::HandleExit(ExitReason reason) {
  switch (reason) {
    case ExitReason::kBranch: {
      state_->eip = state_->next_eip;
      auto* link = static_cast<ExitLink*>(const_cast<void*>(state_->exit_record));
      if (!parts_.translator.options().chaining || !link->owner->live || !link->owner->cached) {
        break;
      }
      const std::uint64_t flushes = parts_.cache.counters().flushes;
      TranslationUnit* target = FindOrTranslate(state_->eip, false);
      if (!target) return LookupFailed();
      // A unit only chains to units of its own mode (see OnCr0Changed) and
      // CS.
      if (flushes == parts_.cache.counters().flushes &&
          target->key.SameAssumptions(link->owner->key)) {
        if (const auto scope = ChainScopeOf(*link->owner, *target)) {
          parts_.cache.Chain(*link, target, *scope);
        }
      }
      next_unit_ = target;
      break;
    }
    case ExitReason::kIndirect: {
      state_->eip = state_->next_eip;
      TranslationUnit* target = FindOrTranslate(state_->eip, false);
      if (!target) return LookupFailed();
      if (parts_.translator.options().chaining) RememberIndirectTarget(*target);
      next_unit_ = target;
      break;
    }
    case ExitReason::kCallout:
      if (pending_event_) return Deliver(*std::exchange(pending_event_, std::nullopt));
      if (pending_stop_) return std::move(pending_stop_);
      break;
    case ExitReason::kEventPoll:
      // A request consumed at the loop top may have revoked the page after
      // the loop re-enabled it; with nothing pending, give access back.
      if (interrupt_.load() < 0) {
        SetPollPage(platform::Protection::kReadWrite);
      }
      break;
    case ExitReason::kGuestFault: {
      const auto vector = static_cast<std::uint8_t>(state_->fault_vector);
      const std::uint32_t error_code = vector == kPageFault ? host_page_fault_error_ : 0;
      return Deliver({vector, GuestEvent::Source::kException, ExceptionHasErrorCode(vector),
                      error_code, state_->eip, state_->eip});
    }
    case ExitReason::kSmcRestart: one_shot_next_ = true; break;
    case ExitReason::kStop: return std::move(pending_stop_);
  }
  return std::nullopt;
}

bool Vcpu::OnHostFault(void* self, platform::HostFault& fault) {
  return static_cast<Vcpu*>(self)->HandleHostFault(fault);
}

void Vcpu::ExitFromFault(platform::HostFault& fault, const TranslationUnit& unit, ExitReason reason,
                         std::uint32_t vector) {
  const translator::FaultMapEntry& entry =
      unit.FaultEntryAt(reinterpret_cast<const std::uint8_t*>(fault.rip));
  for (unsigned r = 0; r < 8; ++r) {
    state_->gpr[r] = static_cast<std::uint32_t>(fault.gpr[kHostRegisterOf[r]]);
  }
  switch (entry.fixup) {
    case Fixup::kRestoreSpill:
      state_->gpr[entry.argument] = static_cast<std::uint32_t>(state_->spill);
      break;
    case Fixup::kPcThunkGuard:
      state_->gpr[translator::kEcx] = static_cast<std::uint32_t>(fault.gpr[kHostR9]);
      break;
    case Fixup::kStringAccess:
      if ((entry.argument & 0xF) != translator::kNoStringBase) {
        state_->gpr[translator::kEsi] -= state_->segment[entry.argument & 0xF].base;
      }
      if ((entry.argument >> 4) != translator::kNoStringBase) {
        state_->gpr[translator::kEdi] -= state_->segment[entry.argument >> 4].base;
      }
      break;
    case Fixup::kSegmentFault: vector = entry.argument; break;
    case Fixup::kUndoPop4: state_->gpr[translator::kEsp] -= 4; break;
    case Fixup::kUndoPop2: state_->gpr[translator::kEsp] -= 2; break;
    case Fixup::kEspPending:
      state_->gpr[translator::kEsp] += 4 * static_cast<std::int8_t>(entry.argument);
      break;
    default: break;
  }
  state_->host_flags = fault.rflags;
  state_->eip = entry.guest_eip;
  state_->exit_reason = reason;
  state_->fault_vector = vector;
  fault.rip = reinterpret_cast<std::uint64_t>(parts_.trampolines.exit_saved);
}

bool Vcpu::HandleCodeWrite(platform::HostFault& fault, std::uint32_t page) {
  ++counters_.host_faults[Index(HostFaultCause::kCodeWrite)];
  InvalidateCodePage(page);
  // If the writer's own unit died, stop before the write and re-run it as a
  // one-instruction unit, so what follows it is translated afresh.
  const TranslationUnit* unit =
      parts_.cache.UnitAt(reinterpret_cast<const std::uint8_t*>(fault.rip));
  if (unit && !unit->live) ExitFromFault(fault, *unit, ExitReason::kSmcRestart, 0);
  return true;
}

bool Vcpu::HandleWindowFault(platform::HostFault& fault, const TranslationUnit* unit,
                             std::uint32_t linear, mmu::View view) {
  using Result = mmu::ShadowMmu::Miss::Result;
  const mmu::ShadowMmu::Miss miss = parts_.mmu.HandleMiss(linear, fault.write, view);
  const auto* rip = reinterpret_cast<const std::uint8_t*>(fault.rip);
  if (unit && miss.result != Result::kMapped &&
      unit->FaultEntryAt(rip).fixup == Fixup::kPcThunkGuard) {
    // The guard of an inlined call cannot read the PC thunk: the call runs
    // alone and as it is, and its fetch of the thunk faults as it would.
    ExitFromFault(fault, *unit, ExitReason::kSmcRestart, 0);
    return true;
  }
  if (unit && (miss.result == Result::kMapped || miss.result == Result::kPageFault)) {
    NoteMemoryFault(unit->FaultEntryAt(rip).guest_eip, linear);
  }
  const char* what = nullptr;
  switch (miss.result) {
    case Result::kMapped: ++counters_.host_faults[Index(HostFaultCause::kShadowMiss)]; return true;
    case Result::kCodeWrite:
      return HandleCodeWrite(fault, static_cast<std::uint32_t>(miss.physical / kPageSize));
    case Result::kPageFault:
      if (!unit) return false;
      ++counters_.host_faults[Index(HostFaultCause::kGuestPageFault)];
      state_->cr2 = linear;
      host_page_fault_error_ = miss.error_code;
      faulted_access_ = FaultedAccess{linear, fault.write, view};
      ExitFromFault(fault, *unit, ExitReason::kGuestFault, kPageFault);
      return true;
    case Result::kNoRam:
      // Devices are reached through resolved operands: translate the
      // instruction so, and run it again.
      if (unit && ResolveForDevice(unit->FaultEntryAt(rip).guest_eip)) {
        ++counters_.host_faults[Index(HostFaultCause::kDeviceAccess)];
        ExitFromFault(fault, *unit, ExitReason::kCallout, 0);
        return true;
      }
      what = "where there is no RAM, by an instruction that cannot reach a device";
      break;
    case Result::kTableOutsideRam: what = "whose page tables lie outside RAM"; break;
    case Result::kHostError: what = "which the host refused to map"; break;
  }
  if (!unit) return false;
  char text[160];
  std::snprintf(text, sizeof(text), "access to guest linear address 0x%08x (physical 0x%llx), %s",
                linear, static_cast<unsigned long long>(miss.physical), what);
  ExitFromFault(fault, *unit, ExitReason::kStop, 0);
  pending_stop_ = MakeStop(StopReason::kUnsupportedInstruction, text);
  return true;
}

bool Vcpu::HandleHostFault(platform::HostFault& fault) {
  using Kind = platform::HostFault::Kind;
  const auto* rip = reinterpret_cast<const std::uint8_t*>(fault.rip);
  if (!parts_.cache.ContainsCode(rip)) return false;
  // A resolved operand (adaptive.cc) cannot fault, but its instruction can
  // (#GP, #AC...): the guest window's GS base must come back.
  if (std::exchange(memory_resolved_, false)) platform::SetThreadGsBase(state_->window_base);
  const TranslationUnit* unit = parts_.cache.UnitAt(rip);

  if (fault.kind == Kind::kPageFault) {
    const auto block = reinterpret_cast<std::uintptr_t>(state_);
    if (fault.address - (block + translator::kReturnStackGuardOffset) <
        translator::kReturnStackGuardBytes) {
      // A call on a full return stack, which runs again on the emptied one.
      // That only costs the returns of the calls it held a lookup each.
      ++counters_.host_faults[Index(HostFaultCause::kReturnStackFull)];
      fault.gpr[kHostRsp] = state_->return_stack_empty;
      return true;
    }
    const auto poll = block + translator::kCpuStateBytes;
    if (fault.address - poll < kPageSize && unit) {
      ++counters_.host_faults[Index(HostFaultCause::kEventPoll)];
      ExitFromFault(fault, *unit, ExitReason::kEventPoll, 0);
      return true;
    }
    for (const mmu::View view : {mmu::View::kSupervisor, mmu::View::kUser}) {
      const platform::AddressWindow& window = parts_.mmu.window(view);
      const auto base = reinterpret_cast<std::uint64_t>(window.base());
      if (window.Contains(fault.address)) {
        return HandleWindowFault(fault, unit, static_cast<std::uint32_t>(fault.address - base),
                                 view);
      }
      if (window.InGuard(fault.address) && unit &&
          unit->FaultEntryAt(rip).fixup == Fixup::kStringAccess) {
        // A string instruction ran off the window: wrap like a 32-bit address.
        ++counters_.host_faults[Index(HostFaultCause::kStringWrap)];
        for (unsigned reg : {kHostRsi, kHostRdi}) {
          if (fault.gpr[reg] >= base + platform::AddressWindow::kSize) {
            fault.gpr[reg] -= platform::AddressWindow::kSize;
          } else if (fault.gpr[reg] < base) {
            fault.gpr[reg] += platform::AddressWindow::kSize;
          }
        }
        return true;
      }
    }
    return false;
  }

  if (!unit) return false;
  std::uint32_t vector;
  switch (fault.kind) {
    case Kind::kDivideError:
      vector = kDivideError;
      NoteDivideFault(unit->FaultEntryAt(rip).guest_eip);
      break;
    case Kind::kBreakpoint: vector = kBreakpoint; break;
    case Kind::kInvalidOpcode: vector = kInvalidOpcode; break;
    case Kind::kGeneralProtection: vector = kGeneralProtection; break;
    case Kind::kX87Error: vector = kX87Error; break;
    case Kind::kAlignmentCheck: vector = kAlignmentCheck; break;
    case Kind::kSimdError: vector = kSimdError; break;
    default: return false;
  }
  if (fault.kind == Kind::kInvalidOpcode && unit->FaultEntryAt(rip).fixup == Fixup::kPcThunkGuard) {
    // The guard of an inlined call read other bytes than its PC thunk's.
    ++counters_.host_faults[Index(HostFaultCause::kPcThunkChanged)];
    ExitFromFault(fault, *unit, ExitReason::kSmcRestart, 0);
    return true;
  }
  ++counters_.host_faults[Index(HostFaultCause::kGuestException)];
  ExitFromFault(fault, *unit, ExitReason::kGuestFault, vector);
  return true;
}

}  // namespace bt::runtime
