#include "runtime/linux_loader.h"

#include "runtime/boot_image.h"

#include <algorithm>
#include <array>
#include <cassert>
#include <string>
#include <vector>

namespace bt::runtime {
namespace {

// Setup header fields (boot.rst, "The Real-Mode Kernel Header"), at the same
// offset in the image and in boot_params, which carries a copy of the header.
constexpr std::size_t kSetupSects = 0x1F1;
constexpr std::size_t kJump = 0x200;  // the header ends at 0x202 + the byte at 0x201
constexpr std::size_t kHeaderSignature = 0x202;
constexpr std::size_t kVersion = 0x206;
constexpr std::size_t kTypeOfLoader = 0x210;
constexpr std::size_t kLoadflags = 0x211;
constexpr std::size_t kCode32Start = 0x214;
constexpr std::size_t kRamdiskImage = 0x218;
constexpr std::size_t kRamdiskSize = 0x21C;
constexpr std::size_t kHeapEndPtr = 0x224;
constexpr std::size_t kCmdLinePtr = 0x228;
constexpr std::size_t kInitrdAddrMax = 0x22C;
constexpr std::size_t kRelocatableKernel = 0x234;
constexpr std::size_t kXloadflags = 0x236;
constexpr std::size_t kCmdlineSize = 0x238;
constexpr std::size_t kPrefAddress = 0x258;
constexpr std::size_t kInitSize = 0x260;
// boot_params has room for the header up to edd_mbr_sig_buffer at 0x290.
constexpr std::size_t kHeaderRoomEnd = 0x290;

constexpr std::uint32_t kSignature = 0x53726448;  // "HdrS"
// 2.10 (Linux 2.6.31) added init_size and pref_address: without them a
// loader cannot tell how much memory the kernel takes once it decompresses
// itself, nor where an initrd is safe from it.
constexpr std::uint16_t kMinimumVersion = 0x020A;
constexpr std::uint8_t kLoadedHigh = 0x01;
constexpr std::uint8_t kCanUseHeap = 0x80;
constexpr std::uint16_t kXlfKernel64 = 0x01;
constexpr std::uint8_t kUndefinedLoader = 0xFF;
// Only the real-mode setup code reads heap_end_ptr, and the 32-bit entry
// skips it; the header gets what boot.rst's sample 16-bit loader sets (heap
// end 0xE000, as an offset from the setup code minus 0x200) all the same, so
// that the kernel sees what a conforming loader would hand it.
constexpr std::uint16_t kHeapEnd = 0xE000 - 0x200;

// boot_params outside the setup header (zero-page.rst).
constexpr std::size_t kBootParamsBytes = 4096;
constexpr std::size_t kE820Entries = 0x1E8;
constexpr std::size_t kE820Table = 0x2D0;
constexpr std::size_t kE820EntryBytes = 20;
constexpr std::uint32_t kE820Ram = 1;
constexpr std::uint32_t kE820Reserved = 2;

// Null, unused, __BOOT_CS (base 0, limit 4 GiB, 32-bit, execute/read) and
// __BOOT_DS (read/write), already marked accessed.
constexpr std::array<std::uint64_t, 4> kGdt = {0, 0, 0x00CF9B000000FFFF, 0x00CF93000000FFFF};

constexpr std::uint64_t kPageSize = 4096;

std::string VersionName(std::uint16_t version) {
  const unsigned minor = version & 0xFF;
  return std::to_string(version >> 8) + "." + (minor < 10 ? "0" : "") + std::to_string(minor);
}

struct KernelLayout {
  std::size_t header_end;
  std::size_t payload_offset;  // the protected-mode kernel in the file
  std::uint64_t load_address;
  std::uint64_t end;  // of everything the kernel occupies until it reads the e820 map
};

Result<KernelLayout> CheckKernel(std::span<const std::uint8_t> image, std::uint64_t ram_bytes) {
  if (!IsLinuxKernel(image)) {
    return Error{"no Linux boot protocol header (\"HdrS\" at 0x202): not a Linux bzImage"};
  }
  const std::size_t header_end = kJump + 2 + image[kJump + 1];
  const std::uint16_t version = Load16(image, kVersion);
  if (version < kMinimumVersion) {
    return Error{"the kernel speaks boot protocol " + VersionName(version) +
                 "; libbt needs 2.10 or later (Linux 2.6.31 or later)"};
  }
  if (header_end < kInitSize + 4 || header_end > kHeaderRoomEnd || header_end > image.size()) {
    return Error{"the setup header ends at " + Hex(header_end) + ", which does not fit protocol " +
                 VersionName(version) + " in a file of " + std::to_string(image.size()) +
                 " bytes; the image is truncated or corrupt"};
  }
  if (Load16(image, kXloadflags) & kXlfKernel64) {
    return Error{
        "this is an x86-64 kernel (xloadflags has XLF_KERNEL_64); libbt runs 32-bit guests "
        "and has no long mode: boot an i386 kernel such as Debian's linux-image-686"};
  }
  if (!(image[kLoadflags] & kLoadedHigh)) {
    return Error{"the kernel is a zImage (loadflags LOADED_HIGH clear); libbt boots bzImages"};
  }
  // boot.rst: a setup_sects of 0 means 4; the 512-byte boot sector comes first.
  const unsigned setup_sects = image[kSetupSects] == 0 ? 4 : image[kSetupSects];
  const std::size_t payload_offset = (setup_sects + 1) * 512u;
  if (payload_offset >= image.size()) {
    return Error{"the setup code takes " + std::to_string(setup_sects) +
                 " sectors and leaves no protected-mode kernel in the " +
                 std::to_string(image.size()) + "-byte file; it is truncated or corrupt"};
  }

  // The kernel decompresses itself to pref_address (its LOAD_PHYSICAL_ADDR),
  // wherever it was loaded below that, and needs init_size bytes from there.
  // A relocatable kernel is loaded there directly (the address is a multiple
  // of kernel_alignment by construction); any other bzImage at 1 MiB.
  const std::uint64_t pref_address = Load64(image, kPrefAddress);
  const std::uint64_t init_size = Load32(image, kInitSize);
  if (pref_address < kHighMemoryStart) {
    return Error{"the kernel's pref_address " + Hex(pref_address) + " is below 1 MiB"};
  }
  const bool relocatable = image[kRelocatableKernel] != 0;
  const std::uint64_t load_address = relocatable ? pref_address : kHighMemoryStart;
  const std::uint64_t end =
      std::max(load_address + (image.size() - payload_offset), pref_address + init_size);
  if (end > ram_bytes) {
    return Error{"the kernel needs " + SizeName((end + kMiB - 1) / kMiB * kMiB) +
                 " of guest RAM (it runs at " + Hex(pref_address) + " and takes " +
                 SizeName(init_size) + " from there); the guest has " + SizeName(ram_bytes) +
                 ": give it more RAM"};
  }
  return KernelLayout{header_end, payload_offset, load_address, end};
}

// The initrd goes as high as the kernel allows (initrd_addr_max is the last
// byte it may occupy) and RAM reaches, page-aligned, above the kernel.
Result<std::uint64_t> PlaceInitrd(std::span<const std::uint8_t> image, const KernelLayout& kernel,
                                  std::uint64_t initrd_bytes, std::uint64_t ram_bytes) {
  const std::uint64_t limit =
      std::min(static_cast<std::uint64_t>(Load32(image, kInitrdAddrMax)) + 1, ram_bytes);
  const std::uint64_t address =
      limit >= initrd_bytes ? (limit - initrd_bytes) & ~(kPageSize - 1) : 0;
  if (address < kernel.end) {
    return Error{"the initrd (" + SizeName(initrd_bytes) +
                 ") does not fit between the kernel's end at " + Hex(kernel.end) + " and " +
                 Hex(limit) +
                 " (the end of RAM or the kernel's initrd_addr_max, whichever is lower); give the "
                 "guest more RAM"};
  }
  return address;
}

std::vector<std::uint8_t> BuildBootParams(std::span<const std::uint8_t> image,
                                          const KernelLayout& kernel, std::uint64_t initrd_address,
                                          std::uint64_t initrd_bytes, std::uint64_t ram_bytes) {
  std::vector<std::uint8_t> params(kBootParamsBytes, 0);
  std::copy(image.begin() + kSetupSects, image.begin() + kernel.header_end,
            params.begin() + kSetupSects);
  params[kTypeOfLoader] = kUndefinedLoader;
  params[kLoadflags] |= kCanUseHeap;
  Store16(params, kHeapEndPtr, kHeapEnd);
  Store32(params, kCode32Start, static_cast<std::uint32_t>(kernel.load_address));
  Store32(params, kRamdiskImage, static_cast<std::uint32_t>(initrd_address));
  Store32(params, kRamdiskSize, static_cast<std::uint32_t>(initrd_bytes));
  Store32(params, kCmdLinePtr, kLinuxCommandLineAddress);

  struct Region {
    std::uint64_t base, length;
    std::uint32_t type;
  };
  // The PC's memory below 1 MiB as a BIOS reports it: conventional memory,
  // then the EBDA, video memory and ROMs, none of which is RAM to the kernel.
  const Region regions[] = {
      {0, kLowMemoryEnd, kE820Ram},
      {kLowMemoryEnd, kHighMemoryStart - kLowMemoryEnd, kE820Reserved},
      {kHighMemoryStart, ram_bytes - kHighMemoryStart, kE820Ram},
  };
  params[kE820Entries] = std::size(regions);
  std::size_t entry = kE820Table;
  for (const Region& region : regions) {
    Store64(params, entry, region.base);
    Store64(params, entry + 8, region.length);
    Store32(params, entry + 16, region.type);
    entry += kE820EntryBytes;
  }
  return params;
}

}  // namespace

bool IsLinuxKernel(std::span<const std::uint8_t> image) {
  return image.size() >= kHeaderSignature + 4 && Load32(image, kHeaderSignature) == kSignature;
}

Result<LinuxBootState> LoadLinux(std::span<const std::uint8_t> kernel,
                                 std::span<const std::uint8_t> initrd,
                                 std::string_view command_line, mmu::PhysicalMemory& memory) {
  const std::uint64_t ram_bytes = memory.size();
  auto layout = CheckKernel(kernel, ram_bytes);
  if (!layout) return Error{layout.error()};

  if (command_line.find('\0') != std::string_view::npos) {
    return Error{"the kernel command line contains a NUL character"};
  }
  const std::uint64_t max_command_line = std::min<std::uint64_t>(
      Load32(kernel, kCmdlineSize), kLowMemoryEnd - kLinuxCommandLineAddress - 1);
  if (command_line.size() > max_command_line) {
    return Error{"the kernel command line is " + std::to_string(command_line.size()) +
                 " bytes; this kernel takes at most " + std::to_string(max_command_line)};
  }

  std::uint64_t initrd_address = 0;
  if (!initrd.empty()) {
    auto placed = PlaceInitrd(kernel, *layout, initrd.size(), ram_bytes);
    if (!placed) return Error{placed.error()};
    initrd_address = *placed;
  }

  auto write = [&memory](std::uint64_t address, const void* data, std::size_t bytes) {
    [[maybe_unused]] const bool written = memory.Write(address, data, bytes);
    assert(written);
  };
  write(layout->load_address, kernel.data() + layout->payload_offset,
        kernel.size() - layout->payload_offset);
  if (!initrd.empty()) write(initrd_address, initrd.data(), initrd.size());
  const std::vector<std::uint8_t> params =
      BuildBootParams(kernel, *layout, initrd_address, initrd.size(), ram_bytes);
  write(kLinuxBootParamsAddress, params.data(), params.size());
  write(kLinuxCommandLineAddress, command_line.data(), command_line.size());
  write(kLinuxCommandLineAddress + command_line.size(), "", 1);
  write(kLinuxGdtAddress, kGdt.data(), sizeof(kGdt));
  return LinuxBootState{.eip = static_cast<std::uint32_t>(layout->load_address),
                        .esi = kLinuxBootParamsAddress,
                        .gdt_base = kLinuxGdtAddress,
                        .gdt_limit = sizeof(kGdt) - 1};
}

}  // namespace bt::runtime
