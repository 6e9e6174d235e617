// The Linux boot protocol loader with synthetic bzImages, and bt::Machine
// booting one.
#include "runtime/linux_loader.h"

#include "tests/support/loader_ram.h"

#include <bt/machine.h>

#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <iterator>
#include <string>
#include <vector>

namespace bt::runtime {
namespace {

using testing::Contains;
using testing::Poke16;
using testing::Poke32;
using testing::Poke64;
using testing::Read32;
using testing::Read64;
using testing::ReadRam;
using testing::ReadString;

constexpr std::uint64_t kRamBytes = 64u << 20;
constexpr std::uint32_t kBootParams = kLinuxBootParamsAddress;

// The protected-mode kernel of the synthetic bzImages: mov eax, cs;
// mov ebx, ds; hlt.
constexpr std::uint8_t kPayload[] = {0x8C, 0xC8, 0x8C, 0xDB, 0xF4};

// What the loader reads of a bzImage's setup header.
struct FakeKernel {
  std::uint8_t setup_sects = 4;
  std::uint16_t version = 0x020F;
  std::uint8_t loadflags = 0x01;  // LOADED_HIGH
  std::uint32_t initrd_addr_max = 0x7FFFFFFF;
  bool relocatable = true;
  std::uint16_t xloadflags = 0;
  std::uint32_t cmdline_size = 2047;
  std::uint64_t pref_address = 0x1000000;
  std::uint32_t init_size = 0x200000;
  std::vector<std::uint8_t> payload{std::begin(kPayload), std::end(kPayload)};
};

// Boot sector and setup sectors with the header, then the protected-mode
// kernel, as in a real bzImage; the header ends at 0x26C as in Linux 6.1.
std::vector<std::uint8_t> BuildBzImage(const FakeKernel& kernel) {
  std::vector<std::uint8_t> image((kernel.setup_sects + 1) * 512u, 0);
  image[0x1F1] = kernel.setup_sects;
  Poke16(image, 0x1FE, 0xAA55);
  image[0x200] = 0xEB;  // jmp short over the header
  image[0x201] = 0x6A;
  std::memcpy(image.data() + 0x202, "HdrS", 4);
  Poke16(image, 0x206, kernel.version);
  image[0x211] = kernel.loadflags;
  Poke32(image, 0x214, 0x100000);
  Poke32(image, 0x22C, kernel.initrd_addr_max);
  Poke32(image, 0x230, 0x1000000);
  image[0x234] = kernel.relocatable;
  Poke16(image, 0x236, kernel.xloadflags);
  Poke32(image, 0x238, kernel.cmdline_size);
  Poke64(image, 0x258, kernel.pref_address);
  Poke32(image, 0x260, kernel.init_size);
  image.insert(image.end(), kernel.payload.begin(), kernel.payload.end());
  return image;
}

std::string LoadError(const FakeKernel& kernel, std::string_view command_line = "",
                      const std::vector<std::uint8_t>& initrd = {},
                      std::uint64_t ram_bytes = kRamBytes) {
  mmu::PhysicalMemory memory = testing::MakeRam(ram_bytes);
  auto boot = LoadLinux(BuildBzImage(kernel), initrd, command_line, memory);
  REQUIRE_FALSE(boot.ok());
  // Nothing is written before everything is checked.
  const std::vector<std::uint8_t> params = ReadRam(memory, kBootParams, 4096);
  CHECK(std::count(params.begin(), params.end(), 0) == 4096);
  return boot.error();
}

TEST_CASE("Linux: the kernel lands at pref_address and boot_params carries the setup header") {
  mmu::PhysicalMemory memory = testing::MakeRam(kRamBytes);
  const FakeKernel kernel;
  const std::vector<std::uint8_t> image = BuildBzImage(kernel);
  REQUIRE(IsLinuxKernel(image));
  auto boot = LoadLinux(image, {}, "console=ttyS0 earlyprintk=serial", memory);
  REQUIRE_MESSAGE(boot.ok(), boot.error());

  CHECK(boot->eip == 0x1000000);
  CHECK(boot->esi == kBootParams);
  CHECK(ReadRam(memory, 0x1000000, kernel.payload.size()) == kernel.payload);
  // The setup header from 0x1F1 to its end, as the kernel built it...
  CHECK(ReadRam(memory, kBootParams + 0x1F1, 0x10) ==
        std::vector<std::uint8_t>(image.begin() + 0x1F1, image.begin() + 0x201));
  CHECK(ReadString(memory, kBootParams + 0x202).substr(0, 4) == "HdrS");
  CHECK(ReadRam(memory, kBootParams + 0x1EF, 1)[0] == 0);  // sentinel
  // ... with what the loader fills in.
  CHECK(ReadRam(memory, kBootParams + 0x210, 1)[0] == 0xFF);        // type_of_loader: undefined
  CHECK(ReadRam(memory, kBootParams + 0x211, 1)[0] == 0x81);        // LOADED_HIGH | CAN_USE_HEAP
  CHECK((Read32(memory, kBootParams + 0x224) & 0xFFFF) == 0xDE00);  // heap_end_ptr
  CHECK(Read32(memory, kBootParams + 0x214) == 0x1000000);          // code32_start
  CHECK(Read32(memory, kBootParams + 0x218) == 0);                  // no ramdisk_image
  CHECK(Read32(memory, kBootParams + 0x21C) == 0);
  CHECK(Read32(memory, kBootParams + 0x228) == kLinuxCommandLineAddress);
  CHECK(ReadString(memory, kLinuxCommandLineAddress) == "console=ttyS0 earlyprintk=serial");

  CHECK(boot->gdt_base == kLinuxGdtAddress);
  CHECK(boot->gdt_limit == 31);
  CHECK(Read64(memory, kLinuxGdtAddress + kLinuxBootCodeSelector) == 0x00CF9B000000FFFF);
  CHECK(Read64(memory, kLinuxGdtAddress + kLinuxBootDataSelector) == 0x00CF93000000FFFF);
}

TEST_CASE("Linux: a kernel that is not relocatable is loaded at 1 MiB") {
  mmu::PhysicalMemory memory = testing::MakeRam(kRamBytes);
  FakeKernel kernel;
  kernel.relocatable = false;
  auto boot = LoadLinux(BuildBzImage(kernel), {}, "", memory);
  REQUIRE_MESSAGE(boot.ok(), boot.error());
  CHECK(boot->eip == 0x100000);
  CHECK(ReadRam(memory, 0x100000, kernel.payload.size()) == kernel.payload);
  CHECK(Read32(memory, kBootParams + 0x214) == 0x100000);
  CHECK(ReadString(memory, kLinuxCommandLineAddress).empty());
}

TEST_CASE("Linux: the e820 map has conventional memory, the reserved hole and RAM above 1 MiB") {
  mmu::PhysicalMemory memory = testing::MakeRam(kRamBytes);
  REQUIRE(LoadLinux(BuildBzImage({}), {}, "", memory).ok());
  REQUIRE(ReadRam(memory, kBootParams + 0x1E8, 1)[0] == 3);
  struct Entry {
    std::uint64_t base, length;
    std::uint32_t type;
  };
  const Entry expected[] = {
      {0, 0x9FC00, 1}, {0x9FC00, 0x60400, 2}, {0x100000, kRamBytes - 0x100000, 1}};
  for (unsigned i = 0; i < 3; ++i) {
    const std::uint64_t entry = kBootParams + 0x2D0 + i * 20;
    CAPTURE(i);
    CHECK(Read64(memory, entry) == expected[i].base);
    CHECK(Read64(memory, entry + 8) == expected[i].length);
    CHECK(Read32(memory, entry + 16) == expected[i].type);
  }
  CHECK(Read64(memory, kBootParams + 0x2D0 + 3 * 20) == 0);
}

TEST_CASE("Linux: the initrd goes as high as RAM and initrd_addr_max allow, page-aligned") {
  const std::vector<std::uint8_t> initrd(5000, 0xA5);
  mmu::PhysicalMemory memory = testing::MakeRam(kRamBytes);
  REQUIRE(LoadLinux(BuildBzImage({}), initrd, "", memory).ok());
  CHECK(Read32(memory, kBootParams + 0x218) == kRamBytes - 0x2000);
  CHECK(Read32(memory, kBootParams + 0x21C) == 5000);
  CHECK(ReadRam(memory, kRamBytes - 0x2000, initrd.size()) == initrd);

  FakeKernel low_limit;
  low_limit.initrd_addr_max = 0x2FFFFFF;  // the last byte it may use
  mmu::PhysicalMemory capped = testing::MakeRam(kRamBytes);
  REQUIRE(LoadLinux(BuildBzImage(low_limit), initrd, "", capped).ok());
  CHECK(Read32(capped, kBootParams + 0x218) == 0x3000000 - 0x2000);
  CHECK(ReadRam(capped, 0x3000000 - 0x2000, initrd.size()) == initrd);
}

TEST_CASE("Linux: an initrd that would overlap the decompressed kernel is refused") {
  // The kernel takes 16 MiB + 2 MiB (init_size) = 0x1200000; 20 MiB of RAM
  // leaves 2 MiB.
  CHECK(Contains(LoadError({}, "", std::vector<std::uint8_t>((2u << 20) + 1, 1), 20u << 20),
                 "the initrd (2097153 bytes) does not fit between the kernel's end at 0x1200000 "
                 "and 0x1400000"));
  FakeKernel low_limit;
  low_limit.initrd_addr_max = 0x11FFFFF;
  CHECK(Contains(LoadError(low_limit, "", {1, 2, 3}), "does not fit"));
}

TEST_CASE("Linux: images the loader cannot boot are refused with the reason") {
  std::vector<std::uint8_t> not_linux = BuildBzImage({});
  std::memcpy(not_linux.data() + 0x202, "HdrX", 4);
  CHECK_FALSE(IsLinuxKernel(not_linux));
  CHECK_FALSE(IsLinuxKernel(std::vector<std::uint8_t>(0x205, 0)));
  mmu::PhysicalMemory memory = testing::MakeRam(kRamBytes);
  auto refused = LoadLinux(not_linux, {}, "", memory);
  REQUIRE_FALSE(refused.ok());
  CHECK(Contains(refused.error(), "not a Linux bzImage"));

  FakeKernel old;
  old.version = 0x0209;
  CHECK(Contains(LoadError(old), "boot protocol 2.09; libbt needs 2.10 or later"));
  FakeKernel x86_64;
  x86_64.xloadflags = 0x1;
  CHECK(Contains(LoadError(x86_64), "x86-64 kernel"));
  FakeKernel zimage;
  zimage.loadflags = 0;
  CHECK(Contains(LoadError(zimage), "zImage"));
  FakeKernel no_payload;
  no_payload.payload.clear();
  CHECK(Contains(LoadError(no_payload), "leaves no protected-mode kernel"));
  FakeKernel low;
  low.pref_address = 0x80000;
  CHECK(Contains(LoadError(low), "pref_address 0x80000 is below 1 MiB"));
}

TEST_CASE("Linux: a kernel that needs more RAM than the guest has is refused") {
  // 16 MiB + init_size 2 MiB does not fit in 16 MiB.
  CHECK(Contains(LoadError({}, "", {}, 16u << 20),
                 "the kernel needs 18 MiB of guest RAM (it runs at 0x1000000 and takes 2 MiB "
                 "from there); the guest has 16 MiB"));
}

TEST_CASE("Linux: the command line must fit the kernel's cmdline_size") {
  FakeKernel kernel;
  kernel.cmdline_size = 8;
  mmu::PhysicalMemory memory = testing::MakeRam(kRamBytes);
  REQUIRE(LoadLinux(BuildBzImage(kernel), {}, "8 bytes!", memory).ok());
  CHECK(ReadString(memory, kLinuxCommandLineAddress) == "8 bytes!");
  CHECK(Contains(LoadError(kernel, "9 bytes!!"),
                 "command line is 9 bytes; this kernel takes at most 8"));
  CHECK(Contains(LoadError({}, std::string_view("a\0b", 3)), "NUL"));
}

TEST_CASE("Machine enters a bzImage through the 32-bit boot protocol") {
  MachineConfig config;
  config.ram_bytes = kRamBytes;
  config.boot.kernel_image = BuildBzImage({});
  config.boot.initrd_image = {1, 2, 3, 4};
  config.boot.command_line = "quiet";
  auto machine = Machine::Create(config);
  REQUIRE_MESSAGE(machine.ok(), machine.error());
  const Registers entry = (*machine)->GetRegisters();
  CHECK(entry.eip == 0x1000000);
  CHECK(entry.esi == kBootParams);
  CHECK(entry.ebx == 0);
  CHECK(entry.edi == 0);
  CHECK(entry.ebp == 0);
  CHECK((entry.eflags & 0x200) == 0);  // interrupts off
  REQUIRE((*machine)->Run().reason == StopReason::kHalted);
  const Registers r = (*machine)->GetRegisters();
  CHECK(r.eax == kLinuxBootCodeSelector);
  CHECK(r.ebx == kLinuxBootDataSelector);
  std::uint32_t ramdisk_image = 0;
  REQUIRE((*machine)->ReadPhysical(kBootParams + 0x218, &ramdisk_image, 4).ok());
  std::uint8_t initrd[4] = {};
  REQUIRE((*machine)->ReadPhysical(ramdisk_image, initrd, 4).ok());
  CHECK(initrd[3] == 4);
}

TEST_CASE("Machine refuses an initrd for a Multiboot kernel and a file of neither kind") {
  MachineConfig config;
  config.ram_bytes = kRamBytes;
  config.boot.kernel_image = std::vector<std::uint8_t>(0x1000, 0x90);
  auto neither = Machine::Create(config);
  REQUIRE_FALSE(neither.ok());
  CHECK(Contains(neither.error(), "neither a Multiboot kernel nor a Linux bzImage"));

  const std::uint32_t magic = 0x1BADB002, flags = 0x00010000;
  const std::uint32_t header[8] = {magic, flags,   0u - magic - flags, 0x100000, 0x100000, 0,
                                   0,     0x100020};
  config.boot.kernel_image.assign(reinterpret_cast<const std::uint8_t*>(header),
                                  reinterpret_cast<const std::uint8_t*>(header + 8));
  config.boot.kernel_image.push_back(0xF4);
  REQUIRE(Machine::Create(config).ok());
  config.boot.initrd_image = {1};
  auto with_initrd = Machine::Create(config);
  REQUIRE_FALSE(with_initrd.ok());
  CHECK(Contains(with_initrd.error(), "an initrd was given, but this is a Multiboot kernel"));
}

}  // namespace
}  // namespace bt::runtime
