// ins and outs (SDM Vol. 2A INS, Vol. 2B OUTS, REP) against a device that
// records what it sees: every element size, with and without rep, both
// directions of DF, runs across pages, the segment of outs overridden and
// that of ins not; the I/O permission bitmap at CPL 3; and faults part-way
// (#PF, a limit, a null or read-only segment) that leave ESI or EDI and ECX
// at the element that raised them with the earlier elements done and, for
// ins, that element's port not read. A rep longer than one callout runs on
// and can be stopped.
#include "tests/support/system_guest.h"

#include <bt/machine.h>
#include <bt/port_device.h>

#include <doctest/doctest.h>

#include <algorithm>
#include <functional>
#include <string>
#include <vector>

namespace bt {
namespace {

namespace x86 = asmjit::x86;
using testing::CheckFault;
using testing::Descriptor;
using testing::ExpectSkip;
using testing::Here;
using testing::kByteGranular32;
using testing::kOut;
using testing::kSettings;

constexpr std::uint16_t kPort = 0x500;
constexpr std::uint32_t kData = 0x200000;    // what outs sends: byte i is i + 0x40
constexpr std::uint32_t kBuffer = 0x240000;  // where ins stores
constexpr std::uint32_t kBase = 0x2C0000;    // of the limited segments
constexpr std::uint32_t kTss = 0x302000, kStack3 = 0x360000;
// The I/O permission bitmap covers ports 0-0x5FF, then the 0xFF byte the
// processor may read past its end (SDM Vol. 1, 19.5.2); it allows kPort only.
constexpr std::uint32_t kIoMapOffset = 0x68, kTssLimit = kIoMapOffset + 0xC0;
constexpr std::uint8_t kFinishVector = 0x82;

enum Selector : std::uint16_t {
  kCode0 = 0x08,
  kData0 = 0x10,
  kTssSelector = 0x18,
  kCode3 = 0x23,
  kData3 = 0x2B,
  kLimited = 0x30,   // base kBase, limit 0xFFF
  kReadOnly = 0x38,  // base kBase, limit 0xFFF, read-only
  kDown = 0x40,      // base kBase, expand-down above 0xFFF
  kLowStack = 0x48,  // base 0, limit 0x380FFF: the harness's stack and log fit
  kBased = 0x50,     // base kBase, limit 4 GiB
};

constexpr std::uint64_t kGdtEntries[] = {
    0,
    testing::kFlatCode0,
    testing::kFlatData0,
    Descriptor(kTss, kTssLimit, 0x89, 0),
    testing::kFlatCode3,
    testing::kFlatData3,
    Descriptor(kBase, 0xFFF, 0x93, kByteGranular32),
    Descriptor(kBase, 0xFFF, 0x91, kByteGranular32),
    Descriptor(kBase, 0xFFF, 0x97, kByteGranular32),
    Descriptor(0, 0x380, 0x93, testing::kBig),
    Descriptor(kBase, 0xFFFFF, 0x93, testing::kBig),
};

// A device at kPort..kPort+3 that logs every access; its n-th read (from 1)
// returns 0xC0DE0000 + n, truncated to the access's size.
class RecordingPort final : public PortDevice {
 public:
  struct Access {
    bool write;
    std::uint16_t offset;
    unsigned size;
    std::uint32_t value;
    bool operator==(const Access&) const = default;
  };

  std::uint32_t PortRead(std::uint16_t offset, unsigned size) override {
    const std::uint32_t value = 0xC0DE0000 + ++reads_;
    accesses.push_back({false, offset, size, value & Mask(size)});
    return value;
  }
  void PortWrite(std::uint16_t offset, unsigned size, std::uint32_t value) override {
    accesses.push_back({true, offset, size, value});
  }

  static std::uint32_t Mask(unsigned size) { return size == 4 ? ~0u : (1u << 8 * size) - 1; }

  std::vector<Access> accesses;

