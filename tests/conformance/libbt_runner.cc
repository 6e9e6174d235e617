#include "libbt_runner.h"

#include <chrono>
#include <cstring>
#include <string>

namespace bt::conformance {
namespace {

// The harness sits on its own pages below the snippet: code that puts the
// machine in the state the native runner's process has (CR0.NE/MP and
// CR4.OSFXSR/OSXMMEXCPT as Linux sets them, FS/GS bases) and jumps to the
// snippet, then its data. Keeping code and data apart means reloading the
// GDT does not invalidate the harness's translation.
constexpr std::uint32_t kHarnessCode = CONF_CODE_ADDRESS - 0x1000;
constexpr std::uint32_t kHarnessData = CONF_CODE_ADDRESS - 0x2000;
constexpr std::uint32_t kGdt = kHarnessData;
constexpr std::uint32_t kGdtr = kHarnessData + 0x100;
constexpr std::uint32_t kFsSelectorSlot = kHarnessData + 0x110;
constexpr std::uint32_t kGsSelectorSlot = kHarnessData + 0x112;
constexpr std::uint32_t kSavedEax = kHarnessData + 0x120;
constexpr std::uint16_t kFsSelector = 0x18, kGsSelector = 0x20;
constexpr std::uint32_t kCr0 = 0x33;  // PE MP ET NE
constexpr std::uint32_t kCr0Pg = 0x80000000u;
constexpr std::uint32_t kCr4 = 0x600;  // OSFXSR OSXMMEXCPT
constexpr std::uint64_t kRamBytes = 8u << 20;
// Page tables, outside every mapped page: a directory and the tables for
// linear [0, 4 MiB) and [4, 8 MiB).
constexpr std::uint32_t kPageDirectory = 0x700000;
constexpr std::uint32_t kPageTables = 0x701000;

class Code {
 public:
  void Bytes(std::initializer_list<std::uint8_t> bytes) {
    for (std::uint8_t b : bytes) code_.push_back(b);
  }
  void Dword(std::uint32_t value) {
    for (int i = 0; i < 4; ++i) code_.push_back(static_cast<std::uint8_t>(value >> (8 * i)));
  }
  std::size_t size() const { return code_.size(); }
  const std::uint8_t* data() const { return code_.data(); }

