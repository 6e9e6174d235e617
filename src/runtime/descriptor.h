// A segment or gate descriptor as it sits in the GDT, LDT or IDT (SDM Vol. 3A
// 3.4.5 and 6.11), as the runtime's segment loads, interrupt delivery and
// system instructions read it.
#pragma once

#include "translator/cpu_state.h"

#include <cstdint>
#include <cstring>
#include <optional>

namespace bt::runtime {

// System-segment and gate types (SDM Vol. 3A table 3-2).
enum SystemType : unsigned {
  kTss16Available = 1,
  kLdtType = 2,
  kTss16Busy = 3,
  kCallGate16 = 4,
  kTaskGate = 5,
  kInterruptGate16 = 6,
  kTrapGate16 = 7,
  kTss32Available = 9,
  kTss32Busy = 0xB,
  kCallGate32 = 0xC,
  kInterruptGate32 = 0xE,
  kTrapGate32 = 0xF,
};
// The busy bit of a TSS type.
constexpr unsigned kTssBusy = 2;
// The smallest limit of a 32-bit TSS: its fixed fields end at 0x68 (SDM
// Vol. 3A 7.2.2).
constexpr std::uint32_t kTss32MinimumLimit = 0x67;

struct Descriptor {
  std::uint8_t bytes[8] = {};

  std::uint8_t access() const { return bytes[5]; }
  unsigned type() const { return bytes[5] & 0x0F; }
  bool system() const { return !(bytes[5] & 0x10); }
  bool code() const { return !system() && (bytes[5] & 0x08); }
  bool conforming() const { return code() && (bytes[5] & 0x04); }
  // Readable for code, writable for data.
  bool readable_or_writable() const { return bytes[5] & 0x02; }
  unsigned dpl() const { return bytes[5] >> 5 & 3; }
  bool present() const { return bytes[5] & 0x80; }
  bool big() const { return bytes[6] & 0x40; }
  std::uint32_t high() const {
    std::uint32_t value;
    std::memcpy(&value, bytes + 4, 4);
    return value;
  }
  // The selector a gate leads to: a code segment, or a TSS for a task gate.
  std::uint16_t gate_selector() const {
    return static_cast<std::uint16_t>(bytes[2] | bytes[3] << 8);
  }
  std::uint32_t base() const {
    return bytes[2] | bytes[3] << 8 | bytes[4] << 16 | static_cast<std::uint32_t>(bytes[7]) << 24;
  }
  // In bytes: a page-granular limit counts whole 4 KiB pages.
  std::uint32_t limit() const {
    const std::uint32_t limit = bytes[0] | bytes[1] << 8 | (bytes[6] & 0x0Fu) << 16;
    return bytes[6] & 0x80 ? limit << 12 | 0xFFF : limit;
  }
  translator::SegmentState Cached(std::uint16_t selector) const {
    return {selector, base(), limit(), static_cast<std::uint16_t>(bytes[5] | bytes[6] << 8)};
  }
};

// The offsets a data access through a segment register may reach (SDM Vol.
// 3A 5.3, 5.4.1), from its cached descriptor: for reads, or writes.
translator::SegmentBounds BoundsOf(const translator::SegmentState& segment, bool write);
// The linear address of the `bytes` (> 0) at `offset` in `segment`, or
// nullopt if any of them lies outside its bounds for the access.
std::optional<std::uint32_t> SegmentAddress(const translator::SegmentState& segment,
                                            std::uint32_t offset, std::uint64_t bytes, bool write);
// Whether every element of a `count`-element run from `offset` stepping by
// `size` (down if `down`) lies within `segment`, without wrapping.
bool RunWithin(const translator::SegmentState& segment, std::uint32_t offset, std::uint64_t count,
               unsigned size, bool down, bool write);

}  // namespace bt::runtime
