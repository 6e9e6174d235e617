// Linux/x86 boot protocol loader (Documentation/arch/x86/boot.rst): puts the
// protected-mode part of an i386 bzImage, its initrd, the command line and
// struct boot_params (the "zero page") into guest RAM and enters the kernel
// through the 32-bit boot protocol, as kexec does. The real-mode setup code
// is not run: there is no BIOS for it to call.
#pragma once

#include "mmu/physical_memory.h"

#include <bt/result.h>

#include <cstdint>
#include <span>
#include <string_view>

namespace bt::runtime {

// The state the 32-bit boot protocol asks for besides protected mode with
// paging and interrupts off: a GDT with flat 4 GiB segments __BOOT_CS (0x10,
// execute/read) and __BOOT_DS (0x18, read/write), CS = __BOOT_CS, DS = ES =
// SS = __BOOT_DS, ESI = boot_params and EBP = EDI = EBX = 0.
struct LinuxBootState {
  std::uint32_t eip;
  std::uint32_t esi;
  std::uint32_t gdt_base;
  std::uint16_t gdt_limit;
};

inline constexpr std::uint16_t kLinuxBootCodeSelector = 0x10;
inline constexpr std::uint16_t kLinuxBootDataSelector = 0x18;

// Where the loader puts its structures: low memory, clear of the kernel (at
// 1 MiB or above) and of the EBDA.
inline constexpr std::uint32_t kLinuxBootParamsAddress = 0x10000;
inline constexpr std::uint32_t kLinuxGdtAddress = 0x11000;
inline constexpr std::uint32_t kLinuxCommandLineAddress = 0x20000;

// A Linux kernel image: the boot protocol's "HdrS" signature at 0x202.
bool IsLinuxKernel(std::span<const std::uint8_t> image);

// Loads `kernel` (a bzImage speaking boot protocol 2.10 or later) and
// `initrd` (none when empty) into `memory` and builds boot_params with
// `command_line`. Checks everything before writing anything, so a failed load
// leaves RAM untouched. Error messages describe the image but do not name it.
Result<LinuxBootState> LoadLinux(std::span<const std::uint8_t> kernel,
                                 std::span<const std::uint8_t> initrd,
                                 std::string_view command_line, mmu::PhysicalMemory& memory);

}  // namespace bt::runtime
