// ES, SS and DS with bases and limits (SDM Vol. 3A 3.4.5, 5.3, 5.4.1):
// every kind of access adds the segment's base, and one outside the limit
// (expand-up or expand-down), a write to a read-only segment or any access
// through a null data segment raises #GP(0), or #SS(0) through SS, before
// anything changes. Units translated with flat segments are not reused
// under based ones, and reloading a flat segment, or an FS or GS with a base
// but no limit, stays in translated code.
// QEMU checks no data segment limits, so tests/guests/segments.c compares
// only bases and segment loads with it; the faults are checked here. FS
// and GS have fs_gs_limits_test.cc.
#include "tests/unit/segment_guest.h"

#include <bt/machine.h>

#include <doctest/doctest.h>

#include <chrono>
#include <functional>
#include <string>

namespace bt {
namespace {

using namespace segment_guest;

TEST_CASE("ModRM and moffs operands add the base of their segment, overrides choose it") {
  RunEverySetting(
      [&](x86::Assembler& a, FaultList&) {
        LoadBased(a);
        a.mov(x86::ebx, 0x100);
        a.mov(x86::ebp, 0x100);
        a.mov(x86::esi, 0x60);
        a.xor_(x86::edi, x86::edi);
        a.mov(x86::eax, x86::dword_ptr(x86::ebx));
        a.mov(Out(0), x86::eax);
        a.mov(x86::eax, x86::dword_ptr(x86::ebp, 0x10));  // SS by default
        a.mov(Out(1), x86::eax);
        a.mov(x86::eax, With(x86::dword_ptr(x86::ebx), x86::es));
        a.mov(Out(2), x86::eax);
        a.mov(x86::eax, With(x86::dword_ptr(x86::ebx), x86::ss));
        a.mov(Out(3), x86::eax);
        a.mov(x86::eax, With(x86::dword_ptr(x86::ebp, 0x10), x86::ds));
        a.mov(Out(4), x86::eax);
        a.mov(x86::eax, With(x86::dword_ptr(x86::ebx, kDsBase + 0x20), x86::cs));  // flat
        a.mov(Out(5), x86::eax);
        a.embed("\xA1\x30\x01\x00\x00", 5);  // mov eax, [0x130]
        a.mov(Out(6), x86::eax);
        a.embed("\x36\xA1\x30\x01\x00\x00", 6);  // mov eax, ss:[0x130]
        a.mov(Out(7), x86::eax);
        a.mov(x86::eax, 0xAABBCCDD);
        a.embed("\xA3\x40\x01\x00\x00", 5);  // mov [0x140], eax
        a.mov(x86::dword_ptr(x86::ebx, 0x50), x86::eax);
        a.mov(x86::eax, x86::dword_ptr(x86::esp, 4));  // SS
        a.mov(Out(8), x86::eax);
        a.embed("\x67\x8B\x00", 3);  // mov eax, [bx+si]
        a.mov(Out(9), x86::eax);
        a.embed("\x67\x8B\x03", 3);  // mov eax, [bp+di]: SS
        a.mov(Out(10), x86::eax);
        a.mov(x86::eax, 0);
        a.mov(x86::ah, x86::byte_ptr(x86::esp, 9));  // through a spilled register
        a.mov(Out(11), x86::eax);
        a.lea(x86::eax, x86::ptr(x86::ebx, 4));  // an address, no access: no base
        a.mov(Out(12), x86::eax);
        a.mov(x86::eax, 4);
        a.xlatb();  // AL = DS:[EBX + AL]
        a.mov(Out(13), x86::eax);
        a.add(x86::dword_ptr(x86::ebx, 0x70), 1);  // read-modify-write
      },
      [&](SegmentGuest& guest) {
        CHECK(guest.Read32(kOut) == kDsBase + 0x100);
        CHECK(guest.Read32(kOut + 4) == kSsBase + 0x110);
        CHECK(guest.Read32(kOut + 8) == kEsBase + 0x100);
        CHECK(guest.Read32(kOut + 12) == kSsBase + 0x100);
        CHECK(guest.Read32(kOut + 16) == kDsBase + 0x110);
        CHECK(guest.Read32(kOut + 20) == kDsBase + 0x120);
        CHECK(guest.Read32(kOut + 24) == kDsBase + 0x130);
        CHECK(guest.Read32(kOut + 28) == kSsBase + 0x130);
        CHECK(guest.Read32(kDsBase + 0x140) == 0xAABBCCDD);
        CHECK(guest.Read32(kDsBase + 0x150) == 0xAABBCCDD);
        CHECK(guest.Read32(kOut + 32) == kSsBase + 0x8004);
        CHECK(guest.Read32(kOut + 36) == kDsBase + 0x160);
        CHECK(guest.Read32(kOut + 40) == kSsBase + 0x100);  // EDI is 0
        CHECK(guest.Read32(kOut + 44) == 0x8000);           // the byte at SS:0x8009
        CHECK(guest.Read32(kOut + 48) == 0x104);
        CHECK((guest.Read32(kOut + 52) & 0xFF) == 0x04);  // the low byte of kDsBase + 0x104
        CHECK(guest.Read32(kDsBase + 0x170) == kDsBase + 0x171);
      });
}

TEST_CASE("stack instructions go through SS's base") {
  std::uint32_t after_call = 0, after_indirect_call = 0;
  RunEverySetting(
      [&](x86::Assembler& a, FaultList&) {
        asmjit::Label function = a.newLabel(), over = a.newLabel();
        a.jmp(over);
        a.bind(function);
        a.mov(x86::eax, x86::dword_ptr(x86::esp));  // the return address, through SS
        a.ret();
        a.bind(over);
        LoadBased(a);
        a.mov(x86::ebx, 0x100);
        a.push(0x12345678);                     // SS:0x7FFC
        a.push(x86::dword_ptr(x86::ebx));       // DS:0x100 to SS:0x7FF8
        a.pop(x86::dword_ptr(x86::ebx, 0x10));  // SS:0x7FF8 to DS:0x110
        a.pop(x86::ecx);                        // 0x12345678
        a.mov(Out(0), x86::ecx);
        a.call(function);
        after_call = Here(a);
        a.mov(Out(1), x86::eax);
        a.lea(x86::edx, x86::ptr(function));
        a.mov(x86::dword_ptr(x86::ebx, 0x20), x86::edx);
        a.call(x86::dword_ptr(x86::ebx, 0x20));  // DS:0x120 holds the target
        after_indirect_call = Here(a);
        a.mov(Out(2), x86::eax);
        a.mov(x86::ebp, 0x1234);
        a.enter(asmjit::imm(16), asmjit::imm(0));  // pushes EBP at SS:0x7FFC
        a.mov(Out(3), x86::esp);
        a.mov(Out(4), x86::ebp);
        a.leave();
        a.mov(Out(5), x86::ebp);
        a.mov(Out(6), x86::esp);
        a.mov(x86::eax, 0xA0);
        a.mov(x86::esi, 0xA6);
        a.pushad();  // SS:0x7FE0 to SS:0x7FFF
        a.mov(x86::eax, 0);
        a.mov(x86::esi, 0);
        a.popad();
        a.mov(Out(7), x86::eax);
        a.mov(Out(8), x86::esi);
        a.push(x86::ds);  // SS:0x7FFC
        a.pop(x86::edx);
        a.mov(Out(9), x86::edx);
        a.pushfd();
        a.popfd();
        a.mov(Out(10), x86::esp);
      },
      [&](SegmentGuest& guest) {
        CHECK(guest.Read32(kOut) == 0x12345678);
        CHECK(guest.Read32(kDsBase + 0x110) == kDsBase + 0x100);
        CHECK(guest.Read32(kOut + 4) == after_call);
        CHECK(guest.Read32(kOut + 8) == after_indirect_call);
        CHECK(guest.Read32(kOut + 12) == 0x8000 - 4 - 16);
        CHECK(guest.Read32(kOut + 16) == 0x8000 - 4);
        CHECK(guest.Read32(kOut + 20) == 0x1234);
        CHECK(guest.Read32(kOut + 24) == 0x8000);
        CHECK(guest.Read32(kSsBase + 0x7FE4) == 0xA6);  // ESI
        CHECK(guest.Read32(kOut + 28) == 0xA0);
        CHECK(guest.Read32(kOut + 32) == 0xA6);
        CHECK(guest.Read32(kOut + 36) == kDs);
        CHECK(guest.Read32(kOut + 40) == 0x8000);
      });
}

TEST_CASE("string instructions run over DS:ESI and ES:EDI with their bases") {
  RunEverySetting(
      [&](x86::Assembler& a, FaultList&) {
        LoadBased(a);
        a.cld();
        a.mov(x86::esi, 0x100);
        a.mov(x86::edi, 0x200);
        a.mov(x86::ecx, 4);
        a.embed("\xF3\xA5", 2);  // rep movsd: DS:0x100.. to ES:0x200..
        a.mov(Out(0), x86::esi);
        a.mov(Out(1), x86::edi);
        a.mov(x86::eax, 0x5A5A5A5A);
        a.mov(x86::ecx, 2);
        a.embed("\xF3\xAB", 2);  // rep stosd: ES:0x210, 0x214
        a.mov(x86::esi, 0x300);
        a.embed("\xAD", 1);  // lodsd from DS:0x300
        a.mov(Out(2), x86::eax);
        a.embed("\x36\xAD", 2);  // lodsd from SS:0x304
        a.mov(Out(3), x86::eax);
        a.mov(x86::esi, kOut);
        a.embed("\x64\xAD", 2);  // lodsd from FS, which is flat
        a.mov(Out(4), x86::eax);
        a.mov(x86::esi, 0x200);
        a.mov(x86::edi, 0x200);
        a.mov(x86::ecx, 1);
        a.embed("\xF3\xA7", 2);  // repe cmpsd: DS:0x200 against ES:0x200 differ
        a.setne(x86::al);
        a.movzx(x86::eax, x86::al);
        a.mov(Out(5), x86::eax);
        a.mov(x86::eax, kEsBase + 0x400);
        a.mov(x86::edi, 0x3F0);
        a.mov(x86::ecx, 16);
        a.embed("\xF2\xAF", 2);  // repne scasd finds EAX at ES:0x400
        a.mov(Out(6), x86::edi);
        a.mov(Out(7), x86::ecx);
        a.std();
        a.mov(x86::esi, 0x50C);
        a.mov(x86::edi, 0x60C);
        a.mov(x86::ecx, 2);
        a.embed("\xF3\xA5", 2);  // backwards: DS:0x50C, 0x508 to ES:0x60C, 0x608
        a.cld();
      },
      [&](SegmentGuest& guest) {
        for (std::uint32_t i = 0; i < 4; ++i) {
          CHECK(guest.Read32(kEsBase + 0x200 + 4 * i) == kDsBase + 0x100 + 4 * i);
        }
        CHECK(guest.Read32(kOut) == 0x110);
        CHECK(guest.Read32(kOut + 4) == 0x210);
        CHECK(guest.Read32(kEsBase + 0x210) == 0x5A5A5A5A);
        CHECK(guest.Read32(kEsBase + 0x214) == 0x5A5A5A5A);
        CHECK(guest.Read32(kEsBase + 0x218) == kEsBase + 0x218);
        CHECK(guest.Read32(kOut + 8) == kDsBase + 0x300);
        CHECK(guest.Read32(kOut + 12) == kSsBase + 0x304);
        CHECK(guest.Read32(kOut + 16) == 0x110);
        CHECK(guest.Read32(kOut + 20) == 1);
        CHECK(guest.Read32(kOut + 24) == 0x404);
        CHECK(guest.Read32(kOut + 28) == 11);
        CHECK(guest.Read32(kEsBase + 0x60C) == kDsBase + 0x50C);
        CHECK(guest.Read32(kEsBase + 0x608) == kDsBase + 0x508);
        CHECK(guest.Read32(kEsBase + 0x604) == kEsBase + 0x604);
      });
}

TEST_CASE("accesses past a limit raise #GP(0), through SS #SS(0), and change nothing") {
  RunEverySetting(
      [&](x86::Assembler& a, FaultList& faults) {
        Load(a, x86::ds, kDs);
        Load(a, x86::es, kEs);
        Load(a, x86::ss, kLowStack);
        testing::EmitEnableSse(a);
        a.mov(x86::ebx, 0xFFFC);
        a.mov(x86::ecx, 0x11111111);
        a.mov(x86::eax, x86::dword_ptr(x86::ebx));  // the last dword: fine
        a.mov(Out(0), x86::eax);
        a.mov(x86::byte_ptr(x86::ebx, 3), x86::cl);  // the last byte: fine
        auto gp = [&](const std::function<void()>& emit) {
          faults.Expect(a, FaultList::kGp, emit);
        };
        auto ss = [&](const std::function<void()>& emit) {
          faults.Expect(a, FaultList::kSs, emit);
        };
        gp([&] { a.mov(x86::eax, x86::dword_ptr(x86::ebx, 1)); });
        gp([&] { a.add(x86::dword_ptr(x86::ebx, 2), x86::ecx); });
        gp([&] { a.mov(x86::byte_ptr(x86::ebx, 4), x86::cl); });
        gp([&] { a.mov(x86::eax, x86::dword_ptr(x86::ebx, -0x10000)); });  // wraps to 0xFFFF..
        gp([&] { a.embed("\xA3\xFE\xFF\x00\x00", 5); });                   // mov [0xFFFE], eax
        gp([&] { a.mov(x86::eax, With(x86::dword_ptr(x86::ebx, 4), x86::es)); });
        gp([&] { a.push(x86::dword_ptr(x86::ebx, 2)); });
        a.push(x86::ecx);
        gp([&] { a.pop(x86::dword_ptr(x86::ebx, 2)); });  // ESP stays
        a.pop(x86::ecx);
        gp([&] { a.movdqu(x86::xmm0, x86::ptr(x86::ebx, -8)); });
        gp([&] { a.fld(x86::qword_ptr(x86::ebx)); });
        ss([&] { a.mov(x86::eax, With(x86::dword_ptr_abs(0x380FFE), x86::ss)); });
        a.mov(x86::ebp, 0x381000);
        ss([&] { a.mov(x86::eax, x86::dword_ptr(x86::ebp)); });
        ss([&] { a.mov(x86::eax, x86::dword_ptr(x86::esp, 0x10000)); });
        a.mov(Out(1), x86::esp);
      },
      [&](SegmentGuest& guest) {
        CHECK(guest.Read32(kOut) == kDsBase + 0xFFFC);
        CHECK(guest.Read32(kDsBase + 0xFFFC) == 0x1120FFFC);
        CHECK(guest.Read32(kOut + 4) == testing::kStackTop);
      });
}

TEST_CASE("expand-down segments allow the offsets above the limit, up to 4 GiB or 64 KiB") {
  RunEverySetting(
      [&](x86::Assembler& a, FaultList& faults) {
        Load(a, x86::ds, kDown);
        a.mov(x86::eax, x86::dword_ptr_abs(0x1000));
        a.mov(Out(0), x86::eax);
        // The top of a B=1 expand-down segment wraps to below its base.
        a.mov(x86::eax, x86::dword_ptr_abs(0xFFFFFFFC));
        a.mov(Out(1), x86::eax);
        a.mov(x86::ebx, 0xFFE);
        faults.Expect(a, FaultList::kGp, [&] { a.mov(x86::eax, x86::dword_ptr(x86::ebx)); });
        faults.Expect(a, FaultList::kGp, [&] { a.mov(x86::eax, x86::dword_ptr_abs(0)); });
        faults.Expect(a, FaultList::kGp, [&] { a.mov(x86::eax, x86::dword_ptr_abs(0xFFFFFFFE)); });
        Load(a, x86::ds, kDown16);
        a.mov(x86::ax, x86::word_ptr_abs(0xFFFE));
        a.mov(Out(2), x86::eax);
        a.mov(x86::eax, x86::dword_ptr_abs(0x8000));
        a.mov(Out(3), x86::eax);
        faults.Expect(a, FaultList::kGp, [&] { a.mov(x86::eax, x86::dword_ptr_abs(0xFFFE)); });
        faults.Expect(a, FaultList::kGp, [&] { a.mov(x86::eax, x86::dword_ptr_abs(0x10000)); });
        faults.Expect(a, FaultList::kGp, [&] { a.mov(x86::eax, x86::dword_ptr_abs(0xFFC)); });
      },
      [&](SegmentGuest& guest) {
        CHECK(guest.Read32(kOut) == kDsBase + 0x1000);
        CHECK(guest.Read32(kOut + 4) == 0xCAFEF00D);
        CHECK((guest.Read32(kOut + 8) & 0xFFFF) == ((kDsBase + 0xFFFC) >> 16));
        CHECK(guest.Read32(kOut + 12) == kDsBase + 0x8000);
      },
      [&](SegmentGuest& guest) { guest.Write32(kDsBase - 4, 0xCAFEF00D); });
}

TEST_CASE("null DS and ES, read-only and code segments fault on the accesses they forbid") {
  RunEverySetting(
      [&](x86::Assembler& a, FaultList& faults) {
        a.xor_(x86::eax, x86::eax);
        a.mov(x86::ds, x86::ax);  // loading null is fine, using it is not
        a.mov(x86::es, x86::ax);
        a.mov(x86::esi, 0x100);
        a.mov(x86::edi, 0x100);
        faults.Expect(a, FaultList::kGp, [&] { a.mov(x86::eax, x86::dword_ptr_abs(0x1000)); });
        faults.Expect(a, FaultList::kGp, [&] { a.embed("\xAD", 1); });  // lodsd
        faults.Expect(a, FaultList::kGp, [&] { a.embed("\xAB", 1); });  // stosd
        faults.Expect(a, FaultList::kGp, [&] { a.xlatb(); });
        Load(a, x86::ds, kReadOnly);
        a.mov(x86::eax, x86::dword_ptr_abs(0x100));
        a.mov(Out(0), x86::eax);
        faults.Expect(a, FaultList::kGp, [&] { a.mov(x86::dword_ptr_abs(0x100), x86::eax); });
        faults.Expect(a, FaultList::kGp, [&] { a.inc(x86::dword_ptr_abs(0x100)); });
        Load(a, x86::ds, kCodeData);
        a.mov(x86::eax, x86::dword_ptr_abs(0x104));
        a.mov(Out(1), x86::eax);
        faults.Expect(a, FaultList::kGp, [&] { a.mov(x86::dword_ptr_abs(0x104), x86::eax); });
        a.mov(Out(2), x86::esi);
        a.mov(Out(3), x86::edi);
      },
      [&](SegmentGuest& guest) {
        CHECK(guest.Read32(kOut) == kDsBase + 0x100);
        CHECK(guest.Read32(kDsBase + 0x100) == kDsBase + 0x100);
        CHECK(guest.Read32(kOut + 4) == kDsBase + 0x104);
        CHECK(guest.Read32(kOut + 8) == 0x100);
        CHECK(guest.Read32(kOut + 12) == 0x100);
      });
}

TEST_CASE("string instructions that leave their segment fault at the element that does") {
  RunEverySetting(
      [&](x86::Assembler& a, FaultList& faults) {
        Load(a, x86::ds, kDs);
        Load(a, x86::es, kEs);
        a.cld();
        // Four dwords from DS:0xFFF0 fit; the fifth does not.
        a.mov(x86::esi, 0xFFF0);
        a.mov(x86::edi, 0x100);
        a.mov(x86::ecx, 6);
        faults.Expect(a, FaultList::kGp, [&] { a.embed("\xF3\xA5", 2); });  // rep movsd
        a.mov(Out(0), x86::esi);
        a.mov(Out(1), x86::edi);
        a.mov(Out(2), x86::ecx);
        // repe cmpsb stops at a difference before it would leave DS:
        // DS:0xFFF3 and ES:0x203 hold 0x00, DS:0xFFF4 0xF4, ES:0x204 0x04.
        a.mov(x86::esi, 0xFFF3);
        a.mov(x86::edi, 0x203);
        a.mov(x86::ecx, 0x100);
        a.embed("\xF3\xA6", 2);  // repe cmpsb
        a.pushfd();
        a.pop(x86::eax);
        a.mov(Out(3), x86::eax);
        a.mov(Out(4), x86::esi);
        a.mov(Out(5), x86::ecx);
        // Downwards from ES:8, stos leaves ES below offset 0 after three dwords.
        a.std();
        a.mov(x86::edi, 8);
        a.mov(x86::ecx, 5);
        a.mov(x86::eax, 0x77777777);
        faults.Expect(a, FaultList::kGp, [&] { a.embed("\xF3\xAB", 2); });  // rep stosd
        a.cld();
        a.mov(Out(6), x86::edi);
        a.mov(Out(7), x86::ecx);
      },
      [&](SegmentGuest& guest) {
        for (std::uint32_t i = 0; i < 4; ++i) {
          CHECK(guest.Read32(kEsBase + 0x100 + 4 * i) == kDsBase + 0xFFF0 + 4 * i);
        }
        CHECK(guest.Read32(kEsBase + 0x110) == kEsBase + 0x110);
        CHECK(guest.Read32(kOut) == 0x10000);
        CHECK(guest.Read32(kOut + 4) == 0x110);
        CHECK(guest.Read32(kOut + 8) == 2);
        // Two elements done, the second unequal and above: ZF and CF clear.
        constexpr std::uint32_t kZf = 0x40, kCf = 0x01;
        CHECK((guest.Read32(kOut + 12) & (kZf | kCf)) == 0);
        CHECK(guest.Read32(kOut + 16) == 0xFFF5);
        CHECK(guest.Read32(kOut + 20) == 0xFE);
        CHECK(guest.Read32(kEsBase + 8) == 0x77777777);
        CHECK(guest.Read32(kEsBase + 4) == 0x77777777);
        CHECK(guest.Read32(kEsBase) == 0x77777777);
        CHECK(guest.Read32(kOut + 24) == 0xFFFFFFFC);
        CHECK(guest.Read32(kOut + 28) == 2);
      });
}

// Bug this guards against: a rep that would leave its segment only after
// billions of elements ran them all, element by element, in one callout
// that no stop request could interrupt.
TEST_CASE("a long rep the runtime runs element by element can be stopped") {
  // Every 4 MiB of linear memory maps to the first, so that nothing faults
  // before the rep leaves DS at 4 GiB.
  constexpr std::uint32_t kDirectory = 0x900000;
  std::uint32_t lods = 0;
  SegmentGuest guest([&](x86::Assembler& a) {
    testing::EmitEnablePaging(a, kDirectory);
    Load(a, x86::ds, kDown);
    a.cld();
    a.mov(x86::esi, 0x1000);
    a.mov(x86::ecx, 0xFFFFFFFF);
    lods = Here(a);
    a.embed("\xF3\xAC", 2);  // rep lodsb
    Finish(a);
  });
  const Registers r = testing::RunUntilBudget(guest.machine(), kDirectory);
  CHECK(r.eip == lods);
  CHECK(r.esi - 0x1000 == 0xFFFFFFFF - r.ecx);
}

// Bug this guards against: a unit translated with a flat DS ran again, from
// the cache, a chain or the indirect-branch table, after DS got a base.
TEST_CASE("code translated with flat segments runs again with a based DS as a new unit") {
  RunEverySetting(
      [&](x86::Assembler& a, FaultList&) {
        asmjit::Label function = a.newLabel(), over = a.newLabel();
        a.jmp(over);
        a.bind(function);
        a.mov(x86::eax, x86::dword_ptr_abs(0x100));
        a.ret();
        a.bind(over);
        a.lea(x86::ebx, x86::ptr(function));
        for (const std::uint16_t selector : {kData0, kDs, kData0, kDs}) {
          Load(a, x86::ds, selector);
          a.call(function);
          a.mov(x86::edx, x86::eax);
          a.call(x86::ebx);  // through the indirect-branch table
          a.add(x86::eax, x86::edx);
          a.push(x86::eax);
        }
        for (unsigned i = 0; i < 4; ++i) a.pop(Out(3 - i));
      },
      [&](SegmentGuest& guest) {
        CHECK(guest.Read32(kOut) == 0x02000000);
        CHECK(guest.Read32(kOut + 4) == 2 * (kDsBase + 0x100));
        CHECK(guest.Read32(kOut + 8) == 0x02000000);
        CHECK(guest.Read32(kOut + 12) == 2 * (kDsBase + 0x100));
      },
      [&](SegmentGuest& guest) { guest.Write32(0x100, 0x01000000); });
}

TEST_CASE("reloading a flat segment stays in translated code; leaving flat does not") {
  constexpr std::uint32_t kLoops = 10000;
  SegmentGuest guest([&](x86::Assembler& a) {
    asmjit::Label loop = a.newLabel();
    a.mov(x86::ecx, kLoops);
    a.bind(loop);
    a.mov(x86::eax, kData0);
    a.mov(x86::ds, x86::ax);
    a.mov(x86::es, x86::ax);
    a.mov(x86::fs, x86::ax);
    a.push(x86::eax);
    a.pop(x86::gs);
    a.dec(x86::ecx);
    a.jnz(loop);
    // A flat DS made based in the middle of a unit: what follows runs with
    // the base.
    Load(a, x86::fs, kData0);
    Load(a, x86::ds, kDs);
    a.mov(x86::eax, x86::dword_ptr_abs(0x100));
    a.mov(Out(0), x86::eax);
    Finish(a);
  });
  guest.Run();
  CHECK(guest.Read32(kOut) == kDsBase + 0x100);
  const Stats stats = guest.machine().GetStats();
  CHECK(stats.callouts[static_cast<std::size_t>(CalloutKind::kSegmentLoad)] >= 4 * kLoops);
  CHECK(stats.dispatcher_entries < 100);
}

// Bug this guards against: every segment load that changed the unit mode
// emptied the indirect-branch table, as a kernel's entry and exit do when
// user code runs with other segments than kernel code.
TEST_CASE("segment loads that change the unit mode keep the indirect-branch table") {
  constexpr std::uint32_t kLoops = 2000;
  SegmentGuest guest([&](x86::Assembler& a) {
    asmjit::Label loop = a.newLabel(), based = a.newLabel(), flat = a.newLabel();
    asmjit::Label over = a.newLabel();
    a.jmp(over);
    a.bind(based);
    a.ret();
    a.bind(flat);
    a.ret();
    a.bind(over);
    a.lea(x86::ebx, x86::ptr(based));
    a.lea(x86::edx, x86::ptr(flat));
    a.mov(x86::ecx, kLoops);
    a.bind(loop);
    Load(a, x86::ds, kDs);
    a.call(x86::ebx);
    Load(a, x86::ds, kData0);
    a.call(x86::edx);
    a.dec(x86::ecx);
    a.jnz(loop);
    Finish(a);
  });
  guest.Run();
  // Each load leaves translated code; the calls and returns stay in it.
  CHECK(guest.machine().GetStats().dispatcher_entries < 2 * kLoops + 100);
}

TEST_CASE("callouts check their memory operand against its segment's limit, and add its base") {
  RunEverySetting(
      [&](x86::Assembler& a, FaultList& faults) {
        Load(a, x86::ds, kDs);
        Load(a, x86::ss, kLowStack);
        auto fault = [&](std::uint32_t vector, const std::function<void()>& emit) {
          faults.Expect(a, vector, emit);
        };
        fault(FaultList::kGp, [&] { a.lgdt(x86::ptr_abs(0xFFFC)); });
        fault(FaultList::kGp, [&] { a.sgdt(x86::ptr_abs(0xFFFC)); });
        fault(FaultList::kGp, [&] { a.mov(x86::es, x86::word_ptr_abs(0xFFFF)); });
        fault(FaultList::kGp, [&] { a.mov(x86::word_ptr_abs(0xFFFF), x86::ds); });
        fault(FaultList::kGp, [&] { a.les(x86::eax, x86::ptr_abs(0xFFFC)); });
        fault(FaultList::kGp, [&] { a.bound(x86::eax, x86::ptr_abs(0xFFFC)); });
        fault(FaultList::kGp, [&] { a.smsw(x86::word_ptr_abs(0xFFFF)); });
        a.mov(x86::ebp, 0x380FFF);
        fault(FaultList::kSs, [&] { a.lar(x86::eax, x86::word_ptr(x86::ebp)); });
        a.sgdt(x86::ptr_abs(0x200));
        a.mov(x86::word_ptr_abs(0x300), kEs);
        a.mov(x86::es, x86::word_ptr_abs(0x300));
        a.mov(x86::eax, With(x86::dword_ptr_abs(0x10), x86::es));
        a.mov(Out(0), x86::eax);
      },
      [&](SegmentGuest& guest) {
        CHECK((guest.Read32(kDsBase + 0x200) & 0xFFFF) == sizeof(kGdtEntries) - 1);
        CHECK(guest.Read32(kDsBase + 0x202) == testing::kGdt);
        CHECK(guest.Read32(kOut) == kEsBase + 0x10);
      });
}

// ExpectSkip with its bookkeeping through FS, for code whose SS is based or
// about to fault; it pushes nothing.
std::uint32_t ExpectSkipFs(x86::Assembler& a, const std::function<void()>& emit_faulting) {
  asmjit::Label after = a.newLabel();
  a.mov(With(x86::dword_ptr_abs(testing::kAction), x86::fs), testing::kSkip);
  a.db(0x64);  // mov dword fs:[kResume], after
  a.db(0xC7);
  a.db(0x05);
  a.dd(testing::kResume);
  a.embedLabel(after, 4);
  const std::uint32_t at = Here(a);
  emit_faulting();
  a.bind(after);
  return at;
}

TEST_CASE("the stack through a based SS in ring 3: #SS(0) at its limit, with nothing changed") {
  std::vector<std::uint32_t> esp;
  std::uint32_t finish = 0;
  RunEverySetting(
      [&](x86::Assembler& a, FaultList& faults) {
        faults.cs = kCode3;
        esp.clear();
        asmjit::Label user = a.newLabel(), halt = a.newLabel(), function = a.newLabel();
        a.mov(x86::eax, kTssSelector);
        a.ltr(x86::ax);
        Load(a, x86::ds, kData3);
        Load(a, x86::fs, kData3);
        a.push(kStack3);
        a.push(0x8000);
        a.push(0x2);
        a.push(kCode3);
        a.lea(x86::eax, x86::ptr(user));
        a.push(x86::eax);
        a.iretd();
        a.bind(halt);
        finish = Here(a);
        testing::Halt(a);
        a.bind(function);
        a.ret();

        a.bind(user);
        a.push(0x12345678);  // SS:0x7FFC
        a.pop(x86::eax);
        a.mov(Out(0), x86::eax);
        auto at_esp = [&](std::uint32_t value, const std::function<void()>& emit) {
          a.mov(x86::esp, value);
          esp.push_back(value);
          faults.Add(FaultList::kSs, ExpectSkipFs(a, emit));
        };
        a.mov(x86::eax, 0x55555555);
        at_esp(2, [&] { a.push(x86::eax); });
        at_esp(0x10, [&] { a.pushad(); });
        at_esp(0xFFFE, [&] { a.pop(x86::eax); });
        at_esp(0xFFFE, [&] { a.popfd(); });
        at_esp(0xFFFE, [&] { a.ret(); });
        at_esp(2, [&] { a.call(function); });
        at_esp(0xFFF8, [&] { a.iretd(); });
        at_esp(0x20, [&] { a.enter(asmjit::imm(0x100), asmjit::imm(0)); });
        at_esp(0xFFFE, [&] { a.pop(x86::ds); });
        at_esp(4, [&] { EmitFarCall(a); });
        a.mov(x86::ebp, 0xFFFE);
        at_esp(0x100, [&] { a.leave(); });
        at_esp(0x100, [&] { a.mov(x86::eax, x86::dword_ptr(x86::ebp)); });
        a.mov(x86::esp, 0x8000);
        a.int_(0x82);
      },
      [&](SegmentGuest& guest) {
        const std::vector<Fault> logged = guest.Faults();
        for (std::size_t i = 0; i < logged.size(); ++i) {
          CAPTURE(i);
          CHECK(logged[i].esp == esp[i]);
          CHECK(logged[i].ss == kStack3);
        }
        CHECK(guest.Read32(kOut) == 0x12345678);
        CHECK(guest.Read32(kSsBase + 0x7FFC) == 0x12345678);
        // Nothing was pushed below offset 0x10 (pushad) or at the bottom.
        for (std::uint32_t offset = 0; offset < 0x10; offset += 4) {
          CHECK(guest.Read32(kSsBase + offset) == kSsBase + offset);
        }
      },
      [&](SegmentGuest& guest) { guest.SetGate(0x82, testing::Gate(finish, kCode0, 0xEE)); });
}

TEST_CASE("the runtime's own stack accesses go through SS's base") {
  std::uint32_t handler = 0, after_int = 0, after_far = 0;
  RunEverySetting(
      [&](x86::Assembler& a, FaultList&) {
        asmjit::Label start = a.newLabel(), target = a.newLabel();
        a.jmp(start);
        // int 0x40: the frame's EIP and the handler's ESP to Out(0), Out(1).
        handler = Here(a);
        a.mov(x86::eax, x86::dword_ptr(x86::esp));
        a.mov(Out(0), x86::eax);
        a.mov(Out(1), x86::esp);
        a.iretd();
        a.bind(target);
        a.mov(x86::eax, x86::dword_ptr(x86::esp));
        a.mov(Out(2), x86::eax);
        a.retf();
        a.bind(start);
        Load(a, x86::ss, kSs);
        a.mov(x86::esp, 0x8000);
        a.int_(0x40);
        after_int = Here(a);
        a.push(0x8C3);  // CF, ZF, SF and OF set
        a.popfd();
        a.mov(x86::eax, 0);
        a.pushfd();
        a.pop(x86::eax);
        a.mov(Out(3), x86::eax);
        a.push(kEs);
        a.pop(x86::es);
        a.mov(x86::eax, With(x86::dword_ptr_abs(0x10), x86::es));
        a.mov(Out(4), x86::eax);
        a.db(0x9A);  // call kCode0:target
        a.embedLabel(target, 4);
        a.dw(kCode0);
        after_far = Here(a);
        a.mov(x86::ebp, 0x7000);
        a.mov(x86::dword_ptr(x86::ebp, -4), 0xABCD);  // the enclosing frame's pointer
        a.enter(asmjit::imm(8), asmjit::imm(2));      // copies it to SS:0x7FF8
        a.mov(Out(5), x86::ebp);
        a.mov(Out(6), x86::esp);
      },
      [&](SegmentGuest& guest) {
        CHECK(guest.Read32(kOut) == after_int);
        CHECK(guest.Read32(kOut + 4) == 0x8000 - 12);
        CHECK((guest.Read32(kOut + 12) & 0x8C1) == 0x8C1);
        CHECK(guest.Read32(kOut + 16) == kEsBase + 0x10);
        CHECK(guest.Read32(kOut + 8) == after_far);
        CHECK(guest.Read32(kSsBase + 0x7FFC) == 0x7000);  // EBP pushed by enter
        CHECK(guest.Read32(kSsBase + 0x7FF8) == 0xABCD);
        CHECK(guest.Read32(kSsBase + 0x7FF4) == 0x7FFC);  // the new frame pointer
        CHECK(guest.Read32(kOut + 20) == 0x7FFC);
        CHECK(guest.Read32(kOut + 24) == 0x7FF4 - 8);
      },
      [&](SegmentGuest& guest) { guest.SetGate(0x40, testing::Gate(handler, kCode0, 0x8E)); });
}

TEST_CASE("segments libbt cannot run yet stop the run: 16-bit stacks, 16-bit code") {
  for (const auto& [selector, far] : {std::pair{kStack16, false}, std::pair{kCode16, true}}) {
    SegmentGuest guest([&](x86::Assembler& a) {
      a.mov(x86::eax, selector);
      if (far) {
        testing::EmitFar(a, false, selector);
      } else {
        a.mov(x86::ss, x86::ax);
      }
      testing::Halt(a);
    });
    const StopInfo stop = guest.machine().Run({.time_budget = std::chrono::seconds(30)});
    CHECK(stop.reason == StopReason::kUnsupportedInstruction);
    CHECK(stop.message.find(far ? "CS" : "SS") != std::string::npos);
  }
}

}  // namespace
}  // namespace bt
