// Public embedding API of libbt: a 32-bit x86 PC run by dynamic binary
// translation. Nothing in this header depends on libbt's internals.
#pragma once

#include <bt/mmio_device.h>
#include <bt/port_device.h>
#include <bt/result.h>
#include <bt/stats.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace bt {

struct TranslatorOptions {
  // Host code cache size; when it fills up the whole cache is flushed. A
  // Linux boot with a few busybox workloads translates about 50,000 units,
  // which fill some 60 MiB; the host commits the memory only as units use it.
  std::size_t cache_bytes = 128u << 20;
  // Upper bound on guest instructions per translation unit (1 = single-step
  // units, useful to test the translator's unit boundaries).
  unsigned max_unit_instructions = 64;
  // Patch direct branches to jump straight to their target unit.
  bool chaining = true;
};

struct BootConfig {
  // The kernel, told apart by its contents: a Multiboot v1 kernel (ELF32, or
  // any image with the a.out kludge) or an i386 Linux bzImage (boot protocol
  // 2.10 or later, Linux 2.6.31 on), which is entered through the 32-bit boot
  // protocol with an e820 map of RAM.
  std::string kernel_path;
  std::string command_line;
  // Used instead of kernel_path when not empty: the image itself.
  std::vector<std::uint8_t> kernel_image;
  // Linux only: the initial RAM disk (an initramfs, compressed or not), put
  // as high in RAM as the kernel allows. initrd_image, when not empty, is
  // used instead of the file. Empty both: no initrd.
  std::string initrd_path;
  std::vector<std::uint8_t> initrd_image;
  // Boot nothing: RAM starts zeroed and the CPU in the Multiboot state
  // (32-bit protected mode, flat segments, paging off) at EIP 0; the
  // application loads code with WritePhysical and sets the registers.
  bool no_kernel = false;
};

struct MachineConfig {
  std::uint64_t ram_bytes = 128u << 20;
  BootConfig boot;
  // Receives every byte the guest sends to COM1 or port 0xE9. Called on the
  // thread that runs the guest. Defaults to discarding output.
  std::function<void(std::string_view)> serial_output;
  TranslatorOptions translator;
  // Bit n set: guest exception n (0-31, including int3 and into) stops the
  // run with kGuestException instead of going through the guest's IDT, as a
  // debugger or a test harness wants. Zero (the default) delivers them all.
  std::uint32_t intercepted_exceptions = 0;
};

struct Registers {
  std::uint32_t eax = 0, ecx = 0, edx = 0, ebx = 0;
  std::uint32_t esp = 0, ebp = 0, esi = 0, edi = 0;
  std::uint32_t eip = 0, eflags = 0x2;
};

// x87, MMX and SSE state in the FXSAVE layout (SDM Vol. 1, 10.5.1).
struct FpuState {
  std::array<std::uint8_t, 512> fxsave{};
};

enum class StopReason {
  kDebugExit,               // guest wrote `exit_value` to the debug-exit port
  kHalted,                  // hlt with interrupts disabled
  kTripleFault,             // an exception could not be delivered: the CPU would reset
  kReset,                   // the guest reset the machine (keyboard controller, port 0x92, 0xCF9)
  kUnsupportedInstruction,  // libbt cannot run the instruction at `eip` yet
  kGuestException,          // an intercepted exception `vector` at `eip` (see MachineConfig)
  kBudgetExhausted,         // the RunLimits time budget ran out
  kStopRequested,           // RequestStop() was called
  kHostError,               // libbt hit a host-side failure; see `message`
};

std::string_view ToString(StopReason reason);

struct StopInfo {
  StopReason reason = StopReason::kHostError;
  std::uint32_t exit_value = 0;
  std::uint32_t eip = 0;
  std::uint8_t vector = 0;
  std::uint32_t error_code = 0;
  std::uint32_t fault_address = 0;  // kGuestException with vector 14: CR2
  std::array<std::uint8_t, 15> instruction_bytes{};
  std::uint8_t instruction_length = 0;
  std::string message;  // human-readable summary of all of the above
};

struct RunLimits {
  // Zero means no limit.
  std::chrono::nanoseconds time_budget{0};
};

class Machine {
 public:
  // Validates the configuration, creates guest RAM and loads the boot image.
  static Result<std::unique_ptr<Machine>> Create(MachineConfig config);
  ~Machine();
  Machine(const Machine&) = delete;
  Machine& operator=(const Machine&) = delete;

  // Runs the guest on the calling thread until it stops. May be called again
  // after any stop except kTripleFault, kReset and kHostError to continue:
  // there is no firmware to start the machine over. Meanwhile the thread
  // holds back every signal but synchronous faults (translated code runs on
  // a stack with no room for a handler's frame): signals sent to the process
  // go to other threads, and those sent to this thread wait until Run()
  // returns.
  StopInfo Run(RunLimits limits = {});

  // Thread-safe: makes a Run() in progress return kStopRequested soon.
  void RequestStop();

  // Thread-safe: `bytes` arrive on COM1's receive line, in order, as if
  // typed on a terminal attached to it. They wait outside the UART until
  // the guest has room for them and asserts RTS, so none are lost; a halted
  // guest wakes up for them. May be called before or during Run().
  void SendSerialInput(std::string_view bytes);

  // Claims guest I/O ports [base, base + count). The device must outlive the
  // machine. Fails if the range overlaps a device already there.
  Result<void> AddPortDevice(std::uint16_t base, std::uint16_t count, PortDevice& device);
  // Claims guest-physical [base, base + size), above RAM and below 4 GiB,
  // for a memory-mapped device. The device must outlive the machine.
  Result<void> AddMmioDevice(std::uint64_t base, std::uint64_t size, MmioDevice& device);

  Registers GetRegisters() const;
  void SetRegisters(const Registers& registers);
  FpuState GetFpuState() const;
  // Fails if MXCSR sets bits this CPU reserves (FXRSTOR would fault).
  Result<void> SetFpuState(const FpuState& state);

  // Guest-physical memory access; fails for ranges outside RAM.
  Result<void> ReadPhysical(std::uint64_t address, void* data, std::size_t size) const;
  Result<void> WritePhysical(std::uint64_t address, const void* data, std::size_t size);

  Stats GetStats() const;

 private:
  struct Impl;
  explicit Machine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace bt
