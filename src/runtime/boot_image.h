// What the kernel loaders share: reading boot files, little-endian fields of
// an image, the PC's low-memory layout and the wording of their messages.
#pragma once

#include <bt/result.h>

#include <cassert>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

namespace bt::runtime {

inline constexpr std::uint64_t kKiB = 1024;
inline constexpr std::uint64_t kMiB = 1024 * kKiB;

// The PC's low memory: conventional RAM up to the extended BIOS data area at
// 639 KiB, then the EBDA, video memory and ROMs up to 1 MiB. Loaders put
// nothing in between.
inline constexpr std::uint64_t kLowMemoryEnd = 0x9FC00;
inline constexpr std::uint64_t kHighMemoryStart = 0x100000;

// Reads a whole kernel or initrd file. Fails, naming `path`, if the file
// cannot be opened or read, is empty, or is larger than 256 MiB.
Result<std::vector<std::uint8_t>> ReadImageFile(const std::string& path);

// "0x1f" style, for addresses in messages.
std::string Hex(std::uint64_t value);
// "16 MiB", "4 KiB" or "1234 bytes".
std::string SizeName(std::uint64_t bytes);

// Images and guest structures are little-endian like the host; the caller has
// checked bounds.
inline std::uint16_t Load16(std::span<const std::uint8_t> bytes, std::size_t offset) {
  assert(offset + 2 <= bytes.size());
  std::uint16_t value;
  std::memcpy(&value, bytes.data() + offset, sizeof(value));
  return value;
}

inline std::uint32_t Load32(std::span<const std::uint8_t> bytes, std::size_t offset) {
  assert(offset + 4 <= bytes.size());
  std::uint32_t value;
  std::memcpy(&value, bytes.data() + offset, sizeof(value));
  return value;
}

inline std::uint64_t Load64(std::span<const std::uint8_t> bytes, std::size_t offset) {
  assert(offset + 8 <= bytes.size());
  std::uint64_t value;
  std::memcpy(&value, bytes.data() + offset, sizeof(value));
  return value;
}

template <typename T>
void StoreLittle(std::span<std::uint8_t> bytes, std::size_t offset, T value) {
  assert(offset + sizeof(T) <= bytes.size());
  std::memcpy(bytes.data() + offset, &value, sizeof(T));
}
inline void Store8(std::span<std::uint8_t> bytes, std::size_t offset, std::uint8_t value) {
  StoreLittle(bytes, offset, value);
}
inline void Store16(std::span<std::uint8_t> bytes, std::size_t offset, std::uint16_t value) {
  StoreLittle(bytes, offset, value);
}
inline void Store32(std::span<std::uint8_t> bytes, std::size_t offset, std::uint32_t value) {
  StoreLittle(bytes, offset, value);
}
inline void Store64(std::span<std::uint8_t> bytes, std::size_t offset, std::uint64_t value) {
  StoreLittle(bytes, offset, value);
}

}  // namespace bt::runtime
