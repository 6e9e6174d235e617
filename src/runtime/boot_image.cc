#include "runtime/boot_image.h"

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <system_error>

namespace bt::runtime {
namespace {

constexpr std::uint64_t kMaxImageBytes = 256 * kMiB;

}  // namespace

std::string Hex(std::uint64_t value) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string digits;
  do {
    digits.insert(digits.begin(), kDigits[value & 0xF]);
    value >>= 4;
  } while (value != 0);
  return "0x" + digits;
}

std::string SizeName(std::uint64_t bytes) {
  if (bytes % kMiB == 0) return std::to_string(bytes / kMiB) + " MiB";
  if (bytes % kKiB == 0) return std::to_string(bytes / kKiB) + " KiB";
  return std::to_string(bytes) + " bytes";
}

Result<std::vector<std::uint8_t>> ReadImageFile(const std::string& path) {
  struct Closer {
    void operator()(std::FILE* file) const { std::fclose(file); }
  };
  std::unique_ptr<std::FILE, Closer> file(std::fopen(path.c_str(), "rb"));
  if (!file) return Error{"cannot open " + path + ": " + std::strerror(errno)};
  // Refuse a huge regular file before reading it; the read loop below still
  // enforces the limit for files whose size is not known in advance.
  std::error_code size_error;
  const std::uintmax_t size = std::filesystem::file_size(path, size_error);
  const std::string too_large = path + " is larger than " + SizeName(kMaxImageBytes) +
                                ", more than libbt loads as a kernel or initrd";
  if (!size_error && size > kMaxImageBytes) return Error{too_large};

  std::vector<std::uint8_t> image;
  if (!size_error) image.reserve(size);
  std::vector<std::uint8_t> buffer(1 << 20);
  while (const std::size_t got = std::fread(buffer.data(), 1, buffer.size(), file.get())) {
    if (image.size() + got > kMaxImageBytes) return Error{too_large};
    image.insert(image.end(), buffer.begin(), buffer.begin() + got);
  }
  if (std::ferror(file.get())) return Error{"cannot read " + path + ": " + std::strerror(errno)};
  if (image.empty()) return Error{path + " is empty"};
  return image;
}

}  // namespace bt::runtime
