// bt::Machine: assembles memory, devices, translator and vCPU from a
// MachineConfig.
#include "decoder/decoder.h"
#include "devices/cmos_rtc.h"
#include "devices/debug_console.h"
#include "devices/debug_exit.h"
#include "devices/keyboard_controller_8042.h"
#include "devices/layout.h"
#include "devices/pci_host_bridge.h"
#include "devices/pic_8259.h"
#include "devices/pit_8254.h"
#include "devices/port_bus.h"
#include "devices/reset_register.h"
#include "devices/uart_16550.h"
#include "mmu/physical_memory.h"
#include "mmu/shadow_mmu.h"
#include "platform/host_memory.h"
#include "runtime/boot_image.h"
#include "runtime/linux_loader.h"
#include "runtime/multiboot_loader.h"
#include "runtime/vcpu.h"
#include "translator/code_cache.h"
#include "translator/trampolines.h"
#include "translator/translator.h"

#include <bt/machine.h>

#include <array>
#include <cstring>

namespace bt {

struct Machine::Impl {
  MachineConfig config;
  std::optional<mmu::PhysicalMemory> memory;
  std::unique_ptr<mmu::ShadowMmu> mmu;
  std::unique_ptr<translator::CodeCache> cache;
  translator::Trampolines trampolines;
  decoder::Decoder decoder;
  std::unique_ptr<translator::Translator> translator;
  devices::PortBus ports;
  devices::MmioBus mmio;
  std::unique_ptr<devices::Uart16550> com1;
  std::unique_ptr<devices::DebugConsole> debug_console;
  std::unique_ptr<devices::DebugExit> debug_exit;
  devices::Pic8259Pair pic;
  std::unique_ptr<devices::Pit8254> pit;
  std::unique_ptr<devices::CmosRtc> cmos;
  // The devices the vCPU advances with time.
  std::array<devices::TimedDevice*, 2> timed_devices{};
  std::unique_ptr<devices::KeyboardController8042> keyboard;
  std::unique_ptr<devices::ResetRegister> system_control_a;
  devices::PciHostBridge pci;
  std::unique_ptr<devices::ResetRegister> reset_control;
  std::unique_ptr<runtime::Vcpu> vcpu;
  bool dead = false;  // after a triple fault, a reset or a host error

