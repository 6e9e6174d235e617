#include "mmu/shadow_mmu.h"

#include <doctest/doctest.h>
#include <setjmp.h>
#include <signal.h>

namespace bt::mmu {
namespace {

// Probes whether a host address can be read, or written, by catching the
// fault.
sigjmp_buf g_probe;
void OnProbeFault(int) { siglongjmp(g_probe, 1); }

bool Accessible(volatile std::uint8_t* address, bool write) {
  struct sigaction action {
  }, old{};
  action.sa_handler = OnProbeFault;
  sigaction(SIGSEGV, &action, &old);
  volatile bool ok = false;  // must survive siglongjmp
  if (sigsetjmp(g_probe, 1) == 0) {
    const std::uint8_t value = *address;
    if (write) *address = value;
    ok = true;
  }
  sigaction(SIGSEGV, &old, nullptr);
  return ok;
}
bool Readable(volatile std::uint8_t* address) { return Accessible(address, false); }
bool Writable(volatile std::uint8_t* address) { return Accessible(address, true); }

using MissResult = ShadowMmu::Miss::Result;

struct MmuFixture {
  MmuFixture() {
    REQUIRE(memory);
    auto created = ShadowMmu::Create(*memory);
    REQUIRE(created);
    mmu = std::move(created.value());
  }
  std::uint8_t* At(std::uint32_t linear, View view = View::kSupervisor) {
    return mmu->window(view).base() + linear;
  }
  bt::Result<PhysicalMemory> memory = PhysicalMemory::Create(1u << 20);
  std::unique_ptr<ShadowMmu> mmu;
};

TEST_CASE("with paging off, window pages appear on a miss, a run at a time, backed by RAM") {
  MmuFixture f;
  CHECK_FALSE(Readable(f.At(0x21000)));
  CHECK(f.mmu->HandleMiss(0x21000 + 12, false, View::kSupervisor).result == MissResult::kMapped);
  CHECK(Writable(f.At(0x20000)));  // the whole 64 KiB run
  CHECK(Writable(f.At(0x2F000)));
  CHECK_FALSE(Readable(f.At(0x30000)));
  f.At(0x21010)[0] = 0x5A;
  CHECK(f.memory->HostPointer(0x21010)[0] == 0x5A);
  const ShadowMmu::Miss outside = f.mmu->HandleMiss(2u << 20, false, View::kSupervisor);
  CHECK(outside.result == MissResult::kNoRam);
  CHECK(outside.physical == (2u << 20));
}

TEST_CASE("code pages are read-only in the window until unprotected, and writes to them say so") {
  MmuFixture f;
  f.mmu->ProtectCode(0x41);  // before the run is mapped
  REQUIRE(f.mmu->HandleMiss(0x40000, false, View::kSupervisor).result == MissResult::kMapped);
  CHECK_FALSE(Writable(f.At(0x41000)));
  CHECK(Writable(f.At(0x42000)));
  CHECK(f.mmu->HandleMiss(0x41004, true, View::kSupervisor).result == MissResult::kCodeWrite);
  f.mmu->UnprotectCode(0x41);
  CHECK(Writable(f.At(0x41000)));
  f.mmu->ProtectCode(0x42);  // after
  CHECK_FALSE(Writable(f.At(0x42000)));
  CHECK(f.mmu->IsCodePage(0x42));
}

// Guest page tables for 32-bit paging in guest RAM: a directory (at 0x1000
// unless told) and one table (at 0x2000) for linear [4 MiB, 8 MiB).
class GuestTables {
 public:
  static constexpr std::uint32_t kDirectory = 0x1000, kTable = 0x2000;
  static constexpr std::uint32_t kPresent = 1, kWritable = 2, kAccessed = 0x20, kDirty = 0x40,
                                 kLarge = 0x80, kGlobal = 0x100;

  explicit GuestTables(PhysicalMemory& memory, std::uint32_t directory = kDirectory,
                       std::uint32_t table = kTable)
      : memory_(memory), directory_(directory), table_(table) {
    Set(directory_ + 1 * 4, table_ | kPresent | kWritable);
  }
  void Map(std::uint32_t linear, std::uint32_t physical, std::uint32_t flags) {
    Set(table_ + ((linear >> 12) & 0x3FF) * 4, physical | flags);
  }
  std::uint32_t Pte(std::uint32_t linear) const {
    std::uint32_t value = 0;
    memory_.Read(table_ + ((linear >> 12) & 0x3FF) * 4, &value, 4);
    return value;
  }
  void Set(std::uint32_t address, std::uint32_t value) { memory_.Write(address, &value, 4); }
  std::uint32_t directory() const { return directory_; }
  static PagingMode Mode(std::uint32_t cr4 = 0) { return {0x80010011u, kDirectory, cr4, false}; }

