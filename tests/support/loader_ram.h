// Guest RAM for the loader tests: building images byte by byte and reading
// back what a loader wrote.
#pragma once

#include "mmu/physical_memory.h"

#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace bt::testing {

inline void Poke16(std::vector<std::uint8_t>& bytes, std::size_t offset, std::uint16_t value) {
  std::memcpy(bytes.data() + offset, &value, sizeof(value));
}

inline void Poke32(std::vector<std::uint8_t>& bytes, std::size_t offset, std::uint32_t value) {
  std::memcpy(bytes.data() + offset, &value, sizeof(value));
}

inline void Poke64(std::vector<std::uint8_t>& bytes, std::size_t offset, std::uint64_t value) {
  std::memcpy(bytes.data() + offset, &value, sizeof(value));
}

inline mmu::PhysicalMemory MakeRam(std::uint64_t bytes) {
  auto memory = mmu::PhysicalMemory::Create(bytes);
  REQUIRE(memory.ok());
  return std::move(memory.value());
}

inline std::vector<std::uint8_t> ReadRam(const mmu::PhysicalMemory& memory, std::uint64_t address,
                                         std::size_t bytes) {
  std::vector<std::uint8_t> data(bytes);
  REQUIRE(memory.Read(address, data.data(), bytes));
  return data;
}

template <typename T>
T ReadRamValue(const mmu::PhysicalMemory& memory, std::uint64_t address) {
  T value{};
  REQUIRE(memory.Read(address, &value, sizeof(value)));
  return value;
}

inline std::uint32_t Read32(const mmu::PhysicalMemory& memory, std::uint64_t address) {
  return ReadRamValue<std::uint32_t>(memory, address);
}

inline std::uint64_t Read64(const mmu::PhysicalMemory& memory, std::uint64_t address) {
  return ReadRamValue<std::uint64_t>(memory, address);
}

inline std::string ReadString(const mmu::PhysicalMemory& memory, std::uint64_t address) {
  std::string text;
  for (char c; (c = static_cast<char>(ReadRam(memory, address++, 1)[0])) != '\0';) text += c;
  return text;
}

inline bool Contains(const std::string& text, std::string_view part) {
  return text.find(part) != std::string::npos;
}

}  // namespace bt::testing
