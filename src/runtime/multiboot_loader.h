// Multiboot v1 loader (Multiboot Specification 0.6.96): puts an ELF32 kernel,
// or any image with the a.out kludge, into guest RAM and builds the Multiboot
// information structure, the way GRUB and QEMU's -kernel do.
#pragma once

#include "mmu/physical_memory.h"

#include <bt/result.h>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace bt::runtime {

// Registers a Multiboot kernel gets at its entry (spec 3.2): EAX holds the
// boot-loader magic and EBX the physical address of the information
// structure. The rest of that machine state (32-bit protected mode with flat
// segments, paging and interrupts off) is the runtime's to set up.
struct BootState {
  std::uint32_t eip;
  std::uint32_t eax;
  std::uint32_t ebx;
};

inline constexpr std::uint32_t kMultibootBootloaderMagic = 0x2BADB002;

// Loads `image` into `memory` and builds the information structure in low
// memory at 0x8000, with `command_line` as the kernel command line. Checks
// everything before writing anything, so a failed load leaves RAM untouched.
// Error messages describe the image but do not name it: prefix the file name.
Result<BootState> LoadMultiboot(std::span<const std::uint8_t> image, std::string_view command_line,
                                mmu::PhysicalMemory& memory);

}  // namespace bt::runtime