 private:
  PhysicalMemory& memory_;
  std::uint32_t directory_, table_;
};

TEST_CASE("with paging on, a miss walks the guest tables: #PF, A and D bits, write after D") {
  MmuFixture f;
  GuestTables tables(*f.memory);
  tables.Map(0x400000, 0x10000, GuestTables::kPresent | GuestTables::kWritable);
  CHECK(f.mmu->SetMode(GuestTables::Mode()));

  const ShadowMmu::Miss missing = f.mmu->HandleMiss(0x401234, true, View::kSupervisor);
  CHECK(missing.result == MissResult::kPageFault);
  CHECK(missing.error_code == 0x2);  // not present, write

  CHECK(f.mmu->HandleMiss(0x400010, false, View::kSupervisor).result == MissResult::kMapped);
  CHECK((tables.Pte(0x400000) & GuestTables::kAccessed) != 0);
  CHECK((tables.Pte(0x400000) & GuestTables::kDirty) == 0);
  CHECK(Readable(f.At(0x400000)));
  CHECK_FALSE(Writable(f.At(0x400000)));  // read-only until D is set
  f.memory->HostPointer(0x10000)[5] = 0x77;
  CHECK(f.At(0x400000)[5] == 0x77);

  CHECK(f.mmu->HandleMiss(0x400010, true, View::kSupervisor).result == MissResult::kMapped);
  CHECK((tables.Pte(0x400000) & GuestTables::kDirty) != 0);
  CHECK(Writable(f.At(0x400000)));
}

TEST_CASE("a code page is read-only through every alias, and writable again after") {
  MmuFixture f;
  GuestTables tables(*f.memory);
  const std::uint32_t rw_dirty =
      GuestTables::kPresent | GuestTables::kWritable | GuestTables::kDirty;
  tables.Map(0x400000, 0x10000, rw_dirty);
  tables.Map(0x7FF000, 0x10000, rw_dirty);
  f.mmu->SetMode(GuestTables::Mode());
  REQUIRE(f.mmu->HandleMiss(0x400000, true, View::kSupervisor).result == MissResult::kMapped);
  REQUIRE(f.mmu->HandleMiss(0x7FF000, true, View::kSupervisor).result == MissResult::kMapped);
  f.mmu->ProtectCode(0x10);
  CHECK_FALSE(Writable(f.At(0x400000)));
  CHECK_FALSE(Writable(f.At(0x7FF000)));
  const ShadowMmu::Miss write = f.mmu->HandleMiss(0x7FF008, true, View::kSupervisor);
  CHECK(write.result == MissResult::kCodeWrite);
  CHECK(write.physical == 0x10008);
  f.mmu->UnprotectCode(0x10);
  CHECK(Writable(f.At(0x400000)));
  CHECK(Writable(f.At(0x7FF000)));
}

TEST_CASE("CR3 loads drop changed non-global pages, invlpg one page, mode changes all") {
  MmuFixture f;
  GuestTables tables(*f.memory);
  tables.Map(0x400000, 0x10000, GuestTables::kPresent);
  tables.Map(0x401000, 0x11000, GuestTables::kPresent | GuestTables::kGlobal);
  tables.Map(0x402000, 0x12000, GuestTables::kPresent);
  tables.Map(0x403000, 0x13000, GuestTables::kPresent);
  f.mmu->SetMode(GuestTables::Mode(1u << 7));  // CR4.PGE
  for (std::uint32_t linear : {0x400000u, 0x401000u, 0x402000u, 0x403000u}) {
    REQUIRE(f.mmu->HandleMiss(linear, false, View::kSupervisor).result == MissResult::kMapped);
  }
  // Edited without invlpg: only the CR3 load makes the change count.
  tables.Map(0x400000, 0, 0);
  tables.Map(0x402000, 0x14000, GuestTables::kPresent);
  CHECK(Readable(f.At(0x400000)));
  CHECK(f.mmu->LoadCr3(GuestTables::kDirectory));
  CHECK_FALSE(Readable(f.At(0x400000)));  // not present now
  CHECK(Readable(f.At(0x401000)));        // global
  CHECK_FALSE(Readable(f.At(0x402000)));  // another frame now
  CHECK(Readable(f.At(0x403000)));        // unchanged

  f.mmu->FlushPage(0x401FFF);
  CHECK_FALSE(Readable(f.At(0x401000)));

  REQUIRE(f.mmu->HandleMiss(0x401000, false, View::kSupervisor).result == MissResult::kMapped);
  CHECK(f.mmu->SetMode(GuestTables::Mode()));  // PGE off flushes globals too
  CHECK_FALSE(Readable(f.At(0x401000)));
  CHECK(f.mmu->counters().cr3_flushes == 1);
  CHECK(f.mmu->counters().page_flushes == 1);
  CHECK(f.mmu->counters().pages_kept == 1);
}

TEST_CASE("each address space keeps its pages across loads of other CR3s") {
  MmuFixture f;
  GuestTables first(*f.memory), second(*f.memory, 0x3000, 0x4000);
  const std::uint32_t rw_dirty =
      GuestTables::kPresent | GuestTables::kWritable | GuestTables::kDirty;
  first.Map(0x400000, 0x10000, rw_dirty);
  first.Map(0x401000, 0x11000, rw_dirty);
  first.Map(0x402000, 0x12000, GuestTables::kPresent | GuestTables::kGlobal);
  second.Map(0x400000, 0x20000, GuestTables::kPresent);
  second.Map(0x402000, 0x12000, GuestTables::kPresent | GuestTables::kGlobal);
  f.mmu->SetMode(GuestTables::Mode(1u << 7));  // CR4.PGE
  for (std::uint32_t linear : {0x400000u, 0x401000u}) {
    REQUIRE(f.mmu->HandleMiss(linear, true, View::kSupervisor).result == MissResult::kMapped);
  }
  REQUIRE(f.mmu->HandleMiss(0x402000, false, View::kSupervisor).result == MissResult::kMapped);
  f.memory->HostPointer(0x10000)[0] = 0x11;
  f.memory->HostPointer(0x20000)[0] = 0x22;

  f.mmu->LoadCr3(second.directory());
  CHECK_FALSE(Readable(f.At(0x400000)));
  for (std::uint32_t linear : {0x400000u, 0x402000u}) {
    REQUIRE(f.mmu->HandleMiss(linear, false, View::kSupervisor).result == MissResult::kMapped);
  }
  CHECK(f.At(0x400000)[0] == 0x22);
  // An invlpg here is for this space, and for global pages everywhere.
  f.mmu->FlushPage(0x401000);
  f.mmu->FlushPage(0x402000);

  // What a fork does to its parent while it is away: a page made read-only
  // and clean for copy-on-write, with its accessed bit cleared.
  first.Map(0x401000, 0x11000, GuestTables::kPresent);
  f.mmu->LoadCr3(first.directory());
  CHECK(f.mmu->counters().space_hits == 1);
  REQUIRE(Readable(f.At(0x400000)));  // no miss: still mapped
  CHECK(f.At(0x400000)[0] == 0x11);
  CHECK(Writable(f.At(0x400000)));
  CHECK(Readable(f.At(0x401000)));
  CHECK_FALSE(Writable(f.At(0x401000)));
  CHECK((first.Pte(0x401000) & GuestTables::kAccessed) != 0);  // as a TLB fill sets it
  CHECK((first.Pte(0x401000) & GuestTables::kDirty) == 0);
  CHECK_FALSE(Readable(f.At(0x402000)));

  f.mmu->LoadCr3(second.directory());
  REQUIRE(Readable(f.At(0x400000)));
  CHECK(f.At(0x400000)[0] == 0x22);
}

TEST_CASE("past the number of spaces kept, the least recently used CR3 loses its pages") {
  MmuFixture f;
  GuestTables tables(*f.memory);
  tables.Map(0x400000, 0x10000, GuestTables::kPresent);
  f.mmu->SetMode(GuestTables::Mode());
  REQUIRE(f.mmu->HandleMiss(0x400000, false, View::kSupervisor).result == MissResult::kMapped);
  // Other directories with nothing mapped: each load takes a space.
  for (std::uint32_t i = 1; i < ShadowMmu::kSpaces; ++i) f.mmu->LoadCr3(0x100000 + i * 0x1000);
  f.mmu->LoadCr3(GuestTables::kDirectory);
  CHECK(Readable(f.At(0x400000)));
  for (std::uint32_t i = 1; i <= ShadowMmu::kSpaces; ++i) f.mmu->LoadCr3(0x100000 + i * 0x1000);
  f.mmu->LoadCr3(GuestTables::kDirectory);
  CHECK_FALSE(Readable(f.At(0x400000)));
  CHECK(f.mmu->counters().space_hits == ShadowMmu::kSpaces);
}

// Paging on, and linear 0x400000 shadowed, read-only, on the frame at
// 0x10000, whose first byte is 1; the first byte of the frame at 0x11000
// is 2.
struct OneShadowedPage : MmuFixture {
  OneShadowedPage() {
    tables.Map(0x400000, 0x10000, GuestTables::kPresent);
    mmu->SetMode(GuestTables::Mode());
    memory->HostPointer(0x10000)[0] = 1;
    memory->HostPointer(0x11000)[0] = 2;
    REQUIRE(mmu->HandleMiss(0x400000, false, View::kSupervisor).result == MissResult::kMapped);
  }
  GuestTables tables{*memory};
};

TEST_CASE("a linear page remapped to another frame after invlpg shows the new frame") {
  OneShadowedPage f;
  GuestTables& tables = f.tables;
  CHECK(f.At(0x400000)[0] == 1);
  tables.Map(0x400000, 0x11000, GuestTables::kPresent);
  CHECK(f.At(0x400000)[0] == 1);  // a stale TLB entry, as hardware may keep
  f.mmu->FlushPage(0x400000);
  REQUIRE(f.mmu->HandleMiss(0x400000, false, View::kSupervisor).result == MissResult::kMapped);
  CHECK(f.At(0x400000)[0] == 2);
  // The old frame holds code: only aliases of it are protected.
  f.mmu->ProtectCode(0x10);
  CHECK(f.mmu->HandleMiss(0x400000, true, View::kSupervisor).result ==
        MissResult::kPageFault);  // read-only PTE
}

TEST_CASE("a dropped page stays mapped without access until a miss finds it on the same frame") {
  OneShadowedPage f;
  GuestTables& tables = f.tables;
  // Not present at the next CR3 load, as in a new process's tables.
  tables.Map(0x400000, 0, 0);
  f.mmu->LoadCr3(GuestTables::kDirectory);
  CHECK_FALSE(Readable(f.At(0x400000)));
  CHECK(f.mmu->HandleMiss(0x400000, false, View::kSupervisor).result == MissResult::kPageFault);
  tables.Map(0x400000, 0x10000, GuestTables::kPresent);
  REQUIRE(f.mmu->HandleMiss(0x400000, false, View::kSupervisor).result == MissResult::kMapped);
  CHECK(f.mmu->counters().pages_unparked == 1);
  CHECK(f.At(0x400000)[0] == 1);
  CHECK_FALSE(Writable(f.At(0x400000)));

  // Parked again, then back onto another frame: a new mapping.
  f.mmu->FlushPage(0x400000);
  CHECK_FALSE(Readable(f.At(0x400000)));
  tables.Map(0x400000, 0x11000, GuestTables::kPresent | GuestTables::kWritable);
  REQUIRE(f.mmu->HandleMiss(0x400000, true, View::kSupervisor).result == MissResult::kMapped);
  CHECK(f.At(0x400000)[0] == 2);
  CHECK(Writable(f.At(0x400000)));
  CHECK(f.mmu->counters().pages_unparked == 1);
}

TEST_CASE("a miss gives their rights back to parked neighbours mapped onto the same frames") {
  MmuFixture f;
  GuestTables tables(*f.memory);
  f.mmu->SetMode(GuestTables::Mode());
  for (std::uint32_t i = 0; i < 4; ++i) {
    tables.Map(0x400000 + i * 0x1000, 0x10000 + i * 0x1000, GuestTables::kPresent);
    REQUIRE(f.mmu->HandleMiss(0x400000 + i * 0x1000, false, View::kSupervisor).result ==
            MissResult::kMapped);
  }
  // A new process on the same page directory and binary: nothing present
  // at its CR3 load, then its pages come back, one onto another frame.
  for (std::uint32_t i = 0; i < 4; ++i) tables.Map(0x400000 + i * 0x1000, 0, 0);
  f.mmu->LoadCr3(GuestTables::kDirectory);
  for (std::uint32_t i = 0; i < 3; ++i) {
    tables.Map(0x400000 + i * 0x1000, 0x10000 + i * 0x1000, GuestTables::kPresent);
  }
  tables.Map(0x403000, 0x20000, GuestTables::kPresent);
  REQUIRE(f.mmu->HandleMiss(0x400000, false, View::kSupervisor).result == MissResult::kMapped);
  CHECK(Readable(f.At(0x401000)));
  CHECK(Readable(f.At(0x402000)));
  CHECK_FALSE(Readable(f.At(0x403000)));
  CHECK((tables.Pte(0x402000) & GuestTables::kAccessed) != 0);
  CHECK(f.mmu->counters().pages_unparked == 3);
}

TEST_CASE("past the number of parked pages allowed, every parked page is unmapped") {
  MmuFixture f;
  GuestTables tables(*f.memory);
  tables.Map(0x400000, 0x10000, GuestTables::kPresent);
  tables.Map(0x420000, 0x11000, GuestTables::kPresent);
  f.mmu->SetMode(GuestTables::Mode());
  f.memory->HostPointer(0x10000)[0] = 1;
  REQUIRE(f.mmu->HandleMiss(0x400000, false, View::kSupervisor).result == MissResult::kMapped);
  f.mmu->FlushPage(0x400000);
  // In another run of pages, so as not to be its neighbour. Each round
  // parks 0x420000 once more, and each miss after the first
  // finds it parked; the last round's parking is one too many.
  for (std::size_t i = 1; i < ShadowMmu::kMaxParkedPages + 1; ++i) {
    REQUIRE(f.mmu->HandleMiss(0x420000, false, View::kSupervisor).result == MissResult::kMapped);
    f.mmu->FlushPage(0x420000);
  }
  CHECK(f.mmu->counters().pages_unparked == ShadowMmu::kMaxParkedPages - 1);
  CHECK_FALSE(Readable(f.At(0x400000)));
  REQUIRE(f.mmu->HandleMiss(0x400000, false, View::kSupervisor).result == MissResult::kMapped);
  CHECK(f.mmu->counters().pages_unparked == ShadowMmu::kMaxParkedPages - 1);  // mapped anew
  CHECK(f.At(0x400000)[0] == 1);
}

TEST_CASE("PAE: bit 63 is NX with EFER.NXE and reserved without; changing NXE flushes") {
  MmuFixture f;
  constexpr std::uint32_t kPdpt = 0x3000, kPd = 0x4000, kPt = 0x5000;
  auto put = [&](std::uint32_t address, std::uint64_t value) {
    REQUIRE(f.memory->Write(address, &value, 8));
  };
  put(kPdpt, kPd | 1);
  put(kPd + 2 * 8, kPt | 3);                       // linear [4 MiB, 6 MiB)
  put(kPt, 0x10000 | 3 | std::uint64_t{1} << 63);  // 0x400000: data, NX
  PagingMode mode{0x80000011u, kPdpt, 1u << 5, true};
  CHECK(f.mmu->SetMode(mode));
  REQUIRE(f.mmu->HandleMiss(0x400010, false, View::kSupervisor).result == MissResult::kMapped);
  CHECK(Readable(f.At(0x400000)));
  Translation fetch = f.mmu->Translate(0x400010, Access::kExecute, View::kSupervisor);
  CHECK(fetch.status == Translation::Status::kPageFault);
  CHECK(fetch.error_code == (kPfPresent | kPfFetch));

  mode.nx_enabled = false;
  CHECK(f.mmu->SetMode(mode));
  CHECK_FALSE(Readable(f.At(0x400000)));
  const ShadowMmu::Miss miss = f.mmu->HandleMiss(0x400010, true, View::kSupervisor);
  CHECK(miss.result == MissResult::kPageFault);
  CHECK(miss.error_code == (kPfPresent | kPfWrite | kPfReserved));
  fetch = f.mmu->Translate(0x400010, Access::kExecute, View::kSupervisor);
  CHECK(fetch.error_code == (kPfPresent | kPfReserved));  // I/D only with NXE
}

TEST_CASE("the window is 4 GiB aligned with guard space on both sides") {
  auto window = platform::AddressWindow::Reserve();
  REQUIRE(window);
  const auto base = reinterpret_cast<std::uintptr_t>(window->base());
  CHECK(base % platform::AddressWindow::kSize == 0);
  CHECK(window->Contains(base + 0xFFFFFFFF));
  CHECK_FALSE(window->Contains(base + platform::AddressWindow::kSize));
  CHECK(window->InGuard(base + platform::AddressWindow::kSize + 8));
  CHECK(window->InGuard(base - 8));
  CHECK_FALSE(window->InGuard(base + 8));
}

TEST_CASE("guest RAM sizes outside what the machine supports are refused") {
  CHECK_FALSE(PhysicalMemory::Create(4096));
  CHECK_FALSE(PhysicalMemory::Create((1u << 20) + 1));
  CHECK_FALSE(PhysicalMemory::Create(std::uint64_t{4} << 30));
}

TEST_CASE("a miss in a large page maps a run of its pieces; code in the run stays read-only") {
  MmuFixture f;
  GuestTables tables(*f.memory);
  // A 4 MiB page at linear 8 MiB onto physical 0 (the fixture has 1 MiB).
  tables.Set(GuestTables::kDirectory + 2 * 4, 0x0 | GuestTables::kPresent | GuestTables::kWritable |
                                                  GuestTables::kDirty | GuestTables::kLarge);
  f.mmu->SetMode(GuestTables::Mode(1u << 4));  // CR4.PSE
  f.mmu->ProtectCode(0x33);
  REQUIRE(f.mmu->HandleMiss(0x830008, true, View::kSupervisor).result == MissResult::kMapped);
  CHECK(Writable(f.At(0x830000)));
  CHECK(Writable(f.At(0x83F000)));  // the whole 16-page run
  CHECK_FALSE(Writable(f.At(0x833000)));
  CHECK(Readable(f.At(0x833000)));
  CHECK_FALSE(Readable(f.At(0x840000)));
  f.mmu->FlushPage(0x9FF000);  // anywhere in the large page drops all of it
  CHECK_FALSE(Readable(f.At(0x830000)));
  CHECK_FALSE(Readable(f.At(0x83F000)));
}

TEST_CASE("the user view holds user pages only; code stays read-only in both views") {
  MmuFixture f;
  GuestTables tables(*f.memory);
  const std::uint32_t user = 0x4;
  tables.Map(0x400000, 0x10000,
             GuestTables::kPresent | GuestTables::kWritable | GuestTables::kDirty | user);
  tables.Map(0x401000, 0x11000, GuestTables::kPresent | GuestTables::kWritable);
  tables.Map(0x402000, 0x12000, GuestTables::kPresent | user);
  f.mmu->SetMode(GuestTables::Mode());
  tables.Set(GuestTables::kDirectory + 4, GuestTables::kTable | 7);  // the PDE allows user

  CHECK(f.mmu->HandleMiss(0x400000, true, View::kUser).result == MissResult::kMapped);
  CHECK(Writable(f.At(0x400000, View::kUser)));
  CHECK_FALSE(Readable(f.At(0x400000)));  // the supervisor view misses on its own

  const ShadowMmu::Miss supervisor_page = f.mmu->HandleMiss(0x401000, false, View::kUser);
  CHECK(supervisor_page.result == MissResult::kPageFault);
  CHECK(supervisor_page.error_code == 0x5);  // present, user
  CHECK(f.mmu->HandleMiss(0x401000, false, View::kSupervisor).result == MissResult::kMapped);
  CHECK_FALSE(Readable(f.At(0x401000, View::kUser)));

  const ShadowMmu::Miss read_only = f.mmu->HandleMiss(0x402000, true, View::kUser);
  CHECK(read_only.result == MissResult::kPageFault);
  CHECK(read_only.error_code == 0x7);  // present, write, user

  REQUIRE(f.mmu->HandleMiss(0x400000, true, View::kSupervisor).result == MissResult::kMapped);
  f.mmu->ProtectCode(0x10);
  CHECK_FALSE(Writable(f.At(0x400000, View::kUser)));
  CHECK_FALSE(Writable(f.At(0x400000)));
  f.mmu->UnprotectCode(0x10);
  CHECK(Writable(f.At(0x400000, View::kUser)));

  tables.Map(0x400000, 0, 0);
  tables.Map(0x401000, 0, 0);
  f.mmu->LoadCr3(GuestTables::kDirectory);
  CHECK_FALSE(Readable(f.At(0x400000, View::kUser)));
  CHECK_FALSE(Readable(f.At(0x401000)));
}

}  // namespace
}  // namespace bt::mmu
