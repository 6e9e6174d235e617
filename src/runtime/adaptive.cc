// Adaptive translation (after VMware's binary translator, Adams and Agesen,
// ASPLOS 2006): instructions that keep faulting are translated again to do
// in a callout what a host fault did, at a fraction of the cost. A division
// that keeps raising #DE gets a callout before it that raises #DE itself;
// the rest of this comment is about memory operands.
//
// An instruction whose memory operand keeps faulting on pages it faulted on
// before (a page the guest maps and unmaps again with invlpg, or that every
// CR3 load drops from the shadow) costs a host fault and a host mapping
// call each time, several microseconds. After a few such faults its page is
// retranslated with the instruction "resolved": a callout walks the guest
// page tables for the operand (raising #PF itself, without a host fault),
// then points GS so that the operand lands in the VMM's own mapping of the
// physical page, and the instruction still runs natively. The instruction
// goes back to the plain translation when most of its runs touch the page of
// its run before with no mapping change in between, which a shadow mapping
// would serve without a callout: a loop over one page in each of many short
// processes, say, where a callout per run costs more than a fault per
// process. An instruction that flips too often stays plain.
//
// Writes to pages holding translated code, operands split over pages that
// are not contiguous in guest-physical memory, and faulting operands that
// the instruction may fault on for alignment first, take the guest window
// as before, where host faults handle them.
#include "runtime/guest_fpu.h"
#include "runtime/vcpu.h"

#include <cstring>

