#include "runtime/multiboot_loader.h"

#include "runtime/boot_image.h"

#include <algorithm>
#include <cassert>
#include <cstring>
#include <optional>

namespace bt::runtime {
namespace {

// Multiboot header (spec 3.1.1): within the first 8192 bytes of the image,
// 4-byte aligned, with magic + flags + checksum == 0 (mod 2^32).
constexpr std::uint32_t kHeaderMagic = 0x1BADB002;
constexpr std::size_t kHeaderSearchBytes = 8192;
constexpr std::size_t kHeaderBytes = 12;
// Bits 0-15 are requirements a loader must refuse when it does not meet them;
// bits 16-31 are optional features (spec 3.1.2). We load no modules, so bit 0
// (page-align modules) holds trivially; bit 1 (memory information) is always
// provided; bit 2 (video mode) is only a preference, and with no framebuffer
// text mode is what the kernel gets.
constexpr std::uint32_t kRequiredFlags = 0x0000FFFF;
constexpr std::uint32_t kSupportedRequiredFlags = 0x7;
// Bit 16: the address fields at offsets 12-28 are valid and override the ELF
// program headers (spec 3.1.3, the "a.out kludge"), as in GRUB 2.
constexpr std::uint32_t kFlagAddressFields = 1u << 16;
constexpr std::size_t kHeaderWithAddressesBytes = 32;

// ELF32 (System V ABI, Intel386 supplement). Our own constants: <elf.h> is a
// host OS header.
constexpr std::size_t kElfHeaderBytes = 52;
constexpr std::size_t kElfProgramHeaderBytes = 32;
constexpr std::uint8_t kElfMagic[4] = {0x7F, 'E', 'L', 'F'};
constexpr std::uint8_t kElfClass32 = 1;
constexpr std::uint8_t kElfLittleEndian = 1;
constexpr std::uint16_t kElfTypeExecutable = 2;
constexpr std::uint16_t kElfTypeShared = 3;
constexpr std::uint16_t kElfMachine386 = 3;
constexpr std::uint32_t kElfSegmentLoad = 1;

// The memory map (spec 3.3, mmap_*) marks the EBDA and the BIOS ROM reserved
// and leaves the video hole out, as a PC BIOS does.
constexpr std::uint64_t kVideoMemoryStart = 0xA0000;
constexpr std::uint64_t kBiosStart = 0xF0000;
constexpr std::uint32_t kMemoryAvailable = 1;
constexpr std::uint32_t kMemoryReserved = 2;

// Multiboot information structure (spec 3.3), followed by the memory map, the
// boot loader name and the command line (last, since only it varies in size).
// 0x8000 is free low memory below anything a kernel links itself at.
constexpr std::uint32_t kInfoAddress = 0x8000;
constexpr std::uint32_t kInfoFlags = 0;
constexpr std::uint32_t kInfoMemLower = 4;
constexpr std::uint32_t kInfoMemUpper = 8;
constexpr std::uint32_t kInfoCmdline = 16;
constexpr std::uint32_t kInfoMmapLength = 44;
constexpr std::uint32_t kInfoMmapAddr = 48;
constexpr std::uint32_t kInfoBootLoaderName = 64;
constexpr std::uint32_t kInfoHasMemory = 1u << 0;
constexpr std::uint32_t kInfoHasCmdline = 1u << 2;
constexpr std::uint32_t kInfoHasMmap = 1u << 6;
constexpr std::uint32_t kInfoHasBootLoaderName = 1u << 9;
// The structure is 116 bytes up to the framebuffer fields; the unused ones
// stay zero.
constexpr std::uint32_t kMmapOffset = 128;
// An mmap entry is size, base_addr, length, type; `size` (20) counts the
// bytes after itself, and mmap_addr points at the first entry's size field.
constexpr std::uint32_t kMmapEntryBytes = 24;
constexpr std::uint32_t kMmapEntries = 4;
constexpr std::uint32_t kBootLoaderNameOffset = kMmapOffset + kMmapEntries * kMmapEntryBytes;
constexpr char kBootLoaderName[] = "libbt";
constexpr std::uint32_t kCmdlineOffset = kBootLoaderNameOffset + 8;
static_assert(sizeof(kBootLoaderName) <= kCmdlineOffset - kBootLoaderNameOffset);

// A piece of the image to copy to guest RAM: `file_bytes` from the image at
// `file_offset`, then zeros up to `memory_bytes` (bss).
struct Chunk {
  std::string name;
  std::uint64_t file_offset;
  std::uint64_t address;
  std::uint64_t file_bytes;
  std::uint64_t memory_bytes;
};

struct KernelLayout {
  std::vector<Chunk> chunks;
  std::uint32_t entry;
};

struct MultibootHeader {
  std::size_t offset;
  std::uint32_t flags;
};

Result<MultibootHeader> FindHeader(std::span<const std::uint8_t> image) {
  const std::size_t search_end = std::min(image.size(), kHeaderSearchBytes);
  std::optional<std::size_t> bad_checksum;
  for (std::size_t offset = 0; offset + kHeaderBytes <= search_end; offset += 4) {
    if (Load32(image, offset) != kHeaderMagic) continue;
    const std::uint32_t flags = Load32(image, offset + 4);
    if (kHeaderMagic + flags + Load32(image, offset + 8) == 0) {
      return MultibootHeader{offset, flags};
    }
    if (!bad_checksum) bad_checksum = offset;
  }
  if (bad_checksum) {
    return Error{"the Multiboot header at offset " + Hex(*bad_checksum) +
                 " has a bad checksum (magic + flags + checksum must be 0)"};
  }
  return Error{
      "no Multiboot header in the first 8192 bytes and no Linux boot protocol header (\"HdrS\" "
      "at 0x202): this is neither a Multiboot kernel nor a Linux bzImage"};
}

// Spec 3.1.3: header_addr is where the header itself lands, which ties file
// offsets to physical addresses; load_end_addr 0 means "to the end of the
// file" and bss_end_addr 0 means "no bss".
Result<KernelLayout> LayoutFromAddressFields(std::span<const std::uint8_t> image,
                                             const MultibootHeader& header) {
  if (header.offset + kHeaderWithAddressesBytes > std::min(image.size(), kHeaderSearchBytes)) {
    return Error{"the Multiboot header at offset " + Hex(header.offset) +
                 " sets flags bit 16 but its address fields are cut off"};
  }
  const std::uint32_t header_addr = Load32(image, header.offset + 12);
  const std::uint32_t load_addr = Load32(image, header.offset + 16);
  const std::uint32_t load_end_addr = Load32(image, header.offset + 20);
  const std::uint32_t bss_end_addr = Load32(image, header.offset + 24);
  const std::uint32_t entry_addr = Load32(image, header.offset + 28);
  if (load_addr > header_addr) {
    return Error{"Multiboot header: load_addr " + Hex(load_addr) + " is above header_addr " +
                 Hex(header_addr)};
  }
  if (header_addr - load_addr > header.offset) {
    return Error{"Multiboot header: header_addr " + Hex(header_addr) + " and load_addr " +
                 Hex(load_addr) + " put the start of the image before the start of the file"};
  }
  const std::uint64_t file_offset = header.offset - (header_addr - load_addr);
  std::uint64_t load_bytes = image.size() - file_offset;
  if (load_end_addr != 0) {
    if (load_end_addr <= load_addr) {
      return Error{"Multiboot header: load_end_addr " + Hex(load_end_addr) +
                   " is not above load_addr " + Hex(load_addr)};
    }
    load_bytes = load_end_addr - load_addr;
    if (file_offset + load_bytes > image.size()) {
      return Error{"Multiboot header: load_end_addr " + Hex(load_end_addr) + " asks for " +
                   std::to_string(load_bytes) + " bytes from file offset " + Hex(file_offset) +
                   " but the file is only " + std::to_string(image.size()) +
                   " bytes; the file is truncated or the header is wrong"};
    }
  }
  std::uint64_t memory_bytes = load_bytes;
  if (bss_end_addr != 0) {
    if (bss_end_addr < load_addr + load_bytes) {
      return Error{"Multiboot header: bss_end_addr " + Hex(bss_end_addr) +
                   " is below the end of the loaded image, " + Hex(load_addr + load_bytes)};
    }
    memory_bytes = bss_end_addr - load_addr;
  }
  if (entry_addr < load_addr || entry_addr - load_addr >= memory_bytes) {
    return Error{"Multiboot header: entry_addr " + Hex(entry_addr) + " is outside the image, " +
                 Hex(load_addr) + "-" + Hex(load_addr + memory_bytes - 1)};
  }
  KernelLayout layout{.chunks = {}, .entry = entry_addr};
  layout.chunks.push_back(
      Chunk{"the image (a.out kludge)", file_offset, load_addr, load_bytes, memory_bytes});
  return layout;
}

Result<void> CheckElfHeader(std::span<const std::uint8_t> image) {
  if (image.size() < kElfHeaderBytes) return Error{"the ELF header is cut off"};
  if (image[4] != kElfClass32) {
    return Error{
        "not a 32-bit ELF file; libbt boots i386 kernels (build with -m32, or link "
        "with -m elf_i386)"};
  }
  if (image[5] != kElfLittleEndian) return Error{"not a little-endian ELF file"};
  const std::uint16_t machine = Load16(image, 18);
  if (machine != kElfMachine386) {
    return Error{"ELF machine type " + std::to_string(machine) +
                 " is not Intel 80386 (EM_386, 3); build the kernel for i386"};
  }
  const std::uint16_t type = Load16(image, 16);
  if (type == kElfTypeShared) {
    return Error{
        "position-independent ELF (ET_DYN); Multiboot loads executables at fixed "
        "addresses: link with -no-pie or -static"};
  }
  if (type != kElfTypeExecutable) {
    return Error{"ELF type " + std::to_string(type) + " is not an executable (ET_EXEC)"};
  }
  return {};
}

// The layout the ELF program headers ask for: PT_LOAD segments at their
// physical addresses (p_paddr), as GRUB loads them. The entry point is a
// virtual address; like GRUB 2, translate it through the segment holding it,
// which makes higher-half kernels (p_vaddr != p_paddr) work.
Result<KernelLayout> LayoutFromElf(std::span<const std::uint8_t> image) {
  if (auto checked = CheckElfHeader(image); !checked) return Error{checked.error()};
  const std::uint32_t entry = Load32(image, 24);
  const std::uint64_t phoff = Load32(image, 28);
  const std::uint64_t phentsize = Load16(image, 42);
  const std::uint64_t phnum = Load16(image, 44);
  if (phnum == 0) return Error{"the ELF file has no program headers"};
  if (phentsize < kElfProgramHeaderBytes) {
    return Error{"ELF program headers of " + std::to_string(phentsize) +
                 " bytes are smaller than the 32 bytes of an Elf32_Phdr"};
  }
  if (phoff + phnum * phentsize > image.size()) {
    return Error{"the ELF program headers (" + std::to_string(phnum) + " at offset " + Hex(phoff) +
                 ") run past the end of the " + std::to_string(image.size()) +
                 "-byte file; it is truncated or corrupt"};
  }
  KernelLayout layout{.chunks = {}, .entry = 0};
  std::optional<std::uint32_t> physical_entry;
  for (std::uint64_t index = 0; index < phnum; ++index) {
    const std::size_t header = phoff + index * phentsize;
    if (Load32(image, header) != kElfSegmentLoad) continue;
    const std::uint64_t offset = Load32(image, header + 4);
    const std::uint64_t vaddr = Load32(image, header + 8);
    const std::uint64_t paddr = Load32(image, header + 12);
    const std::uint64_t file_bytes = Load32(image, header + 16);
    const std::uint64_t memory_bytes = Load32(image, header + 20);
    const std::string name = "ELF segment " + std::to_string(index);
    if (file_bytes > memory_bytes) {
      return Error{name + " has more bytes in the file (" + std::to_string(file_bytes) +
                   ") than in memory (" + std::to_string(memory_bytes) + ")"};
    }
    if (offset + file_bytes > image.size()) {
      return Error{name + " (file offset " + Hex(offset) + ", " + std::to_string(file_bytes) +
                   " bytes) runs past the end of the " + std::to_string(image.size()) +
                   "-byte file; it is truncated or corrupt"};
    }
    if (memory_bytes == 0) continue;
    layout.chunks.push_back(Chunk{name, offset, paddr, file_bytes, memory_bytes});
    if (!physical_entry && entry >= vaddr && entry - vaddr < memory_bytes) {
      physical_entry = static_cast<std::uint32_t>(entry - vaddr + paddr);
    }
  }
  if (layout.chunks.empty()) return Error{"the ELF file has no loadable (PT_LOAD) segments"};
  if (!physical_entry) {
    return Error{"the ELF entry point " + Hex(entry) + " is not inside any loadable segment"};
  }
  layout.entry = *physical_entry;
  return layout;
}

// Each chunk must land in RAM the memory map calls available, clear of the
// information structure at [kInfoAddress, info_end).
Result<void> CheckPlacement(const Chunk& chunk, std::uint64_t ram_bytes, std::uint64_t info_end) {
  const std::uint64_t begin = chunk.address;
  const std::uint64_t end = chunk.address + chunk.memory_bytes;
  const std::string what =
      chunk.name + " at " + Hex(begin) + " (" + std::to_string(chunk.memory_bytes) + " bytes)";
  if (end > ram_bytes) {
    return Error{what + " does not fit in " + SizeName(ram_bytes) +
                 " of guest RAM; give the guest more RAM"};
  }
  // Stricter than QEMU, which loads there too: this range is not RAM on a PC
  // (video memory, ROMs) and the memory map says so. A common cause is
  // linking with -Ttext=0x100000 alone, which lets ld put the ELF headers in
  // a segment just below 1 MiB.
  if (begin < kHighMemoryStart && end > kLowMemoryEnd) {
    return Error{what + " overlaps " + Hex(kLowMemoryEnd) + "-" + Hex(kHighMemoryStart - 1) +
                 ", which a PC reserves for the BIOS and video memory; link every loadable "
                 "segment at 1 MiB or above (with a linker script: -Ttext alone lets ld put the "
                 "ELF headers just below 1 MiB)"};
  }
  if (begin < info_end && end > kInfoAddress) {
    return Error{what + " overlaps " + Hex(kInfoAddress) + "-" + Hex(info_end - 1) +
                 ", where the Multiboot information goes; link the kernel at 1 MiB or above"};
  }
  return {};
}

std::vector<std::uint8_t> BuildInfo(std::string_view command_line, std::uint64_t ram_bytes) {
  std::vector<std::uint8_t> info(kCmdlineOffset + command_line.size() + 1, 0);
  Store32(info, kInfoFlags,
          kInfoHasMemory | kInfoHasCmdline | kInfoHasMmap | kInfoHasBootLoaderName);
  // Spec 3.3: mem_lower is the KiB of conventional memory from 0, mem_upper
  // the KiB from 1 MiB up to the first hole.
  Store32(info, kInfoMemLower, static_cast<std::uint32_t>(kLowMemoryEnd / kKiB));
  Store32(info, kInfoMemUpper, static_cast<std::uint32_t>((ram_bytes - kHighMemoryStart) / kKiB));
  Store32(info, kInfoCmdline, kInfoAddress + kCmdlineOffset);
  Store32(info, kInfoMmapLength, kMmapEntries * kMmapEntryBytes);
  Store32(info, kInfoMmapAddr, kInfoAddress + kMmapOffset);
  Store32(info, kInfoBootLoaderName, kInfoAddress + kBootLoaderNameOffset);

  struct Region {
    std::uint64_t base, length;
    std::uint32_t type;
  };
  const Region regions[kMmapEntries] = {
      {0, kLowMemoryEnd, kMemoryAvailable},
      {kLowMemoryEnd, kVideoMemoryStart - kLowMemoryEnd, kMemoryReserved},
      {kBiosStart, kHighMemoryStart - kBiosStart, kMemoryReserved},
      {kHighMemoryStart, ram_bytes - kHighMemoryStart, kMemoryAvailable},
  };
  std::size_t entry = kMmapOffset;
  for (const Region& region : regions) {
    Store32(info, entry, kMmapEntryBytes - 4);
    Store64(info, entry + 4, region.base);
    Store64(info, entry + 12, region.length);
    Store32(info, entry + 20, region.type);
    entry += kMmapEntryBytes;
  }
  std::memcpy(info.data() + kBootLoaderNameOffset, kBootLoaderName, sizeof(kBootLoaderName));
  std::memcpy(info.data() + kCmdlineOffset, command_line.data(), command_line.size());
  return info;
}

}  // namespace

Result<BootState> LoadMultiboot(std::span<const std::uint8_t> image, std::string_view command_line,
                                mmu::PhysicalMemory& memory) {
  if (image.empty()) return Error{"the kernel image is empty"};
  const std::uint64_t ram_bytes = memory.size();
  if (ram_bytes <= kHighMemoryStart) {
    return Error{"a Multiboot kernel needs more than 1 MiB of guest RAM (the guest has " +
                 SizeName(ram_bytes) + ")"};
  }
  if (command_line.find('\0') != std::string_view::npos) {
    return Error{"the kernel command line contains a NUL character"};
  }
  const std::uint64_t info_end = kInfoAddress + kCmdlineOffset + command_line.size() + 1;
  if (info_end > kLowMemoryEnd) {
    return Error{"the kernel command line is " + std::to_string(command_line.size()) +
                 " bytes; at most " +
                 std::to_string(kLowMemoryEnd - kInfoAddress - kCmdlineOffset - 1) + " fit"};
  }

  auto header = FindHeader(image);
  if (!header) return Error{header.error()};
  if (const std::uint32_t unknown = header->flags & kRequiredFlags & ~kSupportedRequiredFlags) {
    return Error{"the Multiboot header requires features libbt does not provide (flag bits " +
                 Hex(unknown) + "; of the required bits 0-15 libbt supports 0-2)"};
  }
  const bool has_address_fields = (header->flags & kFlagAddressFields) != 0;
  const bool is_elf = image.size() >= sizeof(kElfMagic) &&
                      std::memcmp(image.data(), kElfMagic, sizeof(kElfMagic)) == 0;
  if (!has_address_fields && !is_elf) {
    return Error{
        "not an ELF file and no Multiboot a.out header (flags bit 16 with load "
        "addresses); libbt cannot tell where to load it"};
  }
  auto layout = has_address_fields ? LayoutFromAddressFields(image, *header) : LayoutFromElf(image);
  if (!layout) return Error{layout.error()};
  for (const Chunk& chunk : layout->chunks) {
    if (auto placed = CheckPlacement(chunk, ram_bytes, info_end); !placed) {
      return Error{placed.error()};
    }
  }

  for (const Chunk& chunk : layout->chunks) {
    [[maybe_unused]] const bool copied =
        memory.Write(chunk.address, image.data() + chunk.file_offset, chunk.file_bytes);
    assert(copied);
    std::memset(memory.HostPointer(chunk.address + chunk.file_bytes), 0,
                chunk.memory_bytes - chunk.file_bytes);
  }
  const std::vector<std::uint8_t> info = BuildInfo(command_line, ram_bytes);
  [[maybe_unused]] const bool written = memory.Write(kInfoAddress, info.data(), info.size());
  assert(written);
  return BootState{.eip = layout->entry, .eax = kMultibootBootloaderMagic, .ebx = kInfoAddress};
}

}  // namespace bt::runtime