 private:
  std::vector<std::uint8_t> code_;
};

// The harness's first run loads CR3; later runs enter at kLaterEntry, past
// it, as the page tables never change and a CR3 load would drop every
// shadow mapping each run.
constexpr std::uint32_t kLaterEntry = 15;

// Touches neither flags nor any register but EAX, which it restores.
Code HarnessCode(bool paging) {
  Code c;
  c.Bytes({0xA3});  // mov [saved], eax
  c.Dword(kSavedEax);
  c.Bytes({0xB8});  // mov eax, page directory
  c.Dword(kPageDirectory);
  c.Bytes({0x0F, 0x22, 0xD8});  // mov cr3, eax
  c.Bytes({0xEB, 0x05});        // jmp past the later runs' entry
  c.Bytes({0xA3});              // kLaterEntry: mov [saved], eax
  c.Dword(kSavedEax);
  c.Bytes({0xB8});  // mov eax, cr0 value
  c.Dword(paging ? kCr0 | kCr0Pg : kCr0);
  c.Bytes({0x0F, 0x22, 0xC0});  // mov cr0, eax
  c.Bytes({0xB8});
  c.Dword(kCr4);
  c.Bytes({0x0F, 0x22, 0xE0});  // mov cr4, eax
  c.Bytes({0x0F, 0x01, 0x15});  // lgdt [gdtr]
  c.Dword(kGdtr);
  c.Bytes({0x8E, 0x25});  // mov fs, [slot]
  c.Dword(kFsSelectorSlot);
  c.Bytes({0x8E, 0x2D});  // mov gs, [slot]
  c.Dword(kGsSelectorSlot);
  c.Bytes({0xA1});  // mov eax, [saved]
  c.Dword(kSavedEax);
  c.Bytes({0xE9});  // jmp snippet
  c.Dword(CONF_CODE_ADDRESS - (kHarnessCode + static_cast<std::uint32_t>(c.size()) + 4));
  return c;
}

// Present, writable identity entries for the harness, code and data pages.
std::vector<std::uint32_t> PageTables() {
  std::vector<std::uint32_t> tables(1024 * 3, 0);
  std::uint32_t* directory = tables.data();
  directory[0] = (kPageTables + 0x0000) | 3;
  directory[1] = (kPageTables + 0x1000) | 3;
  auto map = [&](std::uint32_t address, std::uint32_t bytes) {
    for (std::uint32_t page = address; page < address + bytes; page += 0x1000) {
      tables[1024 + page / 0x1000] = page | 3;
    }
  };
  map(kHarnessData, 0x2000);
  map(CONF_CODE_ADDRESS, CONF_CODE_BYTES);
  map(CONF_DATA_ADDRESS, CONF_DATA_BYTES);
  return tables;
}

std::uint64_t Descriptor(std::uint32_t base, std::uint8_t access) {
  // 4 GiB limit in pages, 32-bit.
  return 0xFFFFull | (static_cast<std::uint64_t>(base & 0xFFFFFF) << 16) |
         static_cast<std::uint64_t>(access) << 40 | 0xCFull << 48 |
         static_cast<std::uint64_t>(base >> 24) << 56;
}

}  // namespace

Result<std::unique_ptr<LibbtRunner>> LibbtRunner::Create(unsigned max_unit_instructions,
                                                         bool paging) {
  std::unique_ptr<LibbtRunner> runner(new LibbtRunner(max_unit_instructions, paging));
  if (auto booted = runner->Boot(); !booted) return Error{booted.error()};
  return runner;
}

Result<void> LibbtRunner::Boot() {
  MachineConfig config;
  config.ram_bytes = kRamBytes;
  config.boot.no_kernel = true;
  config.translator.max_unit_instructions = max_unit_instructions_;
  // Every exception ends the snippet, as a signal ends the native run.
  config.intercepted_exceptions = ~0u;
  auto machine = Machine::Create(std::move(config));
  if (!machine) return Error{machine.error()};
  machine_ = std::move(machine.value());
  harness_loaded_ = false;
  cr3_loaded_ = false;
  const std::vector<std::uint32_t> tables = PageTables();
  if (auto written =
          machine_->WritePhysical(kPageDirectory, tables.data(), tables.size() * sizeof(tables[0]));
      !written) {
    return written;
  }
  const Code code = HarnessCode(paging_);
  return machine_->WritePhysical(kHarnessCode, code.data(), code.size());
}

Result<void> LibbtRunner::LoadHarness(std::uint32_t fs_base, std::uint32_t gs_base) {
  if (harness_loaded_ && fs_base == fs_base_ && gs_base == gs_base_) return {};
  const std::uint64_t gdt[5] = {0, Descriptor(0, 0x9B), Descriptor(0, 0x93),
                                Descriptor(fs_base, 0x93), Descriptor(gs_base, 0x93)};
  if (auto written = machine_->WritePhysical(kGdt, gdt, sizeof(gdt)); !written) return written;
  std::uint8_t gdtr[6];
  const std::uint16_t limit = sizeof(gdt) - 1;
  const std::uint32_t base = kGdt;
  std::memcpy(gdtr, &limit, 2);
  std::memcpy(gdtr + 2, &base, 4);
  if (auto written = machine_->WritePhysical(kGdtr, gdtr, sizeof(gdtr)); !written) return written;
  // A zero base leaves the register null, as the native runner's FS is.
  const std::uint16_t selectors[2] = {static_cast<std::uint16_t>(fs_base ? kFsSelector : 0),
                                      static_cast<std::uint16_t>(gs_base ? kGsSelector : 0)};
  if (auto written = machine_->WritePhysical(kFsSelectorSlot, selectors, sizeof(selectors));
      !written) {
    return written;
  }
  harness_loaded_ = true;
  fs_base_ = fs_base;
  gs_base_ = gs_base;
  return {};
}

Result<void> LibbtRunner::Run(const conf_request& request, conf_result& result) {
  result = conf_result{};
  if (request.code_bytes > CONF_CODE_BYTES) return Error{"snippet larger than the code pages"};
  if (auto loaded = LoadHarness(request.fs_base, request.gs_base); !loaded) return loaded;
  std::vector<std::uint8_t> code(CONF_CODE_BYTES, CONF_INT3);
  std::memcpy(code.data(), request.code, request.code_bytes);
  if (auto written = machine_->WritePhysical(CONF_CODE_ADDRESS, code.data(), code.size());
      !written) {
    return written;
  }
  if (auto written = machine_->WritePhysical(CONF_DATA_ADDRESS, request.data, CONF_DATA_BYTES);
      !written) {
    return written;
  }
  Registers registers;
  const std::uint32_t* gpr = request.cpu.gpr;
  registers.eax = gpr[CONF_EAX];
  registers.ecx = gpr[CONF_ECX];
  registers.edx = gpr[CONF_EDX];
  registers.ebx = gpr[CONF_EBX];
  registers.esp = gpr[CONF_ESP];
  registers.ebp = gpr[CONF_EBP];
  registers.esi = gpr[CONF_ESI];
  registers.edi = gpr[CONF_EDI];
  registers.eip = cr3_loaded_ ? kHarnessCode + kLaterEntry : kHarnessCode;
  cr3_loaded_ = true;
  // What the native runner can set from user mode; IF is on there.
  registers.eflags = (request.cpu.eflags & 0x00000CD5u) | 0x202u;
  machine_->SetRegisters(registers);
  FpuState fpu;
  std::memcpy(fpu.fxsave.data(), request.cpu.fxsave, fpu.fxsave.size());
  if (auto set = machine_->SetFpuState(fpu); !set) {
    result.outcome = CONF_RUNNER_ERROR;
    std::snprintf(result.message, sizeof(result.message), "%s", set.error().c_str());
    return {};
  }

  RunLimits limits;
  limits.time_budget = std::chrono::milliseconds(request.timeout_ms ? request.timeout_ms : 10000);
  const StopInfo stop = machine_->Run(limits);

  const Registers end = machine_->GetRegisters();
  const std::uint32_t values[8] = {end.eax, end.ecx, end.edx, end.ebx,
                                   end.esp, end.ebp, end.esi, end.edi};
  std::memcpy(result.cpu.gpr, values, sizeof(values));
  result.cpu.eflags = end.eflags;
  result.cpu.eip = stop.eip;
  const FpuState final_fpu = machine_->GetFpuState();
  std::memcpy(result.cpu.fxsave, final_fpu.fxsave.data(), final_fpu.fxsave.size());
  if (auto read = machine_->ReadPhysical(CONF_DATA_ADDRESS, result.data, CONF_DATA_BYTES); !read) {
    return read;
  }
  switch (stop.reason) {
    case StopReason::kGuestException:
      result.outcome = CONF_EXCEPTION;
      result.vector = stop.vector;
      result.error_code = stop.error_code;
      result.fault_address = stop.vector == 14 ? stop.fault_address : 0;
      break;
    case StopReason::kBudgetExhausted: result.outcome = CONF_TIMEOUT; break;
    default:
      result.outcome = CONF_RUNNER_ERROR;
      std::snprintf(result.message, sizeof(result.message), "%s", stop.message.c_str());
      break;
  }
  // A triple fault or host error leaves the machine unusable; the next test
  // gets a fresh one.
  if (stop.reason == StopReason::kTripleFault || stop.reason == StopReason::kHostError) {
    return Boot();
  }
  return {};
}

}  // namespace bt::conformance
