// ins and outs, with and without rep (SDM Vol. 2A INS, Vol. 2B OUTS and
// REP): elements of 1, 2 or 4 bytes between port DX and ES:[EDI] (ins) or
// DS:[ESI] and its overrides (outs), stepping by DF, with 32-bit addressing.
//
// The I/O permission check is in/out's (HandleCallout), made once: the port
// is the same for every element. Elements go in runs that lie within one
// page and their segment, each run's guest memory located (limit checked,
// page walked) before any of its ports is accessed. So a fault leaves ESI or
// EDI and ECX at the element that raised it with the elements before it
// done, and for ins it comes before that element's port read, whose data a
// restart after the #PF handler would otherwise lose. The SDM has the read
// first; QEMU and Bochs also check the destination before it.
#include "runtime/descriptor.h"
#include "runtime/vcpu.h"

#include <algorithm>
#include <cstring>

namespace bt::runtime {

using decoder::DecodedInstruction;

namespace {

// How many `size`-byte elements from linear `linear` on, stepping down if
// `down`, lie wholly in the page of the first: 0 if that one straddles two.
std::uint32_t ElementsInPage(std::uint32_t linear, unsigned size, bool down) {
  const std::uint32_t in_page = linear % kPageSize;
  if (in_page + size > kPageSize) return 0;
  return down ? in_page / size + 1 : (kPageSize - in_page) / size;
}

}  // namespace

bool Vcpu::PortString(const DecodedInstruction& insn, std::uint16_t port) {
  using translator::kEcx;
  const bool in = insn.kind == decoder::Kind::kIns;
  const unsigned size = insn.operand_size;
  const bool down = state_->host_flags & translator::kEflagsDf;
  const unsigned segment_index = in ? unsigned{translator::kEs} : insn.segment;
  const translator::SegmentState& segment = state_->segment[segment_index];
  std::uint32_t& offset = state_->gpr[in ? translator::kEdi : translator::kEsi];
  std::uint32_t& count = state_->gpr[kEcx];
  std::uint64_t left = insn.rep ? count : 1;
  std::uint32_t budget = kStringElementsPerCallout;
  auto advance = [&](std::uint32_t elements) {
    offset += (down ? 0u - size : size) * elements;
    if (insn.rep) count -= elements;
    left -= elements;
    budget -= elements;
  };
  std::uint8_t buffer[kPageSize];
  while (left > 0) {
    // Long reps go on from a later callout, after the dispatcher has seen
    // to stop requests and events (which may come between iterations).
    if (budget == 0) return ExitWith(std::nullopt, insn.eip);
    std::uint32_t run = std::max(ElementsInPage(segment.base + offset, size, down), 1u);
    run = static_cast<std::uint32_t>(std::min<std::uint64_t>({run, left, budget}));
    // Near a limit, element by element up to the one outside it.
    if (run > 1 && !RunWithin(segment, offset, run, size, down, in)) run = 1;
    if (run == 1 && !RunWithin(segment, offset, 1, size, down, in)) {
      return RaiseFault(LimitFault(segment_index), insn, 0);
    }
    const std::uint32_t lowest = down ? offset - (run - 1) * size : offset;
    GuestPieces memory;
    if (!LocateGuest(segment.base + lowest, run * size, in, CurrentView(), memory)) {
      // A run of several elements lies in one page, whose #PF the first of
      // them in DF's order takes.
      if (access_fault_ && run > 1) access_fault_->address = segment.base + offset;
      return OperandOutsideRam(insn);
    }
    // The buffer holds the run in memory order, the ports see it in
    // DF's order.
    auto element = [&](std::uint32_t i) { return buffer + (down ? run - 1 - i : i) * size; };
    if (in) {
      for (std::uint32_t i = 0; i < run; ++i) {
        const std::uint32_t value = parts_.ports.Read(port, size);
        std::memcpy(element(i), &value, size);
      }
      CopyGuest(memory, buffer, true);
      advance(run);
      continue;
    }
    CopyGuest(memory, buffer, false);
    for (std::uint32_t i = 0; i < run; ++i) {
      std::uint32_t value = 0;
      std::memcpy(&value, element(i), size);
      parts_.ports.Write(port, size, value);
      if (!pending_stop_) continue;
      // The device stopped the run (debug exit, reset): after this element.
      advance(i + 1);
      pending_stop_->eip = left > 0 ? insn.eip : insn.next_eip();
      return ExitWith(std::nullopt, pending_stop_->eip);
    }
    advance(run);
  }
  return false;
}

}  // namespace bt::runtime
