#include "runtime/boot_image.h"

#include "tests/support/loader_ram.h"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

namespace bt::runtime {
namespace {

using testing::Contains;

struct TempDir {
  std::filesystem::path path = std::filesystem::temp_directory_path() /
                               ("bt_boot_image_test_" + std::to_string(std::random_device{}()));
  TempDir() { std::filesystem::create_directories(path); }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::string File(const std::string& name, const std::string& contents) const {
    const std::string file = (path / name).string();
    std::ofstream(file, std::ios::binary) << contents;
    return file;
  }
};

TEST_CASE("ReadImageFile reads a whole file and explains failures") {
  TempDir dir;
  auto image = ReadImageFile(dir.File("kernel.bin", std::string("\x7f"
                                                                "ELF\0\1",
                                                                6)));
  REQUIRE_MESSAGE(image.ok(), image.error());
  CHECK(*image == std::vector<std::uint8_t>{0x7F, 'E', 'L', 'F', 0, 1});

  const std::string missing = (dir.path / "missing.elf").string();
  auto not_there = ReadImageFile(missing);
  REQUIRE_FALSE(not_there.ok());
  CHECK(not_there.error() == "cannot open " + missing + ": No such file or directory");

  auto empty = ReadImageFile(dir.File("empty.elf", ""));
  REQUIRE_FALSE(empty.ok());
  CHECK(Contains(empty.error(), "empty.elf is empty"));

  auto directory = ReadImageFile(dir.path.string());
  REQUIRE_FALSE(directory.ok());
  CHECK(Contains(directory.error(), "Is a directory"));

  const std::string huge = dir.File("huge.elf", "");
  std::filesystem::resize_file(huge, (256u << 20) + 1);  // sparse: costs no disk
  auto too_large = ReadImageFile(huge);
  REQUIRE_FALSE(too_large.ok());
  CHECK(Contains(too_large.error(), "huge.elf is larger than 256 MiB"));
}

TEST_CASE("Hex and SizeName word addresses and sizes for messages") {
  CHECK(Hex(0) == "0x0");
  CHECK(Hex(0x9FC00) == "0x9fc00");
  CHECK(SizeName(16u << 20) == "16 MiB");
  CHECK(SizeName(4096) == "4 KiB");
  CHECK(SizeName(1000) == "1000 bytes");
}

}  // namespace
}  // namespace bt::runtime
