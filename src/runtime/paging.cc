// The vCPU's side of paging: loads of CR0/CR3/CR4 and invlpg, which reshape
// the shadow MMU; guest memory accesses by the VMM's own code, through the
// guest page tables; and the guest #PF those and instruction fetch raise.
//
// Translations are keyed by the physical page of their code. Chains within
// a unit's own pages need nothing more; chains into another page break when
// that page's translation may change (see ChainScopeOf), so an address-space
// switch needs no retranslation. The indirect-branch table and the code-page
// cache are keyed by linear address and emptied likewise.
#include "runtime/vcpu.h"

namespace bt::runtime {

using decoder::DecodedInstruction;
using translator::kCr0Pe;
using translator::kCr0Pg;
using translator::kCr4Pge;
using translator::kEferNxe;

namespace {

constexpr std::uint32_t kCr0Nw = 1u << 29, kCr0Cd = 1u << 30;
// CR4 bits the guest may set (SDM Vol. 3A, 2.5), as CPUID reports the
// features behind them: TSD, DE, PSE, PAE, PGE, PCE, OSFXSR, OSXMMEXCPT.
constexpr std::uint32_t kCr4Supported =
    (1u << 2) | (1u << 3) | (1u << 4) | (1u << 5) | (1u << 7) | (1u << 8) | (1u << 9) | (1u << 10);

}  // namespace

void Vcpu::UpdatePagingMode() {
  const bool was_paging = parts_.mmu.paging();
  const bool nx_enabled = state_->msr.efer & kEferNxe;
  if (!parts_.mmu.SetMode({state_->cr0, state_->cr3, state_->cr4, nx_enabled})) return;
  // Chains made under one paging mode assumed its mapping of every page
  // they cross; turning paging on or off invalidates all of them.
  if (was_paging != parts_.mmu.paging()) {
    parts_.cache.Flush();
    OnPrivilegeChanged();
  }
  OnAddressSpaceChanged();
}

void Vcpu::OnPrivilegeChanged() {
  const auto base = reinterpret_cast<std::uint64_t>(parts_.mmu.window(CurrentView()).base());
  if (base == state_->window_base) return;
  state_->window_base = base;
  platform::SetThreadGsBase(base);
}

void Vcpu::OnAddressSpaceChanged() {
  indirect_.Clear();
  std::fill(std::begin(code_tlb_), std::end(code_tlb_), CodeTlbEntry{});
  parts_.cache.UnchainCrossPage();
}

void Vcpu::OnCr3Loaded() {
  // The load may have switched the shadow to another space's windows.
  OnPrivilegeChanged();
  indirect_.ClearLocal();
  for (CodeTlbEntry& entry : code_tlb_) {
    if (!entry.global) entry = {};
  }
  parts_.cache.UnchainLocal();
}

void Vcpu::OnPageInvalidated(std::uint32_t linear) {
  // The page may be a piece of a large page, whose whole translation goes.
  const std::uint32_t region = parts_.mmu.LargePageBytes();
  const std::uint32_t base = linear & ~(region - 1);
  indirect_.ClearRange(base, region);
  for (CodeTlbEntry& entry : code_tlb_) {
    if (entry.tag != 0 && ((entry.tag - 1) / 2 * kPageSize ^ linear) < region) entry = {};
  }
  parts_.cache.UnchainCrossPageInto(base, region);
}

void Vcpu::ForgetReturns() {
  auto* top = reinterpret_cast<std::uint64_t*>(state_->return_stack_empty) - 1;
  *top = *reinterpret_cast<const std::uint64_t*>(state_->translated_rsp);
  state_->translated_rsp = reinterpret_cast<std::uint64_t>(top);
}

void Vcpu::MapAfterPageFault() {
  if (!faulted_access_) return;
  const FaultedAccess access = *std::exchange(faulted_access_, std::nullopt);
  // Only a walk that succeeds now maps anything; it sets the accessed (and
  // for a write the dirty) bit that the retried access would set anyway.
  if (parts_.mmu.HandleMiss(access.linear, access.write, access.view).result ==
      mmu::ShadowMmu::Miss::Result::kMapped) {
    ++counters_.mapped_after_page_fault;
  }
}

bool Vcpu::LoadControlRegister(const DecodedInstruction& insn) {
  const std::uint32_t value = state_->gpr[insn.rm_gpr];
  switch (insn.special_register) {
    case 0: {
      if (((value & kCr0Pg) && !(value & kCr0Pe)) || ((value & kCr0Nw) && !(value & kCr0Cd))) {
        return RaiseFault(kGeneralProtection, insn, 0);
      }
      if (!(value & kCr0Pe)) {
        return ExitWith(MakeInstructionStop(StopReason::kUnsupportedInstruction, insn,
                                            "real mode is not supported yet:"),
                        insn.eip);
      }
      const std::uint32_t old_cr0 = state_->cr0;
      state_->cr0 = value | 0x10;  // ET is hardwired on
      OnCr0Changed(old_cr0);
      break;
    }
    case 2: state_->cr2 = value; break;
    case 3: LoadCr3(value); break;
    case 4:
      if (value & ~kCr4Supported) return RaiseFault(kGeneralProtection, insn, 0);
      state_->cr4 = value;
      CurrentUnitMode();  // CR4.TSD is part of the unit mode
      UpdatePagingMode();
      break;
    default: return RaiseFault(kInvalidOpcode, insn);
  }
  return ExitWith(std::nullopt, insn.next_eip());
}

void Vcpu::LoadCr3(std::uint32_t value) {
  state_->cr3 = value;
  if (parts_.mmu.LoadCr3(value)) OnCr3Loaded();
}

bool Vcpu::Invlpg(const DecodedInstruction& insn) {
  const std::uint32_t linear = state_->effective_address;
  parts_.mmu.FlushPage(linear);
  OnPageInvalidated(linear);
  ForgetReturns();
  // Only the invlpg of the running code's own region (or of the page after
  // it, which a unit may run into) may change the code that follows.
  const std::uint32_t region = parts_.mmu.LargePageBytes();
  const std::uint32_t code = state_->segment[translator::kCs].base + insn.eip;
  const bool own_code =
      ((code ^ linear) < region) || (((code | (kPageSize - 1)) + 1) ^ linear) < region;
  return own_code ? ExitWith(std::nullopt, insn.next_eip()) : false;
}

GuestEvent Vcpu::PageFaultEvent(const LinearFault& fault, std::uint32_t eip) {
  state_->cr2 = fault.address;
  return {kPageFault, GuestEvent::Source::kException, true, fault.error_code, eip, eip};
}

bool Vcpu::RaiseAccessFault(const DecodedInstruction& insn) {
  return Raise(PageFaultEvent(*access_fault_, insn.eip));
}

bool Vcpu::AccessGuest(std::uint32_t address, void* data, std::size_t bytes, bool write,
                       mmu::View view) {
  GuestPieces pieces;
  if (!LocateGuest(address, bytes, write, view, pieces)) return false;
  CopyGuest(pieces, data, write);
  return true;
}

bool Vcpu::LocateGuest(std::uint32_t address, std::size_t bytes, bool write, mmu::View view,
                       GuestPieces& pieces) {
  access_fault_.reset();
  // At most two pages: check both before touching either, so that an
  // access faulting on its second page changes nothing.
  pieces.count = 0;
  std::uint32_t linear = address;
  for (std::size_t left = bytes; left > 0; ++pieces.count) {
    const std::size_t in_page = std::min<std::size_t>(left, kPageSize - linear % kPageSize);
    const mmu::Translation translation =
        parts_.mmu.Translate(linear, write ? mmu::Access::kWrite : mmu::Access::kRead, view);
    if (translation.status == mmu::Translation::Status::kPageFault) {
      access_fault_ = LinearFault{linear, translation.error_code};
      return false;
    }
    if (translation.status != mmu::Translation::Status::kOk || pieces.count == 2 ||
        !parts_.memory.Contains(translation.physical, in_page)) {
      return false;
    }
    pieces.piece[pieces.count] = {translation.physical, in_page};
    left -= in_page;
    linear += static_cast<std::uint32_t>(in_page);
  }
  return true;
}

void Vcpu::CopyGuest(const GuestPieces& pieces, void* data, bool write) {
  auto* bytes_at = static_cast<std::uint8_t*>(data);
  for (unsigned i = 0; i < pieces.count; ++i) {
    const GuestPieces::Piece& piece = pieces.piece[i];
    if (write) {
      parts_.memory.Write(piece.physical, bytes_at, piece.bytes);
      InvalidatePhysical(piece.physical, piece.bytes);
    } else {
      parts_.memory.Read(piece.physical, bytes_at, piece.bytes);
    }
    bytes_at += piece.bytes;
  }
}

bool Vcpu::ReadGuest(std::uint32_t address, void* data, std::size_t bytes) {
  return AccessGuest(address, data, bytes, false, mmu::View::kSupervisor);
}

bool Vcpu::WriteGuest(std::uint32_t address, const void* data, std::size_t bytes) {
  return AccessGuest(address, const_cast<void*>(data), bytes, true, mmu::View::kSupervisor);
}

bool Vcpu::ReadOperand(std::uint32_t address, void* data, std::size_t bytes) {
  return AccessGuest(address, data, bytes, false, CurrentView());
}

bool Vcpu::WriteOperand(std::uint32_t address, const void* data, std::size_t bytes) {
  return AccessGuest(address, const_cast<void*>(data), bytes, true, CurrentView());
}

const std::uint8_t* Vcpu::CodePage(std::uint32_t page_base, std::uint32_t* physical_page) {
  const CodeTlbEntry* entry = CodePageEntry(page_base);
  if (!entry) return nullptr;
  *physical_page = entry->physical_page;
  return parts_.memory.HostPointer(std::uint64_t{entry->physical_page} * kPageSize);
}

const Vcpu::CodeTlbEntry* Vcpu::CodePageEntry(std::uint32_t eip) {
  // Every unit lookup starts here: remembered translations spare a walk.
  const std::uint32_t page_base = eip & ~(kPageSize - 1);
  const std::uint32_t tag =
      ((page_base / kPageSize) << 1 | (CurrentView() == mmu::View::kUser)) + 1;
  CodeTlbEntry& cached = code_tlb_[(page_base / kPageSize) % std::size(code_tlb_)];
  if (cached.tag == tag) return &cached;
  const mmu::Translation translation =
      parts_.mmu.Translate(page_base, mmu::Access::kExecute, CurrentView());
  if (translation.status == mmu::Translation::Status::kPageFault) {
    access_fault_ = LinearFault{page_base, translation.error_code};
    return nullptr;
  }
  const std::uint64_t physical = translation.physical & ~std::uint64_t{kPageSize - 1};
  if (translation.status != mmu::Translation::Status::kOk ||
      !parts_.memory.Contains(physical, kPageSize)) {
    return nullptr;
  }
  cached = {tag, static_cast<std::uint32_t>(physical / kPageSize),
            parts_.mmu.paging() && translation.global && (state_->cr4 & kCr4Pge) != 0};
  return &cached;
}

std::optional<translator::ChainScope> Vcpu::ChainScopeOf(const TranslationUnit& owner,
                                                         const TranslationUnit& target) {
  using translator::ChainScope;
  if (!parts_.mmu.paging()) return ChainScope::kPage;
  if ((owner.key.Linear() ^ target.key.Linear()) < kPageSize &&
      owner.key.physical_page == target.key.physical_page &&
      (target.page_count == 1 ||
       (owner.page_count == 2 && owner.physical_page[1] == target.physical_page[1]))) {
    return ChainScope::kPage;
  }
  // Owner and target share a unit mode, so a view (kModeUserView): the
  // target's fetch was checked in the view the owner runs in.
  const std::optional<bool> global = CodePagesGlobal(target);
  if (!global) return std::nullopt;
  const std::uint32_t first_page = target.key.Linear() & ~(kPageSize - 1);
  // Chains are broken by the region of their target's linear eip (see
  // OnPageInvalidated): a target that runs into the next region would
  // escape an invlpg there. Such units are rare enough to go through lookups.
  if (target.page_count == 2 &&
      (first_page ^ (first_page + kPageSize)) >= translator::CodeCache::kRegionBytes) {
    return std::nullopt;
  }
  return *global ? ChainScope::kGlobal : ChainScope::kLocal;
}

std::optional<bool> Vcpu::CodePagesGlobal(const TranslationUnit& unit) {
  const std::uint32_t first_page = unit.key.Linear() & ~(kPageSize - 1);
  bool global = true;
  for (unsigned i = 0; i < unit.page_count; ++i) {
    const CodeTlbEntry* code = CodePageEntry(first_page + i * kPageSize);
    if (!code || code->physical_page != unit.physical_page[i]) return std::nullopt;
    global = global && code->global;
  }
  return global;
}

}  // namespace bt::runtime
