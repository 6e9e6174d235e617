#include "runtime/multiboot_loader.h"

#include "tests/support/loader_ram.h"

#include <doctest/doctest.h>

#include <cstring>
#include <string>
#include <vector>

namespace bt::runtime {
namespace {

using testing::Contains;
using testing::Poke16;
using testing::Poke32;
using testing::Read32;
using testing::Read64;
using testing::ReadRam;
using testing::ReadString;

constexpr std::uint64_t kRamBytes = 16u << 20;
constexpr std::uint32_t kHeaderMagic = 0x1BADB002;
constexpr std::uint32_t kInfoAddress = 0x8000;
constexpr std::uint32_t kPtLoad = 1;
constexpr std::uint32_t kPtNote = 4;
// Field offsets in the ELF32 header and program header, for corrupting images.
constexpr std::size_t kElfClass = 4, kElfData = 5, kElfType = 16, kElfMachine = 18;
constexpr std::size_t kElfPhentsize = 42, kElfPhnum = 44;
constexpr std::size_t kPhdrTable = 52, kPhdrBytes = 32;
constexpr std::size_t kPhdrOffset = 4, kPhdrFilesz = 16, kPhdrMemsz = 20;

mmu::PhysicalMemory MakeRam(std::uint64_t bytes = kRamBytes) { return testing::MakeRam(bytes); }

std::vector<std::uint8_t> Pattern(std::size_t bytes, std::uint8_t seed) {
  std::vector<std::uint8_t> data(bytes);
  for (std::size_t i = 0; i < bytes; ++i) data[i] = static_cast<std::uint8_t>(seed + i * 7);
  return data;
}

struct TestSegment {
  std::uint32_t vaddr;
  std::uint32_t paddr;
  std::vector<std::uint8_t> data;
  std::uint32_t memsz;
  std::uint32_t type = kPtLoad;
};

// Appends a Multiboot header with the given flags and a valid checksum.
void AppendHeader(std::vector<std::uint8_t>& image, std::uint32_t flags) {
  const std::size_t at = image.size();
  image.resize(at + 12);
  Poke32(image, at, kHeaderMagic);
  Poke32(image, at + 4, flags);
  Poke32(image, at + 8, 0u - kHeaderMagic - flags);
}

// ELF32 i386 executable: header, program headers, then a Multiboot header at
// MultibootOffset(), then the segment contents.
std::size_t MultibootOffset(std::size_t segments) { return kPhdrTable + segments * kPhdrBytes; }

std::vector<std::uint8_t> BuildElf(const std::vector<TestSegment>& segments, std::uint32_t entry,
                                   std::uint32_t multiboot_flags = 0) {
  std::vector<std::uint8_t> image(MultibootOffset(segments.size()));
  const std::uint8_t ident[] = {0x7F, 'E', 'L', 'F', 1, 1, 1};
  std::memcpy(image.data(), ident, sizeof(ident));
  Poke16(image, kElfType, 2);
  Poke16(image, kElfMachine, 3);
  Poke32(image, 20, 1);  // e_version
  Poke32(image, 24, entry);
  Poke32(image, 28, kPhdrTable);
  Poke16(image, 40, 52);  // e_ehsize
  Poke16(image, kElfPhentsize, kPhdrBytes);
  Poke16(image, kElfPhnum, static_cast<std::uint16_t>(segments.size()));
  AppendHeader(image, multiboot_flags);
  for (std::size_t i = 0; i < segments.size(); ++i) {
    const TestSegment& segment = segments[i];
    image.resize((image.size() + 15) & ~std::size_t{15});
    const std::size_t phdr = kPhdrTable + i * kPhdrBytes;
    Poke32(image, phdr, segment.type);
    Poke32(image, phdr + kPhdrOffset, static_cast<std::uint32_t>(image.size()));
    Poke32(image, phdr + 8, segment.vaddr);
    Poke32(image, phdr + 12, segment.paddr);
    Poke32(image, phdr + kPhdrFilesz, static_cast<std::uint32_t>(segment.data.size()));
    Poke32(image, phdr + kPhdrMemsz, segment.memsz);
    image.insert(image.end(), segment.data.begin(), segment.data.end());
  }
  return image;
}

// One 256-byte text segment with 3840 bytes of bss at 1 MiB.
std::vector<std::uint8_t> SimpleElf() {
  return BuildElf({{0x100000, 0x100000, Pattern(256, 1), 0x1000}}, 0x100010);
}

bool AllBytesAre(const mmu::PhysicalMemory& memory, std::uint64_t address, std::size_t bytes,
                 std::uint8_t value) {
  for (std::uint8_t byte : ReadRam(memory, address, bytes)) {
    if (byte != value) return false;
  }
  return true;
}

// Loads `image` and returns the error, failing the test if it loads.
std::string LoadError(const std::vector<std::uint8_t>& image, std::string_view command_line = "",
                      std::uint64_t ram_bytes = kRamBytes) {
  mmu::PhysicalMemory memory = MakeRam(ram_bytes);
  Result<BootState> boot = LoadMultiboot(image, command_line, memory);
  REQUIRE_FALSE(boot.ok());
  return boot.error();
}

TEST_CASE("Multiboot loads ELF segments at their physical addresses and zeroes bss") {
  mmu::PhysicalMemory memory = MakeRam();
  // Garbage where bss goes and right after it, which must survive.
  std::memset(memory.HostPointer(0x100000), 0xAA, 0x2000);
  const std::vector<std::uint8_t> text = Pattern(256, 1);
  const std::vector<std::uint8_t> data = Pattern(40, 9);
  const auto image =
      BuildElf({{0x100000, 0x100000, text, 0x1000}, {0x300000, 0x300000, data, 40}}, 0x100010);

  Result<BootState> boot = LoadMultiboot(image, "console=ttyS0 quiet", memory);
  REQUIRE_MESSAGE(boot.ok(), boot.error());
  CHECK(boot->eip == 0x100010);
  CHECK(boot->eax == 0x2BADB002);
  CHECK(boot->ebx == kInfoAddress);
  CHECK(ReadRam(memory, 0x100000, text.size()) == text);
  CHECK(AllBytesAre(memory, 0x100100, 0x1000 - 0x100, 0));
  CHECK(AllBytesAre(memory, 0x101000, 0x1000, 0xAA));
  CHECK(ReadRam(memory, 0x300000, data.size()) == data);
}

TEST_CASE("Multiboot information structure describes the machine") {
  mmu::PhysicalMemory memory = MakeRam();
  Result<BootState> boot = LoadMultiboot(SimpleElf(), "root=/dev/vda console=ttyS0", memory);
  REQUIRE_MESSAGE(boot.ok(), boot.error());
  const std::uint32_t info = boot->ebx;

  // MEM, CMDLINE, MMAP and BOOT_LOADER_NAME, and nothing else (spec 3.3).
  CHECK(Read32(memory, info) == ((1u << 0) | (1u << 2) | (1u << 6) | (1u << 9)));
  CHECK(Read32(memory, info + 4) == 639);
  CHECK(Read32(memory, info + 8) == (kRamBytes - (1u << 20)) / 1024);
  CHECK(ReadString(memory, Read32(memory, info + 16)) == "root=/dev/vda console=ttyS0");
  CHECK(ReadString(memory, Read32(memory, info + 64)) == "libbt");
  CHECK(Read32(memory, info + 20) == 0);  // mods_count

  struct Entry {
    std::uint64_t base, length;
    std::uint32_t type;
    bool operator==(const Entry&) const = default;
  };
  std::vector<Entry> entries;
  const std::uint32_t mmap_length = Read32(memory, info + 44);
  const std::uint32_t mmap_addr = Read32(memory, info + 48);
  // Walk the map the way kernels do: each entry's size excludes the size field.
  for (std::uint32_t at = mmap_addr; at < mmap_addr + mmap_length; at += Read32(memory, at) + 4) {
    CHECK(Read32(memory, at) == 20);
    entries.push_back({Read64(memory, at + 4), Read64(memory, at + 12), Read32(memory, at + 20)});
  }
  const std::vector<Entry> expected = {
      {0, 0x9FC00, 1},
      {0x9FC00, 0x400, 2},
      {0xF0000, 0x10000, 2},
      {0x100000, kRamBytes - 0x100000, 1},
  };
  CHECK(entries == expected);

  // Everything the loader wrote sits in free low memory.
  for (std::uint32_t pointer :
       {mmap_addr + mmap_length, Read32(memory, info + 16), Read32(memory, info + 64)}) {
    CHECK(pointer > info);
    CHECK(pointer < 0x9FC00);
  }
}

TEST_CASE("Multiboot passes an empty command line as an empty string") {
  mmu::PhysicalMemory memory = MakeRam();
  Result<BootState> boot = LoadMultiboot(SimpleElf(), "", memory);
  REQUIRE_MESSAGE(boot.ok(), boot.error());
  CHECK((Read32(memory, boot->ebx) & (1u << 2)) != 0);
  CHECK(ReadString(memory, Read32(memory, boot->ebx + 16)).empty());
}

TEST_CASE("Multiboot translates a higher-half entry point to its physical address") {
  mmu::PhysicalMemory memory = MakeRam();
  const auto image = BuildElf(
      {{0x100000, 0x100000, Pattern(64, 1), 64}, {0xC0200000, 0x200000, Pattern(64, 2), 0x100}},
      0xC0200020);
  Result<BootState> boot = LoadMultiboot(image, "", memory);
  REQUIRE_MESSAGE(boot.ok(), boot.error());
  CHECK(boot->eip == 0x200020);
  CHECK(ReadRam(memory, 0x200000, 64) == Pattern(64, 2));
}

TEST_CASE("Multiboot accepts the video-mode flag and skips segments with nothing to load") {
  mmu::PhysicalMemory memory = MakeRam();
  const auto image = BuildElf({{0, 0x500000, Pattern(16, 3), 16, kPtNote},
                               {0xFFFF0000, 0xFFFF0000, {}, 0},
                               {0x100000, 0x100000, Pattern(16, 4), 16}},
                              0x100000, 0x7);
  Result<BootState> boot = LoadMultiboot(image, "", memory);
  REQUIRE_MESSAGE(boot.ok(), boot.error());
  CHECK(AllBytesAre(memory, 0x500000, 16, 0));
  CHECK(ReadRam(memory, 0x100000, 16) == Pattern(16, 4));
}

TEST_CASE("Multiboot finds the header anywhere 4-byte aligned in the first 8192 bytes") {
  // A raw image whose a.out-kludge header ends exactly at byte 8192.
  constexpr std::size_t kAt = 8192 - 32;
  std::vector<std::uint8_t> image = Pattern(kAt, 5);
  AppendHeader(image, 1u << 16);
  image.resize(kAt + 32);
  Poke32(image, kAt + 12, 0x100000 + kAt);  // header_addr
  Poke32(image, kAt + 16, 0x100000);        // load_addr
  Poke32(image, kAt + 28, 0x100000);        // entry_addr
  mmu::PhysicalMemory memory = MakeRam();
  Result<BootState> boot = LoadMultiboot(image, "", memory);
  REQUIRE_MESSAGE(boot.ok(), boot.error());
  CHECK(ReadRam(memory, 0x100000, kAt) == Pattern(kAt, 5));

  // Four bytes later its address fields leave the search area; at 8184 not
  // even the magic, flags and checksum fit.
  std::vector<std::uint8_t> late(4, 0);
  late.insert(late.end(), image.begin(), image.end());
  CHECK(Contains(LoadError(late), "address fields are cut off"));
  std::vector<std::uint8_t> too_late(24, 0);
  too_late.insert(too_late.end(), image.begin(), image.end());
  CHECK(Contains(LoadError(too_late), "no Multiboot header"));
  // Unaligned, it is not a header at all.
  std::vector<std::uint8_t> unaligned(2, 0);
  unaligned.insert(unaligned.end(), image.begin(), image.end());
  CHECK(Contains(LoadError(unaligned), "no Multiboot header"));
}

TEST_CASE("Multiboot a.out kludge loads raw images at the header's addresses") {
  // File: 0x40 bytes of code, header at 0x40, more code up to 0x100.
  std::vector<std::uint8_t> image = Pattern(0x40, 6);
  AppendHeader(image, 1u << 16);
  image.resize(0x100);
  for (std::size_t i = 0x60; i < 0x100; ++i) image[i] = static_cast<std::uint8_t>(i);
  Poke32(image, 0x40 + 12, 0x200040);  // header_addr: the header lands at 0x200040
  Poke32(image, 0x40 + 16, 0x200000);  // load_addr
  Poke32(image, 0x40 + 20, 0x200080);  // load_end_addr: only the first 0x80 bytes
  Poke32(image, 0x40 + 24, 0x200200);  // bss_end_addr
  Poke32(image, 0x40 + 28, 0x200060);  // entry_addr

  mmu::PhysicalMemory memory = MakeRam();
  std::memset(memory.HostPointer(0x200000), 0xAA, 0x400);
  Result<BootState> boot = LoadMultiboot(image, "", memory);
  REQUIRE_MESSAGE(boot.ok(), boot.error());
  CHECK(boot->eip == 0x200060);
  CHECK(ReadRam(memory, 0x200000, 0x80) ==
        std::vector<std::uint8_t>(image.begin(), image.begin() + 0x80));
  CHECK(AllBytesAre(memory, 0x200080, 0x180, 0));
  CHECK(AllBytesAre(memory, 0x200200, 0x200, 0xAA));

  SUBCASE("load_end_addr 0 loads the rest of the file, bss_end_addr 0 means no bss") {
    Poke32(image, 0x40 + 20, 0);
    Poke32(image, 0x40 + 24, 0);
    std::memset(memory.HostPointer(0x200000), 0xAA, 0x400);
    REQUIRE(LoadMultiboot(image, "", memory).ok());
    CHECK(ReadRam(memory, 0x200000, 0x100) == image);
    CHECK(AllBytesAre(memory, 0x200100, 0x300, 0xAA));
  }
}

TEST_CASE("Multiboot address fields take precedence over ELF program headers") {
  auto image = BuildElf({{0x100000, 0x100000, Pattern(64, 7), 64}}, 0x100000, 1u << 16);
  // The header sits at MultibootOffset(1) and needs its 20 bytes of address
  // fields: load the whole file at 4 MiB.
  const std::size_t at = MultibootOffset(1);
  std::vector<std::uint8_t> fields(20);
  image.insert(image.begin() + at + 12, fields.begin(), fields.end());
  Poke32(image, at + 12, 0x400000 + at);
  Poke32(image, at + 16, 0x400000);
  Poke32(image, at + 28, 0x400000);
  mmu::PhysicalMemory memory = MakeRam();
  Result<BootState> boot = LoadMultiboot(image, "", memory);
  REQUIRE_MESSAGE(boot.ok(), boot.error());
  CHECK(boot->eip == 0x400000);
  CHECK(ReadRam(memory, 0x400000, image.size()) == image);
  CHECK(AllBytesAre(memory, 0x100000, 64, 0));
}

TEST_CASE("Multiboot header errors") {
  CHECK(Contains(LoadError({}), "empty"));
  CHECK(Contains(LoadError(Pattern(9000, 1)), "no Multiboot header"));

  auto bad_checksum = SimpleElf();
  Poke32(bad_checksum, MultibootOffset(1) + 8, 0);
  CHECK(Contains(LoadError(bad_checksum), "bad checksum"));

  const auto needs_bit_3 = BuildElf({{0x100000, 0x100000, Pattern(16, 1), 16}}, 0x100000, 0x8);
  const std::string unknown_flag = LoadError(needs_bit_3);
  CHECK(Contains(unknown_flag, "requires"));
  CHECK(Contains(unknown_flag, "0x8"));

  std::vector<std::uint8_t> raw = Pattern(64, 1);
  AppendHeader(raw, 0);
  CHECK(Contains(LoadError(raw), "not an ELF file and no Multiboot a.out header"));
}

TEST_CASE("Multiboot ELF errors") {
  auto elf64 = SimpleElf();
  elf64[kElfClass] = 2;
  CHECK(Contains(LoadError(elf64), "not a 32-bit ELF"));

  auto big_endian = SimpleElf();
  big_endian[kElfData] = 2;
  CHECK(Contains(LoadError(big_endian), "little-endian"));

  auto x86_64 = SimpleElf();
  Poke16(x86_64, kElfMachine, 62);
  CHECK(Contains(LoadError(x86_64), "machine type 62"));

  auto pie = SimpleElf();
  Poke16(pie, kElfType, 3);
  CHECK(Contains(LoadError(pie), "-no-pie"));
  auto relocatable = SimpleElf();
  Poke16(relocatable, kElfType, 1);
  CHECK(Contains(LoadError(relocatable), "not an executable"));

  // ELF magic and a Multiboot header, but no room for the rest of the header.
  std::vector<std::uint8_t> cut = {0x7F, 'E', 'L', 'F', 1, 1, 1, 0};
  AppendHeader(cut, 0);
  CHECK(Contains(LoadError(cut), "ELF header is cut off"));

  auto no_phdrs = SimpleElf();
  Poke16(no_phdrs, kElfPhnum, 0);
  CHECK(Contains(LoadError(no_phdrs), "no program headers"));

  auto small_phdrs = SimpleElf();
  Poke16(small_phdrs, kElfPhentsize, 16);
  CHECK(Contains(LoadError(small_phdrs), "smaller than the 32 bytes"));

  auto phdrs_past_end = SimpleElf();
  Poke16(phdrs_past_end, kElfPhnum, 2000);
  CHECK(Contains(LoadError(phdrs_past_end), "program headers (2000 at offset 0x34) run past"));

  auto file_bigger_than_memory = SimpleElf();
  Poke32(file_bigger_than_memory, kPhdrTable + kPhdrMemsz, 255);
  CHECK(Contains(LoadError(file_bigger_than_memory), "ELF segment 0 has more bytes in the file"));

  auto truncated = SimpleElf();
  truncated.resize(truncated.size() - 1);
  CHECK(Contains(LoadError(truncated), "ELF segment 0 (file offset"));
  CHECK(Contains(LoadError(truncated), "runs past the end"));

  const auto only_notes = BuildElf({{0x100000, 0x100000, Pattern(16, 1), 16, kPtNote}}, 0x100000);
  CHECK(Contains(LoadError(only_notes), "no loadable (PT_LOAD) segments"));

  const auto wild_entry = BuildElf({{0x100000, 0x100000, Pattern(16, 1), 0x20}}, 0x100020);
  CHECK(Contains(LoadError(wild_entry), "entry point 0x100020 is not inside any loadable"));
}

TEST_CASE("Multiboot refuses segments outside usable RAM") {
  const auto too_high = BuildElf({{0xFFF000, 0xFFF000, Pattern(16, 1), 0x2000}}, 0xFFF000);
  CHECK(LoadError(too_high) ==
        "ELF segment 0 at 0xfff000 (8192 bytes) does not fit in 16 MiB of guest RAM; give the "
        "guest more RAM");

  const auto on_info = BuildElf({{0x7000, 0x7000, Pattern(16, 1), 0x1010}}, 0x7000);
  CHECK(Contains(LoadError(on_info), "where the Multiboot information goes"));
  // Low memory clear of the information structure is fine.
  mmu::PhysicalMemory memory = MakeRam();
  const auto below_info = BuildElf({{0x7000, 0x7000, Pattern(16, 1), 0x1000}}, 0x7000);
  CHECK(LoadMultiboot(below_info, "", memory).ok());

  const auto in_vga = BuildElf({{0xB8000, 0xB8000, Pattern(16, 1), 16}}, 0xB8000);
  CHECK(Contains(LoadError(in_vga), "reserves for the BIOS and video memory"));
  const auto on_ebda = BuildElf({{0x9F000, 0x9F000, Pattern(16, 1), 0xC01}}, 0x9F000);
  CHECK(Contains(LoadError(on_ebda), "0x9fc00-0xfffff"));

  CHECK(Contains(LoadError(SimpleElf(), "", 1u << 20), "more than 1 MiB"));
}

TEST_CASE("Multiboot leaves RAM untouched when a later segment is bad") {
  mmu::PhysicalMemory memory = MakeRam();
  const auto image = BuildElf(
      {{0x100000, 0x100000, Pattern(16, 1), 16}, {0x2000000, 0x2000000, Pattern(16, 1), 16}},
      0x100000);
  REQUIRE_FALSE(LoadMultiboot(image, "", memory).ok());
  CHECK(AllBytesAre(memory, 0x100000, 16, 0));
  CHECK(AllBytesAre(memory, kInfoAddress, 0x100, 0));
}

TEST_CASE("Multiboot command line errors") {
  CHECK(Contains(LoadError(SimpleElf(), std::string_view("a\0b", 3)), "NUL"));
  const std::string huge(0x9FC00 - kInfoAddress, 'x');
  CHECK(Contains(LoadError(SimpleElf(), huge), "command line is"));

  // The information structure grows with the command line, and a kernel
  // in low memory just above it must then be refused.
  const auto low_kernel = BuildElf({{0x9000, 0x9000, Pattern(16, 1), 16}}, 0x9000);
  mmu::PhysicalMemory memory = MakeRam();
  CHECK(LoadMultiboot(low_kernel, "short", memory).ok());
  CHECK(Contains(LoadError(low_kernel, std::string(0x1000, 'y')), "Multiboot information"));
}

TEST_CASE("Multiboot a.out kludge errors") {
  // Header at 0x40 of a 0x100-byte file; each case breaks one field.
  auto kludge = [](std::uint32_t header_addr, std::uint32_t load_addr, std::uint32_t load_end,
                   std::uint32_t bss_end, std::uint32_t entry) {
    std::vector<std::uint8_t> image(0x40);
    AppendHeader(image, 1u << 16);
    image.resize(0x100);
    Poke32(image, 0x4C, header_addr);
    Poke32(image, 0x50, load_addr);
    Poke32(image, 0x54, load_end);
    Poke32(image, 0x58, bss_end);
    Poke32(image, 0x5C, entry);
    return image;
  };
  mmu::PhysicalMemory memory = MakeRam();
  REQUIRE(LoadMultiboot(kludge(0x100040, 0x100000, 0x100100, 0x100200, 0x100000), "", memory).ok());

  CHECK(Contains(LoadError(kludge(0x100040, 0x100080, 0, 0, 0x100080)),
                 "load_addr 0x100080 is above header_addr 0x100040"));
  CHECK(Contains(LoadError(kludge(0x100080, 0x100000, 0, 0, 0x100000)),
                 "before the start of the file"));
  CHECK(Contains(LoadError(kludge(0x100040, 0x100000, 0x100000, 0, 0x100000)),
                 "load_end_addr 0x100000 is not above load_addr"));
  CHECK(Contains(LoadError(kludge(0x100040, 0x100000, 0x100101, 0, 0x100000)),
                 "the file is only 256 bytes"));
  CHECK(Contains(LoadError(kludge(0x100040, 0x100000, 0x100100, 0x1000FF, 0x100000)),
                 "bss_end_addr 0x1000ff is below the end of the loaded image"));
  CHECK(Contains(LoadError(kludge(0x100040, 0x100000, 0x100100, 0x100200, 0x100200)),
                 "entry_addr 0x100200 is outside the image, 0x100000-0x1001ff"));
  CHECK(Contains(LoadError(kludge(0x100040, 0x100000, 0x100100, 0x1000000 + 1, 0x100000)),
                 "does not fit in 16 MiB"));

  std::vector<std::uint8_t> cut_off(0x40);
  AppendHeader(cut_off, 1u << 16);
  cut_off.resize(0x40 + 28);
  CHECK(Contains(LoadError(cut_off), "address fields are cut off"));
}

}  // namespace
}  // namespace bt::runtime