namespace bt::runtime {

namespace {

// Faults on a recently faulted page before an instruction is resolved; the
// count doubles with every return to the plain translation.
constexpr unsigned kRepeatFaultsToResolve = 3;
constexpr unsigned kMaxReverts = 3;
// A resolved instruction goes back to the plain translation after this
// many runs on a page a shadow mapping would serve, beyond kMappedRunsPerFault
// for each run that may have spared a fault: a callout costs about a
// twentieth of a host fault and the mapping it makes.
constexpr std::uint32_t kMappedRunsToRevert = 32;
constexpr std::uint32_t kMappedRunsPerFault = 16;
constexpr std::uint32_t kRunsRemembered = 256;
// Divisions checked in a row without #DE, after which a checked division
// goes back to raising #DE through a host trap.
constexpr std::uint32_t kChecksToRevert = 1024;
// Beyond this many instructions tracked, the tracking starts over.
constexpr std::size_t kMaxTracked = 1u << 16;

}  // namespace

translator::Adaptation Vcpu::AdaptationAt(std::uint32_t eip) {
  using translator::Resolution;
  const auto found = adaptive_.find(eip);
  if (found == adaptive_.end()) return {};
  const AdaptiveRecord& record = found->second;
  translator::Adaptation adaptation;
  if (record.resolved)
    adaptation.memory = record.device ? Resolution::kDevice : Resolution::kMemory;
  adaptation.check_divide = record.check_divide;
  return adaptation;
}

std::uint64_t Vcpu::AddressSpaceGeneration() const {
  const mmu::ShadowCounters& shadow = parts_.mmu.counters();
  return shadow.cr3_flushes + shadow.full_flushes;
}

Vcpu::AdaptiveRecord& Vcpu::TrackedRecord(std::uint32_t eip) {
  if (adaptive_.size() >= kMaxTracked && !adaptive_.contains(eip)) adaptive_.clear();
  return adaptive_[eip];
}

void Vcpu::RetranslateInstruction(std::uint32_t eip) {
  if (const CodeTlbEntry* code = CodePageEntry(state_->segment[translator::kCs].base + eip)) {
    parts_.cache.InvalidateInstruction(code->physical_page, eip);
  }
}

bool Vcpu::DecodeAt(std::uint32_t eip, decoder::DecodedInstruction& insn) {
  std::uint8_t bytes[15];
  std::uint32_t physical_page = 0;
  const std::uint32_t linear = state_->segment[translator::kCs].base + eip;
  const std::uint32_t in_page =
      std::min<std::uint32_t>(sizeof(bytes), kPageSize - linear % kPageSize);
  const std::uint8_t* code = CodePage(linear - linear % kPageSize, &physical_page);
  if (!code) return false;
  std::memcpy(bytes, code + linear % kPageSize, in_page);
  const std::uint8_t* next =
      in_page < sizeof(bytes) ? CodePage(linear + in_page, &physical_page) : nullptr;
  if (next) std::memcpy(bytes + in_page, next, sizeof(bytes) - in_page);
  return parts_.decoder.Decode(eip, bytes, next ? sizeof(bytes) : in_page, insn);
}

void Vcpu::NoteMemoryFault(std::uint32_t eip, std::uint32_t linear) {
  if (!parts_.mmu.paging()) return;
  AdaptiveRecord& record = TrackedRecord(eip);
  if (record.resolved || record.reverts >= kMaxReverts) return;
  const std::uint32_t page = linear / kPageSize;
  const auto end = std::end(record.recent_pages);
  if (std::find(std::begin(record.recent_pages), end, page) != end) {
    ++record.repeats;
  } else {
    record.recent_pages[record.next_recent++ % std::size(record.recent_pages)] = page;
  }
  if (record.repeats < kRepeatFaultsToResolve << record.reverts) return;
  decoder::DecodedInstruction insn;
  if (!DecodeAt(eip, insn) || !translator::MayResolveMemory(insn)) {
    record.reverts = kMaxReverts;  // string instructions and the like: never
    return;
  }
  record.resolved = true;
  record.runs_on_mapped_page = record.runs_sparing_a_fault = 0;
  record.last_page = ~0u;
  ++counters_.adaptive_resolved;
  RetranslateInstruction(eip);
}

bool Vcpu::ResolveForDevice(std::uint32_t eip) {
  decoder::DecodedInstruction insn;
  if (!DecodeAt(eip, insn) || !translator::MayResolveMemory(insn)) return false;
  AdaptiveRecord& record = TrackedRecord(eip);
  if (!(record.resolved && record.device)) ++counters_.adaptive_resolved;
  record.resolved = true;
  record.device = true;
  RetranslateInstruction(eip);
  return true;
}

bool Vcpu::ResolveMemory(const decoder::DecodedInstruction& insn) {
  const std::uint32_t linear = state_->effective_address;
  const std::uint32_t bytes = std::max<std::uint32_t>(insn.memory.bytes, 1);
  const mmu::Access access = insn.memory.written ? mmu::Access::kWrite : mmu::Access::kRead;
  const auto tracked = adaptive_.find(insn.eip);
  AdaptiveRecord* record = tracked == adaptive_.end() ? nullptr : &tracked->second;

  // Both pages of a split operand are checked before either is used.
  std::uint64_t physical[2] = {};
  const std::uint32_t first_bytes = std::min(bytes, kPageSize - linear % kPageSize);
  const std::uint32_t pieces[2][2] = {{linear, first_bytes},
                                      {linear + first_bytes, bytes - first_bytes}};
  for (unsigned i = 0; i < 2 && pieces[i][1] != 0; ++i) {
    const mmu::Translation translation = parts_.mmu.Translate(pieces[i][0], access, CurrentView());
    if (translation.status == mmu::Translation::Status::kPageFault) {
      // Operands of 16 bytes and more that are not 16-byte aligned may owe
      // the instruction a #GP first (movdqa, fxsave...): the host decides.
      if (bytes >= 16 && linear % 16 != 0) return false;
      // The plain translation would have taken a host fault to find this.
      if (record) ++record->runs_sparing_a_fault;
      return Raise(PageFaultEvent({pieces[i][0], translation.error_code}, insn.eip));
    }
    if (translation.status != mmu::Translation::Status::kOk) return false;  // the window reports it
    if (!parts_.memory.Contains(translation.physical, pieces[i][1])) {
      return ResolveDevice(insn, translation.physical, record);
    }
    physical[i] = translation.physical;
    if (access == mmu::Access::kWrite &&
        parts_.mmu.IsCodePage(static_cast<std::uint32_t>(translation.physical / kPageSize))) {
      return false;  // self-modifying code: the window's host fault handles it
    }
  }
  if (first_bytes < bytes && physical[1] != physical[0] + first_bytes) return false;

  if (record && !record->device) {
    // A page the shadow holds, or the same page onto the same frame in the
    // same address space as the run before, whose fault would have mapped
    // it: the plain translation would have run natively.
    const std::uint64_t generation = AddressSpaceGeneration();
    const std::uint32_t page = linear / kPageSize;
    const auto frame = static_cast<std::uint32_t>(physical[0] / kPageSize);
    if (parts_.mmu.Serves(linear, access == mmu::Access::kWrite, CurrentView()) ||
        (page == record->last_page && frame == record->last_frame &&
         generation == record->generation)) {
      ++record->runs_on_mapped_page;
    } else {
      ++record->runs_sparing_a_fault;
      record->last_page = page;
      record->last_frame = frame;
      record->generation = generation;
    }
    // Halving both now and then lets recent runs decide.
    if (record->runs_on_mapped_page + record->runs_sparing_a_fault >= kRunsRemembered) {
      record->runs_on_mapped_page /= 2;
      record->runs_sparing_a_fault /= 2;
    }
    if (record->runs_on_mapped_page >=
        kMappedRunsToRevert + kMappedRunsPerFault * record->runs_sparing_a_fault) {
      record->resolved = false;
      record->repeats = 0;
      ++record->reverts;
      ++counters_.adaptive_reverted;
      RetranslateInstruction(insn.eip);
    }
  }
  // GS + linear lands on the operand's host address; the addition wraps
  // like the address arithmetic of the instruction itself.
  memory_resolved_ = true;
  platform::SetThreadGsBase(
      reinterpret_cast<std::uint64_t>(parts_.memory.HostPointer(physical[0])) - linear);
  return false;
}

bool Vcpu::ResolveDevice(const decoder::DecodedInstruction& insn, std::uint64_t physical,
                         AdaptiveRecord* record) {
  const std::uint32_t linear = state_->effective_address;
  const std::uint32_t bytes = std::max<std::uint32_t>(insn.memory.bytes, 1);
  if (!record || !record->device) {
    // Translated without the callout that completes a device write: again,
    // from the instruction.
    if (!ResolveForDevice(insn.eip)) return false;
    return ExitWith(std::nullopt, insn.eip);
  }
  if (bytes > sizeof(device_bytes_) || linear % kPageSize + bytes > kPageSize) {
    return ExitWith(MakeInstructionStop(StopReason::kUnsupportedInstruction, insn,
                                        "a device access split over pages or wider than 64 "
                                        "bytes:"),
                    insn.eip);
  }
  std::memset(device_bytes_, 0, sizeof(device_bytes_));
  // A plain store must not read the device: reads can have side effects.
  if (insn.memory.read || !insn.memory.written) {
    const HostFpuScope devices_are_not_ours(*state_);
    for (std::uint32_t done = 0; done < bytes; done += 8) {
      const unsigned size = std::min(8u, bytes - done);
      const std::uint64_t value = parts_.mmio.Read(physical + done, size);
      std::memcpy(device_bytes_ + done, &value, size);
    }
  }
  device_access_ = DeviceAccess{physical, bytes, insn.memory.written};
  memory_resolved_ = true;
  platform::SetThreadGsBase(reinterpret_cast<std::uint64_t>(device_bytes_) - linear);
  return false;
}

bool Vcpu::ReleaseMemory() {
  if (device_access_ && device_access_->written) {
    const HostFpuScope devices_are_not_ours(*state_);
    for (std::uint32_t done = 0; done < device_access_->bytes; done += 8) {
      const unsigned size = std::min(8u, device_access_->bytes - done);
      std::uint64_t value = 0;
      std::memcpy(&value, device_bytes_ + done, size);
      parts_.mmio.Write(device_access_->physical + done, size, value);
    }
  }
  device_access_.reset();
  memory_resolved_ = false;
  platform::SetThreadGsBase(state_->window_base);
  return false;
}

void Vcpu::NoteDivideFault(std::uint32_t eip) {
  AdaptiveRecord& record = TrackedRecord(eip);
  record.checks_without_fault = 0;
  if (record.check_divide || record.divide_reverts >= kMaxReverts ||
      ++record.divide_faults < kRepeatFaultsToResolve << record.divide_reverts) {
    return;
  }
  record.check_divide = true;
  ++counters_.adaptive_resolved;
  RetranslateInstruction(eip);
}

// #DE as DIV and IDIV raise it (SDM Vol. 2A): a zero divisor, or a quotient
// that does not fit the destination.
bool Vcpu::CheckDivide(const decoder::DecodedInstruction& insn) {
  const unsigned size = insn.operand_size;
  std::uint32_t divisor = 0;
  if (insn.has_memory) {
    if (!ReadOperand(state_->effective_address, &divisor, size)) return OperandOutsideRam(insn);
  } else {
    const unsigned rm = insn.bytes[insn.modrm_offset] & 7;
    // Byte registers 4-7 are AH, CH, DH, BH.
    divisor = size == 1 && rm >= 4 ? state_->gpr[rm - 4] >> 8 : state_->gpr[rm];
  }
  const unsigned bits = 8 * size;
  const std::uint64_t mask = (std::uint64_t{1} << bits) - 1;
  divisor &= static_cast<std::uint32_t>(mask);
  // The dividend: AX, DX:AX or EDX:EAX.
  const std::uint64_t eax = state_->gpr[translator::kEax], edx = state_->gpr[translator::kEdx];
  const std::uint64_t dividend = size == 1 ? eax & 0xFFFF : ((edx & mask) << bits) | (eax & mask);
  bool faults = divisor == 0;
  if (!faults && insn.bytes[insn.modrm_offset] >> 3 & 1) {  // idiv: ModRM.reg 7
    const auto sign_extend = [](std::uint64_t value, unsigned width) {
      return static_cast<__int128>(static_cast<std::int64_t>(value << (64 - width)) >>
                                   (64 - width));
    };
    const __int128 quotient = sign_extend(dividend, 2 * bits) / sign_extend(divisor, bits);
    faults = quotient > static_cast<__int128>(mask >> 1) ||
             quotient < -static_cast<__int128>(mask >> 1) - 1;
  } else if (!faults) {
    faults = dividend / divisor > mask;
  }
  AdaptiveRecord& record = TrackedRecord(insn.eip);
  if (faults) {
    record.checks_without_fault = 0;
    return RaiseFault(kDivideError, insn);
  }
  if (++record.checks_without_fault >= kChecksToRevert) {
    record.check_divide = false;
    record.divide_faults = 0;
    ++record.divide_reverts;
    ++counters_.adaptive_reverted;
    RetranslateInstruction(insn.eip);
  }
  return false;
}

}  // namespace bt::runtime