 private:
  std::uint32_t reads_ = 0;
};

void CheckAccesses(const std::vector<RecordingPort::Access>& seen,
                   const std::vector<RecordingPort::Access>& expected) {
  CHECK(seen.size() == expected.size());
  for (std::size_t i = 0; i < std::min(seen.size(), expected.size()); ++i) {
    if (seen[i] == expected[i]) continue;
    const RecordingPort::Access& s = seen[i];
    const RecordingPort::Access& e = expected[i];
    FAIL_CHECK("access " << i << ": " << (s.write ? "write" : "read") << " " << s.size << "@+"
                         << s.offset << " " << std::hex << s.value << ", expected "
                         << (e.write ? "write" : "read") << " " << e.size << "@+" << e.offset << " "
                         << e.value);
    return;
  }
}

// An outs of `size` bytes at kPort: what RecordingPort logs for the bytes of
// kData at `offset`.
RecordingPort::Access Sent(std::uint32_t offset, unsigned size) {
  std::uint32_t value = 0;
  for (unsigned i = 0; i < size; ++i) value |= ((offset + i + 0x40) & 0xFF) << 8 * i;
  return {true, 0, size, value};
}

// The n-th read of RecordingPort, of `size` bytes.
RecordingPort::Access Received(std::uint32_t n, unsigned size) {
  return {false, 0, size, (0xC0DE0000 + n) & RecordingPort::Mask(size)};
}

// A guest with the GDT above, a TSS whose I/O map allows kPort alone, a
// DPL-3 gate kFinishVector that ends the run, the pattern at kData, and a
// RecordingPort at kPort.
class PortGuest : public testing::SystemGuest {
 public:
  explicit PortGuest(const std::function<void(x86::Assembler&)>& body,
                     TranslatorOptions translator = {})
      : PortGuest(body, translator, Finish{}) {}

  RecordingPort port;

 private:
  struct Finish {
    std::uint32_t at = 0;
  };