  Result<void> Build();
  Result<void> Boot();
};

namespace {

// The interrupt listener of an ISA device wired to PIC input kIrq.
template <unsigned kIrq>
void SetPicIrq(void* pic_pair, bool level) {
  static_cast<devices::Pic8259Pair*>(pic_pair)->SetIrq(kIrq, level);
}

Error Prefixed(const std::string& prefix, const std::string& message) {
  return Error{prefix + message};
}

// Base 0, limit 4 GiB, 32-bit, accessed: what the GDT entries of both boot
// protocols hold, cached as a segment load would.
void LoadFlatSegments(translator::CpuState& state, std::uint16_t code, std::uint16_t data) {
  for (unsigned i = 0; i < 6; ++i) {
    const bool is_code = i == translator::kCs;
    state.segment[i] = {is_code ? code : data, 0, 0xFFFFFFFF,
                        static_cast<std::uint16_t>(is_code ? 0xC09B : 0xC093)};
  }
}

// A boot file given as bytes or, when there are none, by path (read into
// `storage`); neither gives no bytes.
Result<std::span<const std::uint8_t>> BootFile(const std::vector<std::uint8_t>& bytes,
                                               const std::string& path,
                                               std::vector<std::uint8_t>& storage) {
  if (!bytes.empty() || path.empty()) return std::span<const std::uint8_t>(bytes);
  auto read = runtime::ReadImageFile(path);
  if (!read) return Error{read.error()};
  storage = std::move(read.value());
  return std::span<const std::uint8_t>(storage);
}

}  // namespace

Result<void> Machine::Impl::Build() {
  auto ram = mmu::PhysicalMemory::Create(config.ram_bytes);
  if (!ram) return Error{ram.error()};
  memory.emplace(std::move(ram.value()));
  auto shadow = mmu::ShadowMmu::Create(*memory);
  if (!shadow) return Error{shadow.error()};
  mmu = std::move(shadow.value());

  const std::size_t pages = memory->size() / mmu::PhysicalMemory::kPageSize;
  auto code_cache = translator::CodeCache::Create(config.translator.cache_bytes, pages);
  if (!code_cache) return Error{code_cache.error()};
  cache = std::move(code_cache.value());
  auto glue = translator::BuildTrampolines(*cache);
  if (!glue) return Error{glue.error()};
  trampolines = glue.value();
  if (config.translator.max_unit_instructions == 0) {
    return Error{"the translation unit cap must be at least 1 instruction"};
  }
  translator = std::make_unique<translator::Translator>(
      decoder, *cache, trampolines,
      translator::Translator::Options{config.translator.max_unit_instructions,
                                      config.translator.chaining});

  auto output = config.serial_output ? config.serial_output : [](std::string_view) {};
  com1 = std::make_unique<devices::Uart16550>(output, &SetPicIrq<devices::kCom1Irq>, &pic);
  debug_console = std::make_unique<devices::DebugConsole>(output);
  debug_exit =
      std::make_unique<devices::DebugExit>([this](std::uint32_t value) { vcpu->DebugExit(value); });
  const devices::TimedDevice::Now now = [] { return std::chrono::steady_clock::now(); };
  pit = std::make_unique<devices::Pit8254>(now, &SetPicIrq<devices::kTimerIrq>, &pic);
  cmos = std::make_unique<devices::CmosRtc>(std::chrono::system_clock::now(), now,
                                            &SetPicIrq<devices::kRtcIrq>, &pic);
  timed_devices = {pit.get(), cmos.get()};
  const devices::SystemReset reset = [this] { vcpu->StopForReset(); };
  keyboard = std::make_unique<devices::KeyboardController8042>(
      &SetPicIrq<devices::kKeyboardIrq>, &SetPicIrq<devices::kAuxIrq>, &pic, reset);
  system_control_a =
      std::make_unique<devices::ResetRegister>(devices::ResetRegister::kSystemControlPortA, reset);
  reset_control =
      std::make_unique<devices::ResetRegister>(devices::ResetRegister::kPiixResetControl, reset);
  // The serial port and the debug console call the application's output
  // callback; the other devices run libbt's code only.
  struct Placement {
    devices::PortRange range;
    PortDevice* device;
    devices::PortBus::Code code;
  };
  constexpr auto kOnlyLibbt = devices::PortBus::Code::kLibbtOnly;
  for (const Placement& placement :
       {Placement{devices::kCom1Ports, com1.get(), devices::PortBus::Code::kApplication},
        Placement{devices::kDebugConsolePorts, debug_console.get(),
                  devices::PortBus::Code::kApplication},
        Placement{devices::kDebugExitPorts, debug_exit.get(), kOnlyLibbt},
        Placement{devices::kPicMasterPorts, &pic.master_ports(), kOnlyLibbt},
        Placement{devices::kPicSlavePorts, &pic.slave_ports(), kOnlyLibbt},
        Placement{devices::kElcrPorts, &pic.elcr_ports(), kOnlyLibbt},
        Placement{devices::kPitPorts, pit.get(), kOnlyLibbt},
        Placement{devices::kSystemControlBPorts, &pit->port61(), kOnlyLibbt},
        Placement{devices::kCmosPorts, cmos.get(), kOnlyLibbt},
        Placement{devices::kKeyboardDataPorts, &keyboard->data_port(), kOnlyLibbt},
        Placement{devices::kKeyboardCommandPorts, &keyboard->command_port(), kOnlyLibbt},
        Placement{devices::kSystemControlAPorts, system_control_a.get(), kOnlyLibbt},
        Placement{devices::kPciConfigAddressPorts, &pci.address_port(), kOnlyLibbt},
        Placement{devices::kResetControlPorts, reset_control.get(), kOnlyLibbt},
        Placement{devices::kPciConfigDataPorts, &pci.data_port(), kOnlyLibbt}}) {
    const devices::PortRange range = placement.range;
    if (auto added = ports.Register(range.base, range.count, *placement.device, placement.code);
        !added) {
      return Error{added.error()};
    }
  }

  auto cpu = runtime::Vcpu::Create(runtime::Vcpu::Parts{
      *memory, *mmu, ports, mmio, *cache, *translator, trampolines, decoder, pic, timed_devices});
  if (!cpu) return Error{cpu.error()};
  vcpu = std::move(cpu.value());
  pic.SetIntrListener(&runtime::Vcpu::OnInterruptRequest, vcpu.get());
  com1->SetInputListener(&runtime::Vcpu::OnDeviceAttention, vcpu.get());
  vcpu->SetDeviceService([](void* uart) { static_cast<devices::Uart16550*>(uart)->ServiceInput(); },
                         com1.get());
  vcpu->set_intercepted_exceptions(config.intercepted_exceptions);
  return {};
}

Result<void> Machine::Impl::Boot() {
  // Multiboot v1 section 3.2 and the Linux 32-bit boot protocol alike: 32-bit
  // protected mode, flat 4 GiB segments, paging off, interrupts off.
  translator::CpuState& state = vcpu->state();
  state.cr0 = 0x11;
  state.SetEflags(0x2);
  LoadFlatSegments(state, 0x08, 0x10);
  if (config.boot.no_kernel) return {};

  if (config.boot.kernel_image.empty() && config.boot.kernel_path.empty()) {
    return Error{"no kernel to boot was given"};
  }
  std::vector<std::uint8_t> kernel_file, initrd_file;
  auto kernel = BootFile(config.boot.kernel_image, config.boot.kernel_path, kernel_file);
  if (!kernel) return Error{kernel.error()};
  auto initrd = BootFile(config.boot.initrd_image, config.boot.initrd_path, initrd_file);
  if (!initrd) return Error{initrd.error()};
  const std::string name =
      config.boot.kernel_image.empty() ? config.boot.kernel_path : "kernel image";

  if (runtime::IsLinuxKernel(*kernel)) {
    auto boot = runtime::LoadLinux(*kernel, *initrd, config.boot.command_line, *memory);
    if (!boot) return Prefixed(name + ": ", boot.error());
    LoadFlatSegments(state, runtime::kLinuxBootCodeSelector, runtime::kLinuxBootDataSelector);
    state.gdt_base = boot->gdt_base;
    state.gdt_limit = boot->gdt_limit;
    state.eip = boot->eip;
    state.gpr[translator::kEsi] = boot->esi;
    return {};
  }
  if (!initrd->empty()) {
    return Error{name + ": an initrd was given, but this is a Multiboot kernel, not a Linux one"};
  }
  auto boot = runtime::LoadMultiboot(*kernel, config.boot.command_line, *memory);
  if (!boot) return Prefixed(name + ": ", boot.error());
  state.eip = boot->eip;
  state.gpr[translator::kEax] = boot->eax;
  state.gpr[translator::kEbx] = boot->ebx;
  return {};
}

Result<std::unique_ptr<Machine>> Machine::Create(MachineConfig config) {
  auto impl = std::make_unique<Impl>();
  impl->config = std::move(config);
  if (auto built = impl->Build(); !built) return Error{built.error()};
  if (auto booted = impl->Boot(); !booted) return Error{booted.error()};
  return std::unique_ptr<Machine>(new Machine(std::move(impl)));
}

Machine::Machine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Machine::~Machine() = default;

StopInfo Machine::Run(RunLimits limits) {
  if (impl_->dead) {
    StopInfo stop;
    stop.reason = StopReason::kHostError;
    stop.message = "the machine cannot continue after a triple fault, a reset or a host error";
    return stop;
  }
  StopInfo stop = impl_->vcpu->Run(limits);
  if (stop.reason == StopReason::kTripleFault || stop.reason == StopReason::kReset ||
      stop.reason == StopReason::kHostError) {
    impl_->dead = true;
  }
  return stop;
}

void Machine::RequestStop() { impl_->vcpu->RequestStop(); }

void Machine::SendSerialInput(std::string_view bytes) { impl_->com1->Receive(bytes); }

Result<void> Machine::AddPortDevice(std::uint16_t base, std::uint16_t count, PortDevice& device) {
  return impl_->ports.Register(base, count, device);
}

Result<void> Machine::AddMmioDevice(std::uint64_t base, std::uint64_t size, MmioDevice& device) {
  return impl_->mmio.Register(base, size, device, impl_->memory->size());
}

Registers Machine::GetRegisters() const {
  const translator::CpuState& state = impl_->vcpu->state();
  Registers r;
  r.eax = state.gpr[0];
  r.ecx = state.gpr[1];
  r.edx = state.gpr[2];
  r.ebx = state.gpr[3];
  r.esp = state.gpr[4];
  r.ebp = state.gpr[5];
  r.esi = state.gpr[6];
  r.edi = state.gpr[7];
  r.eip = state.eip;
  r.eflags = state.Eflags();
  return r;
}

void Machine::SetRegisters(const Registers& r) {
  translator::CpuState& state = impl_->vcpu->state();
  const std::uint32_t values[8] = {r.eax, r.ecx, r.edx, r.ebx, r.esp, r.ebp, r.esi, r.edi};
  for (unsigned i = 0; i < 8; ++i) state.gpr[i] = values[i];
  state.eip = r.eip;
  state.SetEflags(r.eflags);
}

FpuState Machine::GetFpuState() const {
  FpuState fpu;
  std::memcpy(fpu.fxsave.data(), impl_->vcpu->state().guest_fpu, fpu.fxsave.size());
  return fpu;
}

Result<void> Machine::SetFpuState(const FpuState& fpu) {
  constexpr std::size_t kMxcsrOffset = 24;
  std::uint32_t mxcsr = 0;
  std::memcpy(&mxcsr, fpu.fxsave.data() + kMxcsrOffset, sizeof(mxcsr));
  if (mxcsr & ~runtime::HostMxcsrMask()) {
    return Error{"MXCSR sets reserved bits"};
  }
  std::memcpy(impl_->vcpu->state().guest_fpu, fpu.fxsave.data(), fpu.fxsave.size());
  return {};
}

Result<void> Machine::ReadPhysical(std::uint64_t address, void* data, std::size_t size) const {
  if (!impl_->memory->Read(address, data, size)) {
    return Error{"guest-physical range is outside RAM"};
  }
  return {};
}

Result<void> Machine::WritePhysical(std::uint64_t address, const void* data, std::size_t size) {
  if (!impl_->memory->Write(address, data, size)) {
    return Error{"guest-physical range is outside RAM"};
  }
  impl_->vcpu->InvalidatePhysical(address, size);
  return {};
}

Stats Machine::GetStats() const {
  Stats stats;
  const auto& translation = impl_->translator->counters();
  stats.units_translated = translation.units;
  stats.instructions_translated = translation.instructions;
  stats.translation_ns = translation.nanoseconds;
  const auto& cache = impl_->cache->counters();
  stats.chains_made = cache.chains_made;
  stats.chains_broken = cache.chains_broken;
  stats.cache_flushes = cache.flushes;
  stats.units_evicted = cache.units_evicted;
  const auto& cpu = impl_->vcpu->counters();
  stats.cache_lookups = cpu.cache_lookups;
  stats.cache_hits = cpu.cache_hits;
  stats.cache_misses = cpu.cache_misses;
  stats.smc_invalidations = cpu.smc_invalidations;
  stats.adaptive_resolved = cpu.adaptive_resolved;
  stats.adaptive_reverted = cpu.adaptive_reverted;
  stats.mapped_after_page_fault = cpu.mapped_after_page_fault;
  stats.dispatcher_entries = cpu.dispatcher_entries;
  stats.callouts = cpu.callouts;
  stats.host_faults = cpu.host_faults;
  stats.exits = cpu.exits;
  const mmu::ShadowCounters& shadow = impl_->mmu->counters();
  stats.shadow_full_flushes = shadow.full_flushes;
  stats.shadow_cr3_flushes = shadow.cr3_flushes;
  stats.shadow_space_hits = shadow.space_hits;
  stats.shadow_pages_kept = shadow.pages_kept;
  stats.shadow_page_flushes = shadow.page_flushes;
  stats.shadow_pages_unparked = shadow.pages_unparked;
  return stats;
}

}  // namespace bt
