// The guest page-table walk: 32-bit paging with 4 KiB and 4 MiB pages, PAE
// with 2 MiB pages and NX, permissions, accessed/dirty bits and #PF error
// codes (SDM Vol. 3A, chapter 4).
#include "mmu/page_walker.h"

#include <doctest/doctest.h>

namespace bt::mmu {
namespace {

constexpr std::uint64_t kP = 1, kRw = 2, kUs = 4, kA = 0x20, kD = 0x40, kPs = 0x80, kG = 0x100,
                        kNx = 1ull << 63;
constexpr std::uint32_t kCr0Wp = 1u << 16, kCr4Pse = 1u << 4, kCr4Pae = 1u << 5;
constexpr std::uint32_t kDirectory = 0x10000, kTable = 0x11000;

struct Fixture {
  PhysicalMemory memory = std::move(PhysicalMemory::Create(16u << 20).value());

  void Put32(std::uint64_t address, std::uint64_t value) {
    const auto v = static_cast<std::uint32_t>(value);
    REQUIRE(memory.Write(address, &v, 4));
  }
  void Put64(std::uint64_t address, std::uint64_t value) {
    REQUIRE(memory.Write(address, &value, 8));
  }
  std::uint64_t Get32(std::uint64_t address) {
    std::uint32_t v = 0;
    REQUIRE(memory.Read(address, &v, 4));
    return v;
  }
  std::uint64_t Get64(std::uint64_t address) {
    std::uint64_t v = 0;
    REQUIRE(memory.Read(address, &v, 8));
    return v;
  }
};

TEST_CASE("32-bit paging maps a 4 KiB page and sets A, then D on a write") {
  Fixture f;
  // linear 0x00403123 -> PDE 1, PTE 3 -> physical 0x00777123
  f.Put32(kDirectory + 1 * 4, kTable | kP | kRw | kUs);
  f.Put32(kTable + 3 * 4, 0x00777000 | kP | kRw | kUs);
  const PagingMode mode{0x80000011, kDirectory, 0, false};
  Translation t = Walk(f.memory, mode, 0x00403123, Access::kRead, false);
  REQUIRE(t.status == Translation::Status::kOk);
  CHECK(t.physical == 0x00777123);
  CHECK(t.page_size == 4096);
  CHECK(t.writable);
  CHECK_FALSE(t.dirty);
  CHECK((f.Get32(kDirectory + 4) & kA) != 0);
  CHECK((f.Get32(kTable + 12) & (kA | kD)) == kA);
  t = Walk(f.memory, mode, 0x00403123, Access::kWrite, false);
  REQUIRE(t.status == Translation::Status::kOk);
  CHECK(t.dirty);
  CHECK((f.Get32(kTable + 12) & kD) != 0);
  CHECK((f.Get32(kDirectory + 4) & kD) == 0);  // D lives in the leaf only
}

TEST_CASE("not-present entries give #PF with P clear and the access bits") {
  Fixture f;
  const PagingMode mode{0x80000011, kDirectory, 0, false};
  Translation t = Walk(f.memory, mode, 0x00400000, Access::kWrite, true);
  CHECK(t.status == Translation::Status::kPageFault);
  CHECK(t.error_code == (kPfWrite | kPfUser));
  f.Put32(kDirectory + 4, kTable | kP | kRw | kUs);
  t = Walk(f.memory, mode, 0x00400000, Access::kRead, false);
  CHECK(t.status == Translation::Status::kPageFault);
  CHECK(t.error_code == 0);
  CHECK((f.Get32(kDirectory + 4) & kA) == 0);  // a failed walk sets no A bits
}

TEST_CASE("U/S and R/W combine across levels; CR0.WP governs supervisor writes") {
  Fixture f;
  f.Put32(kDirectory, kTable | kP | kRw);      // supervisor directory entry
  f.Put32(kTable + 4, 0x00200000 | kP | kUs);  // user, read-only page
  PagingMode mode{0x80000011, kDirectory, 0, false};
  Translation t = Walk(f.memory, mode, 0x1000, Access::kRead, true);
  CHECK(t.status == Translation::Status::kPageFault);
  CHECK(t.error_code == (kPfPresent | kPfUser));
  t = Walk(f.memory, mode, 0x1000, Access::kWrite, false);  // WP clear: allowed
  CHECK(t.status == Translation::Status::kOk);
  CHECK(t.writable);
  CHECK_FALSE(t.user);
  mode.cr0 |= kCr0Wp;
  t = Walk(f.memory, mode, 0x1000, Access::kWrite, false);
  CHECK(t.status == Translation::Status::kPageFault);
  CHECK(t.error_code == (kPfPresent | kPfWrite));
  t = Walk(f.memory, mode, 0x1000, Access::kRead, false);
  CHECK(t.status == Translation::Status::kOk);
  CHECK_FALSE(t.writable);
}

TEST_CASE("4 MiB pages need CR4.PSE; reserved bits give a RSVD fault") {
  Fixture f;
  f.Put32(kDirectory + 0x100 * 4, 0x00400000 | kP | kRw | kPs | kG);
  PagingMode mode{0x80000011, kDirectory, kCr4Pse, false};
  Translation t = Walk(f.memory, mode, 0x40012345, Access::kWrite, false);
  REQUIRE(t.status == Translation::Status::kOk);
  CHECK(t.physical == 0x00412345);
  CHECK(t.page_size == (4u << 20));
  CHECK(t.global);
  CHECK((f.Get32(kDirectory + 0x400) & (kA | kD)) == (kA | kD));
  f.Put32(kDirectory + 0x100 * 4, 0x00400000 | kP | kPs | (1u << 13));
  t = Walk(f.memory, mode, 0x40012345, Access::kRead, false);
  CHECK(t.status == Translation::Status::kPageFault);
  CHECK(t.error_code == (kPfPresent | kPfReserved));
  // Without CR4.PSE the PS bit is ignored: the entry points to a table.
  f.Put32(kDirectory + 0x100 * 4, kTable | kP | kPs);
  f.Put32(kTable + 0x12 * 4, 0x00555000 | kP);
  mode.cr4 = 0;
  t = Walk(f.memory, mode, 0x40012345, Access::kRead, false);
  REQUIRE(t.status == Translation::Status::kOk);
  CHECK(t.physical == 0x00555345);
}

TEST_CASE("PAE: three levels, 2 MiB pages, execute-disable") {
  Fixture f;
  constexpr std::uint32_t kPdpt = 0x20020, kPd = 0x21000, kPt = 0x22000;
  f.Put64(kPdpt + 1 * 8, kPd | kP);                   // linear 0x40000000-0x7FFFFFFF
  f.Put64(kPd + 2 * 8, kPt | kP | kRw);               // 0x40400000
  f.Put64(kPt + 5 * 8, 0x00888000 | kP | kRw | kNx);  // 0x40405000
  f.Put64(kPd + 3 * 8, 0x00A00000 | kP | kPs);        // 0x40600000, 2 MiB
  PagingMode mode{0x80000011, kPdpt, kCr4Pae, true};
  Translation t = Walk(f.memory, mode, 0x40405678, Access::kRead, false);
  REQUIRE(t.status == Translation::Status::kOk);
  CHECK(t.physical == 0x00888678);
  CHECK_FALSE(t.executable);
  t = Walk(f.memory, mode, 0x40405678, Access::kExecute, false);
  CHECK(t.status == Translation::Status::kPageFault);
  CHECK(t.error_code == (kPfPresent | kPfFetch));
  t = Walk(f.memory, mode, 0x40612345, Access::kExecute, false);
  REQUIRE(t.status == Translation::Status::kOk);
  CHECK(t.physical == 0x00A12345);
  CHECK(t.page_size == (2u << 20));
  CHECK((f.Get64(kPd + 3 * 8) & kA) != 0);
  // With EFER.NXE clear, bit 63 is reserved.
  mode.nx_enabled = false;
  t = Walk(f.memory, mode, 0x40405678, Access::kRead, false);
  CHECK(t.status == Translation::Status::kPageFault);
  CHECK(t.error_code == (kPfPresent | kPfReserved));
  // PDPTEs have no A bit: bits 8:5 are reserved (SDM Vol. 3A, table 4-8).
  CHECK(f.Get64(kPdpt + 1 * 8) == (kPd | kP));
}

TEST_CASE("PAE: physical-address bits 35:32 are reserved, as CPUID reports 32 of them") {
  Fixture f;
  constexpr std::uint32_t kPdpt = 0x20000, kPd = 0x21000, kPt = 0x22000;
  f.Put64(kPdpt, kPd | kP);
  f.Put64(kPd, kPt | kP | kRw);
  f.Put64(kPt + 1 * 8, 1ull << 32 | 0x00888000 | kP | kRw);
  f.Put64(kPt + 2 * 8, 1ull << 35 | 0x00888000 | kP | kRw);
  f.Put64(kPd + 1 * 8, 1ull << 33 | 0x00A00000 | kP | kRw | kPs);
  const PagingMode mode{0x80000011, kPdpt, kCr4Pae, true};
  for (const std::uint32_t linear : {0x1000u, 0x2000u, 0x200000u}) {
    CAPTURE(linear);
    const Translation t = Walk(f.memory, mode, linear, Access::kWrite, false);
    CHECK(t.status == Translation::Status::kPageFault);
    CHECK(t.error_code == (kPfPresent | kPfReserved | kPfWrite));
  }
  CHECK((f.Get64(kPt + 8) & kA) == 0);  // a failed walk sets no A bits
}

TEST_CASE("a paging structure outside RAM is reported, not read as zero") {
  Fixture f;
  f.Put32(kDirectory, 0xF0000000u | kP);
  const PagingMode mode{0x80000011, kDirectory, 0, false};
  CHECK(Walk(f.memory, mode, 0x1000, Access::kRead, false).status ==
        Translation::Status::kTableOutsideRam);
}

}  // namespace
}  // namespace bt::mmu