  PortGuest(const std::function<void(x86::Assembler&)>& body, TranslatorOptions translator,
            Finish finish)
      : SystemGuest(
            kGdtEntries,
            [&](x86::Assembler& a) {
              asmjit::Label start = a.newLabel();
              a.jmp(start);
              finish.at = Here(a);
              testing::Halt(a);
              a.bind(start);
              body(a);
            },
            translator) {
    SetGate(kFinishVector, testing::Gate(finish.at, kCode0, 0xEE));
    REQUIRE(machine().AddPortDevice(kPort, 4, port));
    std::vector<std::uint8_t> pattern(0x20000);
    for (std::uint32_t i = 0; i < pattern.size(); ++i) pattern[i] = (i + 0x40) & 0xFF;
    REQUIRE(machine().WritePhysical(kData, pattern.data(), pattern.size()));
    Write32(kTss + 4, testing::kStackTop);
    Write32(kTss + 8, kData0);
    Write32(kTss + 0x64, kIoMapOffset << 16);
    std::vector<std::uint8_t> map(kTssLimit + 1 - kIoMapOffset, 0xFF);
    map[kPort / 8] &= ~1;
    REQUIRE(machine().WritePhysical(kTss + kIoMapOffset, map.data(), map.size()));
  }
};

// The string instruction `bytes` encodes (prefixes, then the opcode).
void Emit(x86::Assembler& a, const std::string& bytes) { a.embed(bytes.data(), bytes.size()); }

void Load(x86::Assembler& a, const x86::SReg& segment, std::uint16_t selector) {
  a.mov(x86::eax, selector);
  a.mov(segment, x86::ax);
}

// Stores ESI, EDI and ECX to kOut + 12 * `slot` through SS.
void SaveRegisters(x86::Assembler& a, unsigned slot) {
  a.mov(testing::Flat(kOut + 12 * slot), x86::esi);
  a.mov(testing::Flat(kOut + 12 * slot + 4), x86::edi);
  a.mov(testing::Flat(kOut + 12 * slot + 8), x86::ecx);
}

struct Saved {
  std::uint32_t esi, edi, ecx;
};

Saved SavedRegisters(testing::SystemGuest& guest, unsigned slot) {
  return {guest.Read32(kOut + 12 * slot), guest.Read32(kOut + 12 * slot + 4),
          guest.Read32(kOut + 12 * slot + 8)};
}

void CheckSaved(testing::SystemGuest& guest, unsigned slot, Saved expected) {
  CAPTURE(slot);
  const Saved saved = SavedRegisters(guest, slot);
  CHECK(saved.esi == expected.esi);
  CHECK(saved.edi == expected.edi);
  CHECK(saved.ecx == expected.ecx);
}

// Runs `test` under each translator setting.
void EverySetting(const std::function<void(const TranslatorOptions&)>& test) {
  for (const TranslatorOptions& settings : kSettings) {
    CAPTURE(settings.max_unit_instructions);
    CAPTURE(settings.chaining);
    test(settings);
  }
}

TEST_CASE("outs sends DS:[ESI], or an override's, to port DX element by element in DF's order") {
  EverySetting([&](const TranslatorOptions& settings) {
    PortGuest guest(
        [&](x86::Assembler& a) {
          a.mov(x86::edx, kPort);
          a.mov(x86::edi, 0x1234);
          a.cld();
          a.mov(x86::esi, kData);
          a.mov(x86::ecx, 5);
          Emit(a, "\xF3\x6E");  // rep outsb
          SaveRegisters(a, 0);
          Emit(a, "\x66\x6F");  // outsw
          SaveRegisters(a, 1);
          a.mov(x86::ecx, 3);
          Load(a, x86::fs, kBased);
          a.mov(x86::esi, kData - kBase + 0x10);
          Emit(a, "\x64\xF3\x6F");  // rep outsd fs:[esi]
          SaveRegisters(a, 2);
          a.std();
          a.mov(x86::esi, kData + 0x23);
          a.mov(x86::ecx, 4);
          Emit(a, "\xF3\x6E");  // rep outsb, down
          SaveRegisters(a, 3);
          a.mov(x86::esi, kData + 0x1002);
          a.mov(x86::ecx, 3);
          Emit(a, "\x66\xF3\x6F");  // rep outsw, down across a page
          SaveRegisters(a, 4);
          a.cld();
          a.mov(x86::esi, kData + 0x1FFD);
          a.mov(x86::ecx, 3);
          Emit(a, "\x66\xF3\x6F");  // rep outsw, the second one in two pages
          SaveRegisters(a, 5);
          a.xor_(x86::ecx, x86::ecx);
          Emit(a, "\xF3\x6F");  // rep outsd with ECX 0: nothing
          SaveRegisters(a, 6);
          a.mov(x86::esi, kData + 0x800);
          a.mov(x86::ecx, 0x1200);
          Emit(a, "\xF3\x6F");  // rep outsd over four pages
          SaveRegisters(a, 7);
          Load(a, x86::fs, kData0);
          testing::Halt(a);
        },
        settings);
    guest.Run();
    std::vector<RecordingPort::Access> expected;
    for (std::uint32_t i = 0; i < 5; ++i) expected.push_back(Sent(i, 1));
    expected.push_back(Sent(5, 2));
    for (std::uint32_t i = 0; i < 3; ++i) expected.push_back(Sent(0x10 + 4 * i, 4));
    for (std::uint32_t i = 0; i < 4; ++i) expected.push_back(Sent(0x23 - i, 1));
    for (std::uint32_t i = 0; i < 3; ++i) expected.push_back(Sent(0x1002 - 2 * i, 2));
    for (std::uint32_t i = 0; i < 3; ++i) expected.push_back(Sent(0x1FFD + 2 * i, 2));
    for (std::uint32_t i = 0; i < 0x1200; ++i) expected.push_back(Sent(0x800 + 4 * i, 4));
    CheckAccesses(guest.port.accesses, expected);
    CheckSaved(guest, 0, {kData + 5, 0x1234, 0});
    CheckSaved(guest, 1, {kData + 7, 0x1234, 0});
    CheckSaved(guest, 2, {kData - kBase + 0x1C, 0x1234, 0});
    CheckSaved(guest, 3, {kData + 0x1F, 0x1234, 0});
    CheckSaved(guest, 4, {kData + 0xFFC, 0x1234, 0});
    CheckSaved(guest, 5, {kData + 0x2003, 0x1234, 0});
    CheckSaved(guest, 6, {kData + 0x2003, 0x1234, 0});
    CheckSaved(guest, 7, {kData + 0x800 + 0x4800, 0x1234, 0});
  });
}

TEST_CASE("ins stores port DX's data at ES:[EDI], whatever the override, in DF's order") {
  EverySetting([&](const TranslatorOptions& settings) {
    PortGuest guest(
        [&](x86::Assembler& a) {
          a.mov(x86::edx, kPort);
          a.mov(x86::esi, 0x1234);
          a.cld();
          a.mov(x86::edi, kBuffer);
          a.mov(x86::ecx, 3);
          Emit(a, "\xF3\x6C");  // rep insb: reads 1-3
          SaveRegisters(a, 0);
          Emit(a, "\x66\x6D");  // insw: read 4
          SaveRegisters(a, 1);
          Load(a, x86::fs, kBased);
          a.mov(x86::ecx, 2);
          Emit(a, "\x64\xF3\x6D");  // rep insd, fs: ignored: reads 5, 6
          SaveRegisters(a, 2);
          Load(a, x86::fs, kData0);
          a.std();
          a.mov(x86::edi, kBuffer + 0x1002);
          a.mov(x86::ecx, 3);
          Emit(a, "\x66\xF3\x6D");  // rep insw down across a page: reads 7-9
          SaveRegisters(a, 3);
          a.cld();
          a.mov(x86::edi, kBuffer + 0x1FFE);
          a.mov(x86::ecx, 1);
          Emit(a, "\xF3\x6D");  // rep insd into two pages: read 10
          SaveRegisters(a, 4);
          testing::Halt(a);
        },
        settings);
    guest.Run();
    std::vector<RecordingPort::Access> expected;
    for (std::uint32_t n = 1; n <= 3; ++n) expected.push_back(Received(n, 1));
    expected.push_back(Received(4, 2));
    for (std::uint32_t n = 5; n <= 6; ++n) expected.push_back(Received(n, 4));
    for (std::uint32_t n = 7; n <= 9; ++n) expected.push_back(Received(n, 2));
    expected.push_back(Received(10, 4));
    CheckAccesses(guest.port.accesses, expected);
    CHECK(guest.Read32(kBuffer) == 0x04030201);
    CHECK(guest.Read32(kBuffer + 4) == 0xDE000500);  // the word of read 4, then read 5
    CHECK(guest.Read32(kBuffer + 8) == 0xDE0006C0);
    CHECK(guest.Read32(kBuffer + 12) == 0xC0);
    CHECK(guest.Read32(kBase + kBuffer + 5) == 0);  // not through FS
    CHECK(guest.Read32(kBuffer + 0x1000) == 0x00070008);
    CHECK(guest.Read32(kBuffer + 0xFFC) == 0x00090000);
    CHECK(guest.Read32(kBuffer + 0x1FFE) == 0xC0DE000A);
    CHECK(guest.Read32(kBuffer + 0x2000) == 0x0000C0DE);
    CheckSaved(guest, 0, {0x1234, kBuffer + 3, 0});
    CheckSaved(guest, 1, {0x1234, kBuffer + 5, 0});
    CheckSaved(guest, 2, {0x1234, kBuffer + 13, 0});
    CheckSaved(guest, 3, {0x1234, kBuffer + 0xFFC, 0});
    CheckSaved(guest, 4, {0x1234, kBuffer + 0x2002, 0});
  });
}

// Enters ring 3 with SS:ESP kData3:kStack3 and EFLAGS `eflags`, runs what
// `user` emits there, and ends the run through kFinishVector.
void InRing3(x86::Assembler& a, std::uint32_t eflags, const std::function<void()>& user) {
  asmjit::Label entry = a.newLabel();
  a.mov(x86::eax, kTssSelector);
  a.ltr(x86::ax);
  Load(a, x86::ds, kData3);
  Load(a, x86::es, kData3);
  a.push(kData3);
  a.push(kStack3);
  a.push(eflags);
  a.push(kCode3);
  a.lea(x86::eax, x86::ptr(entry));
  a.push(x86::eax);
  a.iretd();
  a.bind(entry);
  user();
  a.int_(kFinishVector);
}

TEST_CASE("ins and outs at CPL > IOPL need every byte of the port in the I/O bitmap") {
  std::vector<std::uint32_t> denied;
  PortGuest guest([&](x86::Assembler& a) {
    InRing3(a, 0x2, [&] {
      auto deny = [&](const std::string& bytes) {
        denied.push_back(ExpectSkip(a, [&] { Emit(a, bytes); }));
      };
      a.cld();
      a.mov(x86::edx, kPort);
      a.mov(x86::esi, kData);
      a.mov(x86::edi, kBuffer);
      a.mov(x86::ecx, 2);
      Emit(a, "\xF3\x6E");  // rep outsb: allowed
      Emit(a, "\x6C");      // insb: allowed
      a.mov(x86::ecx, 2);
      deny("\x66\xF3\x6F");  // rep outsw: port kPort + 1 too
      deny("\xF3\x6D");      // rep insd
      a.xor_(x86::ecx, x86::ecx);
      deny("\xF3\x6D");  // even with ECX 0
      a.mov(x86::edx, kPort + 1);
      deny("\x6E");
      SaveRegisters(a, 0);
    });
  });
  guest.Run();
  const std::vector<testing::LoggedFault> faults = guest.Faults();
  REQUIRE(faults.size() == denied.size());
  for (std::size_t i = 0; i < faults.size(); ++i) CheckFault(faults[i], 13, 0, denied[i], kCode3);
  const std::vector<RecordingPort::Access> expected = {Sent(0, 1), Sent(1, 1), Received(1, 1)};
  CheckAccesses(guest.port.accesses, expected);
  CheckSaved(guest, 0, {kData + 2, kBuffer + 1, 0});
}

TEST_CASE("ins and outs at CPL 3 with IOPL 3 reach every port") {
  PortGuest guest([&](x86::Assembler& a) {
    InRing3(a, 0x3002, [&] {
      a.cld();
      a.mov(x86::edx, kPort + 1);
      a.mov(x86::esi, kData);
      a.mov(x86::edi, kBuffer);
      a.mov(x86::ecx, 2);
      Emit(a, "\xF3\x6F");  // rep outsd
      Emit(a, "\x66\x6D");  // insw
    });
  });
  guest.Run();
  CHECK(guest.Faults().empty());
  const std::vector<RecordingPort::Access> expected = {
      {true, 1, 4, 0x43424140}, {true, 1, 4, 0x47464544}, {false, 1, 2, 1}};
  CheckAccesses(guest.port.accesses, expected);
}

TEST_CASE("a #PF part-way leaves the registers at the element that faulted, its port untouched") {
  constexpr std::uint32_t kDirectory = 0x900000, kTable = 0x901000;
  struct Expected {
    std::uint32_t error_code, eip;
  };
  EverySetting([&](const TranslatorOptions& settings) {
    std::vector<Expected> expected;
    PortGuest guest(
        [&](x86::Assembler& a) {
          testing::EmitEnablePaging(a, kDirectory);
          a.mov(x86::edx, kPort);
          unsigned slot = 0;
          // Runs `bytes` expecting #PF(`error_code`), then saves the
          // registers and CR2 (cleared before).
          auto fault = [&](std::uint32_t error_code, const std::string& bytes) {
            a.xor_(x86::eax, x86::eax);
            a.mov(x86::cr2, x86::eax);
            expected.push_back({error_code, ExpectSkip(a, [&] { Emit(a, bytes); })});
            SaveRegisters(a, slot);
            a.mov(x86::eax, x86::cr2);
            a.mov(testing::Flat(kOut + 0x100 + 4 * slot++), x86::eax);
          };
          a.cld();
          a.mov(x86::edi, 0x400FF0);
          a.mov(x86::ecx, 0x20);
          fault(0x2, "\xF3\x6C");  // rep insb: 16 bytes in, then the absent page
          a.mov(x86::esi, 0x400FF8);
          a.mov(x86::ecx, 4);
          fault(0x0, "\xF3\x6F");  // rep outsd: 2 dwords out
          a.mov(x86::esi, 0x400FFE);
          a.mov(x86::ecx, 1);
          fault(0x0, "\xF3\x6F");  // a dword whose second half is absent
          a.std();
          a.mov(x86::edi, 0x402002);
          a.mov(x86::ecx, 5);
          fault(0x2, "\x66\xF3\x6D");  // rep insw down: 2 words in
          a.cld();
          testing::Halt(a);
        },
        settings);
    // [0, 4 MiB) identity in a large page; 0x400000 and 0x402000 present,
    // 0x401000 not.
    const std::uint32_t directory[2] = {0x87, kTable | 0x7};
    const std::uint32_t table[3] = {0x400000 | 0x7, 0, 0x402000 | 0x7};
    REQUIRE(guest.machine().WritePhysical(kDirectory, directory, sizeof(directory)));
    REQUIRE(guest.machine().WritePhysical(kTable, table, sizeof(table)));
    guest.Run();
    const std::vector<testing::LoggedFault> faults = guest.Faults();
    REQUIRE(faults.size() == expected.size());
    for (std::size_t i = 0; i < faults.size(); ++i) {
      CAPTURE(i);
      CheckFault(faults[i], 14, expected[i].error_code, expected[i].eip);
    }
    std::vector<RecordingPort::Access> accesses;
    for (std::uint32_t n = 1; n <= 16; ++n) accesses.push_back(Received(n, 1));
    accesses.push_back({true, 0, 4, 0x0C0B0A09});  // what the insb stored
    accesses.push_back({true, 0, 4, 0x100F0E0D});
    for (std::uint32_t n = 17; n <= 18; ++n) accesses.push_back(Received(n, 2));
    CheckAccesses(guest.port.accesses, accesses);
    CHECK(guest.Read32(0x400FF0) == 0x04030201);
    CHECK(guest.Read32(0x400FFC) == 0x100F0E0D);
    CHECK(guest.Read32(0x402000) == 0x00110012);
    CheckSaved(guest, 0, {0, 0x401000, 0x10});
    CheckSaved(guest, 1, {0x401000, 0x401000, 2});
    CheckSaved(guest, 2, {0x400FFE, 0x401000, 1});
    CheckSaved(guest, 3, {0x400FFE, 0x401FFE, 3});
    CHECK(guest.Read32(kOut + 0x100) == 0x401000);
    CHECK(guest.Read32(kOut + 0x104) == 0x401000);
    CHECK(guest.Read32(kOut + 0x108) == 0x401000);
    CHECK(guest.Read32(kOut + 0x10C) == 0x401FFE);
  });
}

TEST_CASE("ins and outs outside their segment: #GP(0), #SS(0) through SS, at that element") {
  struct Expected {
    std::uint32_t vector, eip;
  };
  EverySetting([&](const TranslatorOptions& settings) {
    std::vector<Expected> expected;
    PortGuest guest(
        [&](x86::Assembler& a) {
          auto fault = [&](std::uint32_t vector, const std::string& bytes) {
            expected.push_back({vector, ExpectSkip(a, [&] { Emit(a, bytes); })});
          };
          a.mov(x86::edx, kPort);
          a.cld();
          Load(a, x86::es, kLimited);
          a.mov(x86::edi, 0xFF8);
          a.mov(x86::ecx, 4);
          fault(13, "\xF3\x6D");  // rep insd: two dwords fit
          SaveRegisters(a, 0);
          Load(a, x86::ds, kLimited);
          a.mov(x86::esi, 0xFFE);
          a.mov(x86::ecx, 4);
          fault(13, "\xF3\x6E");  // rep outsb: two bytes fit
          SaveRegisters(a, 1);
          Load(a, x86::es, kReadOnly);
          a.xor_(x86::edi, x86::edi);
          a.mov(x86::ecx, 1);
          fault(13, "\xF3\x6C");  // no write to a read-only segment
          SaveRegisters(a, 2);
          Load(a, x86::ds, kReadOnly);
          a.mov(x86::esi, 0xFFF);
          Emit(a, "\x6E");  // but reads from one
          Load(a, x86::es, kDown);
          a.std();
          a.mov(x86::edi, 0x1002);
          a.mov(x86::ecx, 3);
          fault(13, "\x66\xF3\x6D");  // rep insw down: two words above the limit
          SaveRegisters(a, 3);
          a.cld();
          a.xor_(x86::eax, x86::eax);
          a.mov(x86::es, x86::ax);
          fault(13, "\x6C");  // through a null ES
          Load(a, x86::ss, kLowStack);
          a.mov(x86::esi, 0x380FFE);
          a.mov(x86::ecx, 4);
          fault(12, "\x36\xF3\x6E");  // rep outsb ss:[esi]: two bytes fit
          SaveRegisters(a, 4);
          Load(a, x86::ss, kData0);
          Load(a, x86::ds, kData0);
          Load(a, x86::es, kData0);
          testing::Halt(a);
        },
        settings);
    const std::uint8_t bytes[2] = {0xAA, 0xBB};
    REQUIRE(guest.machine().WritePhysical(0x380FFE, bytes, 2));
    guest.Run();
    const std::vector<testing::LoggedFault> faults = guest.Faults();
    REQUIRE(faults.size() == expected.size());
    for (std::size_t i = 0; i < faults.size(); ++i) {
      CAPTURE(i);
      CheckFault(faults[i], expected[i].vector, 0, expected[i].eip);
    }
    const std::vector<RecordingPort::Access> accesses = {
        Received(1, 4), Received(2, 4), {true, 0, 1, 0xDE}, {true, 0, 1, 0xC0}, {true, 0, 1, 0xC0},
        Received(3, 2), Received(4, 2), {true, 0, 1, 0xAA}, {true, 0, 1, 0xBB}};
    CheckAccesses(guest.port.accesses, accesses);
    CHECK(guest.Read32(kBase + 0xFF8) == 0xC0DE0001);
    CHECK(guest.Read32(kBase + 0xFFC) == 0xC0DE0002);
    CHECK(guest.Read32(kBase + 0x1000) == 0x00030004);
    CheckSaved(guest, 0, {0, 0x1000, 2});
    CheckSaved(guest, 1, {0x1000, 0x1000, 2});
    CheckSaved(guest, 2, {0x1000, 0, 1});
    CheckSaved(guest, 3, {0x1000, 0xFFE, 1});
    CheckSaved(guest, 4, {0x381000, 0xFFE, 2});
  });
}

TEST_CASE("a rep longer than one callout's budget runs on, and a huge one can be stopped") {
  constexpr std::uint32_t kElements = 100000;
  std::uint32_t outs = 0;
  {
    PortGuest guest([&](x86::Assembler& a) {
      a.cld();
      a.mov(x86::edx, kPort);
      a.mov(x86::esi, kData);
      a.mov(x86::ecx, kElements);
      Emit(a, "\xF3\x6E");  // rep outsb
      SaveRegisters(a, 0);
      a.mov(x86::edi, kBuffer);
      a.mov(x86::ecx, kElements);
      Emit(a, "\xF3\x6D");  // rep insd
      SaveRegisters(a, 1);
      testing::Halt(a);
    });
    guest.Run();
    REQUIRE(guest.port.accesses.size() == 2 * kElements);
    CHECK(guest.port.accesses[kElements - 1] == Sent(kElements - 1, 1));
    CHECK(guest.port.accesses[2 * kElements - 1] == Received(kElements, 4));
    CHECK(guest.Read32(kBuffer + 4 * (kElements - 1)) == 0xC0DE0000 + kElements);
    CheckSaved(guest, 0, {kData + kElements, 0, 0});
    CheckSaved(guest, 1, {kData + kElements, kBuffer + 4 * kElements, 0});
  }
  // Every 4 MiB of linear memory maps to the first: an outs of 4 Gi bytes
  // that never faults.
  constexpr std::uint32_t kDirectory = 0x900000, kUnclaimedPort = 0x600;
  PortGuest guest([&](x86::Assembler& a) {
    testing::EmitEnablePaging(a, kDirectory);
    a.cld();
    a.mov(x86::edx, kUnclaimedPort);
    a.xor_(x86::esi, x86::esi);
    a.mov(x86::ecx, 0xFFFFFFFF);
    outs = Here(a);
    Emit(a, "\xF3\x6E");  // rep outsb
    testing::Halt(a);
  });
  const Registers r = testing::RunUntilBudget(guest.machine(), kDirectory);
  CHECK(r.eip == outs);
  CHECK(r.esi == 0xFFFFFFFF - r.ecx);
  CHECK(r.esi > 16384);
}

}  // namespace
}  // namespace bt
