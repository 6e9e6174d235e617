// The runtime's half of sensitive and privileged instructions: translated
// code calls here (through the callout trampoline) with the guest registers
// saved in CpuState; returning true leaves translated code.
#include "runtime/guest_fpu.h"
#include "runtime/vcpu.h"
#include "translator/unit_builder.h"

namespace bt::runtime {

using decoder::DecodedInstruction;
using decoder::Kind;
using decoder::kNoRegister;
using translator::ExitReason;
using translator::kCs;

namespace {

// EFLAGS bits popf may change at CPL 0 (SDM Vol. 2B POPF): all but VM, RF
// and the reserved bits.
constexpr std::uint32_t kPopfMask = 0x00247FD5;

CalloutKind KindOf(Kind kind) {
  switch (kind) {
    case Kind::kIn:
    case Kind::kIns: return CalloutKind::kPortIn;
    case Kind::kOut:
    case Kind::kOuts: return CalloutKind::kPortOut;
    case Kind::kHlt: return CalloutKind::kHlt;
    case Kind::kCli: return CalloutKind::kCli;
    case Kind::kSti: return CalloutKind::kSti;
    case Kind::kPopf: return CalloutKind::kPopf;
    case Kind::kCpuid: return CalloutKind::kCpuid;
    case Kind::kRdtsc: return CalloutKind::kRdtsc;
    case Kind::kMovToCr:
    case Kind::kMovFromCr:
    case Kind::kMovToDr:
    case Kind::kMovFromDr:
    case Kind::kSmsw:
    case Kind::kLmsw:
    case Kind::kClts: return CalloutKind::kControlRegister;
    case Kind::kInvlpg:
    case Kind::kCacheFlush: return CalloutKind::kPaging;
    case Kind::kResolveMemory:
    case Kind::kReleaseMemory: return CalloutKind::kResolvedMemory;
    case Kind::kCheckDivide: return CalloutKind::kDivideCheck;
    case Kind::kStringCheck: return CalloutKind::kStringCheck;
    case Kind::kLgdt:
    case Kind::kLidt:
    case Kind::kSgdt:
    case Kind::kSidt:
    case Kind::kSldt:
    case Kind::kStr:
    case Kind::kLldt:
    case Kind::kLtr: return CalloutKind::kDescriptorTable;
    case Kind::kLar:
    case Kind::kLsl:
    case Kind::kVerr:
    case Kind::kVerw: return CalloutKind::kSegmentCheck;
    case Kind::kRdmsr:
    case Kind::kWrmsr: return CalloutKind::kMsr;
    case Kind::kSysenter:
    case Kind::kSysexit: return CalloutKind::kFastSystemCall;
    case Kind::kFpuUnavailable: return CalloutKind::kFpuUnavailable;
    case Kind::kMovToSegment:
    case Kind::kMovFromSegment:
    case Kind::kPopSegment: return CalloutKind::kSegmentLoad;
    case Kind::kJmpFar: return CalloutKind::kFarJump;
    case Kind::kInt3:
    case Kind::kInt:
    case Kind::kIret: return CalloutKind::kInterrupt;
    default: return CalloutKind::kEmulated;
  }
}

std::uint32_t SizeMask(unsigned size) { return size >= 4 ? 0xFFFFFFFFu : (1u << (8 * size)) - 1; }

}  // namespace

bool Vcpu::OnCallout(void* self, CpuState*, const void* record) {
  auto* vcpu = static_cast<Vcpu*>(self);
  const auto* callout = static_cast<const translator::CalloutRecord*>(record);
  const DecodedInstruction& insn = callout->instruction;
  vcpu->unit_mode_ = callout->unit_mode;
  const std::uint64_t invalidations = vcpu->counters_.smc_invalidations;
  if (vcpu->HandleCallout(insn)) return true;
  // The callout wrote guest code, perhaps the rest of this very unit: leave
  // it, so that what follows is translated from the new bytes.
  if (vcpu->counters_.smc_invalidations != invalidations) {
    return vcpu->ExitWith(std::nullopt, insn.next_eip());
  }
  return false;
}

std::uint32_t Vcpu::ReadRegister(std::uint8_t reg, unsigned size) const {
  return state_->gpr[reg] & SizeMask(size);
}

void Vcpu::WriteRegister(std::uint8_t reg, unsigned size, std::uint32_t value) {
  const std::uint32_t mask = SizeMask(size);
  state_->gpr[reg] = size == 4 ? value : (state_->gpr[reg] & ~mask) | (value & mask);
}

bool Vcpu::ExitWith(std::optional<StopInfo> stop, std::uint32_t eip) {
  if (stop) pending_stop_ = std::move(stop);
  state_->eip = eip;
  state_->exit_reason = ExitReason::kCallout;
  return true;
}

// A load of SS holds off interrupts for one instruction, so that the mov to
// ESP that follows it completes the stack switch first.
void Vcpu::HoldInterruptsAfterStackLoad(unsigned segment) {
  if (segment != translator::kSs) return;
  interrupt_shadow_ = true;
  one_shot_next_ = true;
}

bool Vcpu::HandleCallout(const DecodedInstruction& insn) {
  ++counters_.callouts[static_cast<std::size_t>(KindOf(insn.kind))];
  access_fault_.reset();
  const std::uint32_t next = insn.next_eip();
  const unsigned size = insn.operand_size;
  if (insn.privileged && state_->Cpl() != 0) return RaiseFault(kGeneralProtection, insn, 0);
  if (OperandOutsideLimit(insn)) return true;
  switch (insn.kind) {
    case Kind::kIn:
    case Kind::kOut:
    case Kind::kIns:
    case Kind::kOuts: {
      const auto port = static_cast<std::uint16_t>(insn.immediate_offset != decoder::kNoOffset
                                                       ? insn.immediate
                                                       : ReadRegister(translator::kEdx, 2));
      // ins and outs check it even for a rep with ECX 0, as QEMU and Bochs do.
      if (!IoPermitted(port, size)) {
        return access_fault_ ? RaiseAccessFault(insn) : RaiseFault(kGeneralProtection, insn, 0);
      }
      std::optional<HostFpuScope> application_code;
      if (parts_.ports.RunsApplicationCode(port)) application_code.emplace(*state_);
      if (insn.kind == Kind::kIns || insn.kind == Kind::kOuts) return PortString(insn, port);
      if (insn.kind == Kind::kIn) {
        WriteRegister(translator::kEax, size, parts_.ports.Read(port, size));
        return false;
      }
      parts_.ports.Write(port, size, ReadRegister(translator::kEax, size));
      if (!pending_stop_) return false;
      // The device stopped the run (debug exit, reset): after the out.
      pending_stop_->eip = next;
      return ExitWith(std::nullopt, next);
    }
    // No protected-mode virtual interrupts (CR4.PVI): IF belongs to code
    // at CPL <= IOPL.
    case Kind::kCli:
      if (state_->Cpl() > state_->Iopl()) return RaiseFault(kGeneralProtection, insn, 0);
      state_->eflags_virtual &= ~translator::kEflagsIf;
      return false;
    case Kind::kSti: {
      if (state_->Cpl() > state_->Iopl()) return RaiseFault(kGeneralProtection, insn, 0);
      const bool was_enabled = state_->eflags_virtual & translator::kEflagsIf;
      state_->eflags_virtual |= translator::kEflagsIf;
      if (was_enabled || !parts_.pic.InterruptPending()) return false;
      // An interrupt waits: it comes after the next instruction (the sti
      // shadow), which runs alone so the dispatcher gets control after it.
      interrupt_shadow_ = true;
      one_shot_next_ = true;
      return ExitWith(std::nullopt, next);
    }
    case Kind::kHlt:
      if (!(state_->eflags_virtual & translator::kEflagsIf)) {
        return ExitWith(MakeStop(StopReason::kHalted, "hlt with interrupts disabled"), next);
      }
      halted_ = true;  // the host thread sleeps until an interrupt or a stop
      return ExitWith(std::nullopt, next);
    case Kind::kCpuid: {
      std::uint32_t out[4];
      GuestCpuid(state_->gpr[translator::kEax], state_->gpr[translator::kEcx], out);
      state_->gpr[translator::kEax] = out[0];
      state_->gpr[translator::kEbx] = out[1];
      state_->gpr[translator::kEcx] = out[2];
      state_->gpr[translator::kEdx] = out[3];
      return false;
    }
    case Kind::kRdtsc: {
      if ((state_->cr4 & translator::kCr4Tsd) && state_->Cpl() != 0) {
        return RaiseFault(kGeneralProtection, insn, 0);
      }
      const std::uint64_t tsc = GuestTsc();
      state_->gpr[translator::kEax] = static_cast<std::uint32_t>(tsc);
      state_->gpr[translator::kEdx] = static_cast<std::uint32_t>(tsc >> 32);
      return false;
    }
    case Kind::kMovFromCr: {
      const std::uint32_t values[5] = {state_->cr0, 0, state_->cr2, state_->cr3, state_->cr4};
      if (insn.special_register > 4 || insn.special_register == 1) {
        return RaiseFault(kInvalidOpcode, insn);
      }
      state_->gpr[insn.rm_gpr] = values[insn.special_register];
      return false;
    }
    case Kind::kMovToDr:
    case Kind::kMovFromDr: return MoveDebugRegister(insn);
    case Kind::kMovToCr: return LoadControlRegister(insn);
    case Kind::kInvlpg: return Invlpg(insn);
    // Guest memory is host memory, coherent for every agent there is:
    // nothing to write back or drop.
    case Kind::kCacheFlush: return false;
    case Kind::kResolveMemory: return ResolveMemory(insn);
    case Kind::kReleaseMemory: return ReleaseMemory();
    case Kind::kCheckDivide: return CheckDivide(insn);
    case Kind::kStringCheck: return CheckString(insn);
    case Kind::kSegmentUse: return UseSegment(insn);
    case Kind::kLgdt:
    case Kind::kLidt: {
      std::uint8_t operand[6];
      if (!ReadOperand(state_->effective_address, operand, sizeof(operand))) break;
      std::uint32_t base = operand[2] | operand[3] << 8 | operand[4] << 16 |
                           static_cast<std::uint32_t>(operand[5]) << 24;
      if (size == 2) base &= 0x00FFFFFF;
      const auto limit = static_cast<std::uint16_t>(operand[0] | operand[1] << 8);
      if (insn.kind == Kind::kLgdt) {
        state_->gdt_base = base;
        state_->gdt_limit = limit;
      } else {
        state_->idt_base = base;
        state_->idt_limit = limit;
      }
      return false;
    }
    case Kind::kMovToSegment: {
      std::uint16_t selector = 0;
      if (!ReadSelectorOperand(insn, selector)) break;
      if (insn.special_register == kCs) break;  // mov cs is #UD
      if (!LoadSegment(insn.special_register, selector, insn)) return true;
      HoldInterruptsAfterStackLoad(insn.special_register);
      return AfterSegmentLoad(insn.special_register, next);
    }
    case Kind::kMovFromSegment: {
      const std::uint16_t selector = state_->segment[insn.special_register].selector;
      if (insn.has_memory) {
        if (!WriteOperand(state_->effective_address, &selector, 2)) break;
      } else {
        WriteRegister(insn.rm_gpr, size, selector);
      }
      return false;
    }
    case Kind::kPopSegment: {
      std::uint16_t selector = 0;
      const auto top = StackAddress(state_->gpr[translator::kEsp], size, false);
      if (!top) return RaiseFault(kStackFault, insn, 0);
      if (!ReadOperand(*top, &selector, 2)) break;
      if (!LoadSegment(insn.special_register, selector, insn)) return true;
      state_->gpr[translator::kEsp] += size;
      HoldInterruptsAfterStackLoad(insn.special_register);
      return AfterSegmentLoad(insn.special_register, next);
    }
    case Kind::kPopf: {
      std::uint32_t value = 0;
      const auto top = StackAddress(state_->gpr[translator::kEsp], size, false);
      if (!top) return RaiseFault(kStackFault, insn, 0);
      if (!ReadOperand(*top, &value, size)) break;
      state_->gpr[translator::kEsp] += size;
      // Without a fault, popf leaves IOPL and IF alone where the CPL may not
      // change them (SDM Vol. 2B POPF).
      const std::uint32_t mask = ChangeableFlags(kPopfMask) & SizeMask(size);
      state_->SetEflags((state_->Eflags() & ~mask) | (value & mask));
      return ExitWith(std::nullopt, next);
    }
    case Kind::kJmpFar: {
      std::uint32_t offset = static_cast<std::uint32_t>(insn.immediate);
      std::uint16_t selector = static_cast<std::uint16_t>(insn.immediate2);
      if (insn.has_memory) {
        std::uint8_t operand[6];
        if (!ReadOperand(state_->effective_address, operand, size + 2u)) break;
        offset = size == 2 ? operand[0] | operand[1] << 8
                           : operand[0] | operand[1] << 8 | operand[2] << 16 |
                                 static_cast<std::uint32_t>(operand[3]) << 24;
        selector = static_cast<std::uint16_t>(operand[size] | operand[size + 1] << 8);
      }
      return FarTransfer(insn, selector, offset, /*call=*/false);
    }
    case Kind::kEnter: {
      // SDM Vol. 2A ENTER, with a 32-bit stack: nested frames copy `level - 1`
      // frame pointers from the enclosing frame. Every access, and the new
      // ESP, must lie within SS; nothing is written before that is known.
      const std::uint32_t esp = state_->gpr[translator::kEsp];
      std::uint32_t ebp = state_->gpr[translator::kEbp];
      const unsigned level = insn.immediate2 & 31;
      const std::uint32_t pushes = level > 0 ? level + 1 : 1;
      const std::uint32_t new_esp =
          esp - pushes * size - static_cast<std::uint32_t>(insn.immediate & 0xFFFF);
      if (!StackAddress(esp - pushes * size, pushes * size, true) ||
          !StackAddress(new_esp, size, true) ||
          (level > 1 && !StackAddress(ebp - (level - 1) * size, (level - 1) * size, false))) {
        return RaiseFault(kStackFault, insn, 0);
      }
      const std::uint32_t ss_base = state_->segment[translator::kSs].base;
      std::uint32_t top = esp;
      auto push = [&](std::uint32_t value) {
        top -= size;
        return WriteOperand(ss_base + top, &value, size);
      };
      if (!push(ebp)) break;
      const std::uint32_t frame = top;
      bool ok = true;
      for (unsigned i = 1; ok && i < level; ++i) {
        ebp -= size;
        std::uint32_t value = 0;
        ok = ReadOperand(ss_base + ebp, &value, size) && push(value);
      }
      if (!ok || (level > 0 && !push(frame))) break;
      WriteRegister(translator::kEbp, size, frame);
      state_->gpr[translator::kEsp] = new_esp;
      return false;
    }
    case Kind::kInt3:
      return Raise({kBreakpoint, GuestEvent::Source::kSoftwareException, false, 0, next, insn.eip});
    case Kind::kInt:
      return Raise({static_cast<std::uint8_t>(insn.immediate),
                    GuestEvent::Source::kSoftwareInterrupt, false, 0, next, insn.eip});
    case Kind::kIret: return Iret(insn);
    case Kind::kSgdt:
    case Kind::kSidt:
    case Kind::kSldt:
    case Kind::kStr:
    case Kind::kSmsw: return StoreSystemRegister(insn);
    case Kind::kLmsw:
    case Kind::kClts: return LoadMachineStatusWord(insn);
    case Kind::kLldt:
    case Kind::kLtr: return LoadSystemSegment(insn);
    case Kind::kLar:
    case Kind::kLsl:
    case Kind::kVerr:
    case Kind::kVerw: return CheckSegment(insn);
    case Kind::kRdmsr: return ReadMsr(insn);
    case Kind::kWrmsr: return WriteMsr(insn);
    case Kind::kSysenter: return Sysenter(insn);
    case Kind::kSysexit: return Sysexit(insn);
    case Kind::kFpuUnavailable: return RaiseFpuUnavailable(insn);
    case Kind::kLegacy: return EmulateLegacy(insn);
    case Kind::kInvalid: return RaiseFault(kInvalidOpcode, insn);
    default: break;
  }
  // The cases that break out of the switch on a failed guest access.
  if (access_fault_) return RaiseAccessFault(insn);
  return ExitWith(
      MakeInstructionStop(StopReason::kUnsupportedInstruction, insn, "unsupported instruction"),
      insn.eip);
}

}  // namespace bt::runtime
