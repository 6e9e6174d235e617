// FS and GS with bases and limits (SDM Vol. 3A 3.4.5, 5.3): accesses of
// every kind add the base and fault at the bounds, a null FS or GS faults on
// any access, and what operating systems keep in them (a base with a 4 GiB
// limit, or a null selector in code that never uses it) costs nothing.
// QEMU checks no data segment limits, so tests/guests/port_strings.c
// compares only bases with it; the faults are checked here.

#include "tests/unit/segment_guest.h"

#include <bt/machine.h>

#include <doctest/doctest.h>

#include <chrono>
#include <functional>
#include <string>

namespace bt {
namespace {

using namespace segment_guest;

// A dword of the result area through SS, for code that changes FS.
x86::Mem OutSs(unsigned index) { return testing::Flat(kOut + 4 * index); }

// The FS or GS override prefix.
char OverrideOf(const x86::SReg& segment) { return segment == x86::fs ? '\x64' : '\x65'; }

// An instruction `bytes` encodes after `segment`'s override prefix.
void WithOverride(x86::Assembler& a, const x86::SReg& segment, std::string bytes) {
  bytes.insert(bytes.begin(), OverrideOf(segment));
  a.embed(bytes.data(), bytes.size());
}

TEST_CASE("FS and GS with limits: accesses add the base and fault where their bounds end") {
  const x86::SReg segments[] = {x86::fs, x86::gs};
  RunEverySetting(
      [&](x86::Assembler& a, FaultList& faults) {
        auto gp = [&](const std::function<void()>& emit) {
          faults.Expect(a, FaultList::kGp, emit);
        };
        for (unsigned i = 0; i < 2; ++i) {
          const x86::SReg& s = segments[i];
          const unsigned out = 16 * i;
          a.cld();
          // Flat, then limited in the middle of a unit: the access after
          // the load is checked.
          Load(a, s, kData0);
          a.mov(x86::eax, With(x86::dword_ptr_abs(kOut + 0x200), s));
          Load(a, s, kDs);  // base kDsBase, limit 0xFFFF
          a.mov(x86::ebx, 0xFFFC);
          a.mov(x86::ecx, 0x11111111);
          a.mov(x86::eax, With(x86::dword_ptr(x86::ebx), s));  // the last dword: fine
          a.mov(OutSs(out), x86::eax);
          gp([&] { a.mov(x86::eax, With(x86::dword_ptr(x86::ebx, 1), s)); });
          gp([&] { a.mov(With(x86::byte_ptr(x86::ebx, 4), s), x86::cl); });
          gp([&] { a.add(With(x86::dword_ptr(x86::ebx, 2), s), x86::ecx); });
          gp([&] { WithOverride(a, s, std::string("\xA1\xFE\xFF\x00\x00", 5)); });  // moffs
          gp([&] { a.push(With(x86::dword_ptr(x86::ebx, 2), s)); });
          a.push(x86::ecx);
          gp([&] { a.pop(With(x86::dword_ptr(x86::ebx, 2), s)); });  // ESP stays
          a.pop(x86::ecx);
          gp([&] { a.sgdt(With(x86::ptr_abs(0xFFFC), s)); });  // a callout's operand
          a.mov(x86::esi, 0xFFF8);
          WithOverride(a, s, "\xAD");  // lodsd
          a.mov(OutSs(out + 1), x86::eax);
          WithOverride(a, s, "\xAD");  // the last dword
          a.mov(OutSs(out + 2), x86::eax);
          gp([&] { WithOverride(a, s, "\xAD"); });
          a.mov(OutSs(out + 3), x86::esi);
          a.mov(x86::ebx, 0xFFF0);
          a.mov(x86::eax, 0x0C);
          WithOverride(a, s, "\xD7");  // xlat: the byte at 0xFFFC
          a.mov(OutSs(out + 4), x86::eax);
          a.mov(x86::eax, 0x10);
          gp([&] { WithOverride(a, s, "\xD7"); });
          // Four dwords from 0xFFF0 fit; the fifth does not.
          a.mov(x86::esi, 0xFFF0);
          a.mov(x86::edi, kOut + 0x100 + 0x20 * i);
          a.mov(x86::ecx, 6);
          gp([&] { WithOverride(a, s, "\xF3\xA5"); });  // rep movsd
          a.mov(OutSs(out + 5), x86::esi);
          a.mov(OutSs(out + 6), x86::edi);
          a.mov(OutSs(out + 7), x86::ecx);
          Load(a, s, kDown);  // expand-down above 0xFFF, B set
          a.mov(x86::eax, With(x86::dword_ptr_abs(0x1000), s));
          a.mov(OutSs(out + 8), x86::eax);
          gp([&] { a.mov(x86::eax, With(x86::dword_ptr_abs(0xFFE), s)); });
          Load(a, s, kReadOnly);
          a.mov(x86::eax, With(x86::dword_ptr_abs(0x100), s));
          a.mov(OutSs(out + 9), x86::eax);
          gp([&] { a.mov(With(x86::dword_ptr_abs(0x100), s), x86::eax); });
          gp([&] { a.smsw(With(x86::word_ptr_abs(0x100), s)); });
        }
        Load(a, x86::fs, kData0);
        Load(a, x86::gs, kData0);
      },
      [&](SegmentGuest& guest) {
        for (unsigned i = 0; i < 2; ++i) {
          CAPTURE(i);
          const std::uint32_t out = kOut + 64 * i;
          CHECK(guest.Read32(out) == kDsBase + 0xFFFC);
          CHECK(guest.Read32(out + 4) == kDsBase + 0xFFF8);
          CHECK(guest.Read32(out + 8) == kDsBase + 0xFFFC);
          CHECK(guest.Read32(out + 12) == 0x10000);
          CHECK((guest.Read32(out + 16) & 0xFF) == 0xFC);
          for (std::uint32_t j = 0; j < 4; ++j) {
            CHECK(guest.Read32(kOut + 0x100 + 0x20 * i + 4 * j) == kDsBase + 0xFFF0 + 4 * j);
          }
          CHECK(guest.Read32(kOut + 0x110 + 0x20 * i) == 0);
          CHECK(guest.Read32(out + 20) == 0x10000);
          CHECK(guest.Read32(out + 24) == kOut + 0x110 + 0x20 * i);
          CHECK(guest.Read32(out + 28) == 2);
          CHECK(guest.Read32(out + 32) == kDsBase + 0x1000);
          CHECK(guest.Read32(out + 36) == kDsBase + 0x100);
        }
        CHECK(guest.Read32(kDsBase + 0xFFFC) == kDsBase + 0xFFFC);
        CHECK(guest.Read32(kDsBase + 0x100) == kDsBase + 0x100);
      });
}

TEST_CASE("null FS and GS load without a fault; every access through them is #GP(0)") {
  const x86::SReg segments[] = {x86::fs, x86::gs};
  RunEverySetting(
      [&](x86::Assembler& a, FaultList& faults) {
        auto gp = [&](const std::function<void()>& emit) {
          faults.Expect(a, FaultList::kGp, emit);
        };
        a.cld();
        for (const x86::SReg& s : segments) {
          // A null selector of any RPL.
          a.mov(x86::eax, 3);
          a.mov(s, x86::ax);
          a.mov(x86::esi, 0x100);
          a.mov(x86::edi, kOut + 0x100);
          a.mov(x86::ebx, 0x100);
          a.mov(x86::ecx, 4);
          gp([&] { a.mov(x86::eax, With(x86::dword_ptr(x86::ebx), s)); });
          gp([&] { a.mov(With(x86::dword_ptr(x86::ebx), s), x86::ecx); });
          gp([&] { WithOverride(a, s, std::string("\xA1\x00\x01\x00\x00", 5)); });  // moffs
          gp([&] { WithOverride(a, s, "\xAD"); });                                  // lodsd
          gp([&] { WithOverride(a, s, "\xD7"); });                                  // xlat
          gp([&] { WithOverride(a, s, "\xF3\xA4"); });  // rep movsb: nothing moved
          gp([&] { a.push(With(x86::dword_ptr(x86::ebx), s)); });
          gp([&] { a.sgdt(With(x86::ptr_abs(0x100), s)); });
          a.lea(x86::eax, With(x86::ptr(x86::ebx), s));  // an address, no access: fine
          a.mov(OutSs(0), x86::esi);
          a.mov(OutSs(1), x86::edi);
          a.mov(OutSs(2), x86::ecx);
          a.mov(OutSs(3), x86::eax);
        }
        Load(a, x86::fs, kData0);
        Load(a, x86::gs, kData0);
      },
      [&](SegmentGuest& guest) {
        CHECK(guest.Read32(kOut) == 0x100);
        CHECK(guest.Read32(kOut + 4) == kOut + 0x100);
        CHECK(guest.Read32(kOut + 8) == 4);
        CHECK(guest.Read32(kOut + 12) == 0x100);
        CHECK(guest.Read32(kOut + 0x100) == 0);
        CHECK(guest.Read32(0x100) == 0);
      });
}

// What operating systems do with FS and GS (per-CPU data, thread-local
// storage) costs no limit checks, so reloading them leaves no unit.
TEST_CASE(
    "FS and GS with a base but a 4 GiB limit are not checked: reloads stay in translated code") {
  constexpr std::uint32_t kLoops = 10000;
  SegmentGuest guest([&](x86::Assembler& a) {
    asmjit::Label loop = a.newLabel();
    a.mov(x86::ecx, kLoops);
    a.xor_(x86::edx, x86::edx);
    a.bind(loop);
    Load(a, x86::fs, kBasedFlat);
    a.add(x86::edx, With(x86::dword_ptr_abs(0x100), x86::fs));
    Load(a, x86::gs, kBasedFlat);
    a.add(x86::edx, With(x86::dword_ptr_abs(0x104), x86::gs));
    Load(a, x86::fs, kData0);
    Load(a, x86::gs, kData0);
    a.dec(x86::ecx);
    a.jnz(loop);
    a.mov(x86::dword_ptr_abs(kOut), x86::edx);
    Finish(a);
  });
  guest.Run();
  CHECK(guest.Read32(kOut) == kLoops * (2 * kDsBase + 0x204));
  CHECK(guest.machine().GetStats().dispatcher_entries < 100);
}

// Bug this guards against: Linux keeps GS null in its kernel threads and
// never uses it in the kernel, and every null GS load changed the unit mode,
// leaving translated code and translating the kernel twice.
TEST_CASE("a null FS or GS costs nothing in code that never accesses through it") {
  constexpr std::uint32_t kLoops = 10000;
  SegmentGuest guest([&](x86::Assembler& a) {
    asmjit::Label loop = a.newLabel();
    a.mov(x86::eax, With(x86::dword_ptr_abs(0x100), x86::fs));  // FS is used, GS not
    a.mov(x86::ecx, kLoops);
    a.bind(loop);
    a.xor_(x86::eax, x86::eax);
    a.mov(x86::gs, x86::ax);
    Load(a, x86::gs, kData0);
    a.dec(x86::ecx);
    a.jnz(loop);
    a.xor_(x86::eax, x86::eax);
    a.mov(x86::gs, x86::ax);
    Finish(a);
  });
  guest.Run();
  CHECK(guest.machine().GetStats().dispatcher_entries < 100);
}

}  // namespace
}  // namespace bt
