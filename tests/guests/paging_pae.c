// PAE paging (SDM Vol. 3A 4.4) and execute-disable in ring 0, one check
// group each:
//  1. identity map: code keeps running with CR4.PAE and CR0.PG, and 64-bit
//     PTEs and PDEs get their A bit;
//  2. 2 MiB pages (without CR4.PSE): offsets within the page, an access
//     across two of them, A/D in the PDE;
//  3. demand paging with 4 KiB pages: #PF for a not-present PTE, PDE and
//     PDPTE, CR2, error code and saved EIP checked, then the access retries;
//  4. A and D in 64-bit PTEs;
//  5. EFER.NXE (CPUID.80000001H:EDX.NX): data reads and writes of an NX
//     page work; a call into one, an instruction straddling into one, and a
//     call under an NX PDE (a page table's or a 2 MiB page's) are #PF 0x11
//     with CR2 at the first byte that could not be fetched; setting NX again
//     on a page whose code ran faults again after invlpg; A/D updates keep
//     bit 63; a fetch from a not-present page reports I/D (0x10);
//  6. reserved bits, #PF with RSVD: bit 63 of a PTE or PDE with EFER.NXE
//     clear, for reads, writes and fetches (no I/D without NXE); physical
//     address bits 35:32; bits 20:13 of a 2 MiB PDE;
//  7. invlpg of any address in a 2 MiB page drops all of it.
//
// Not checked here:
//  - P in the error code of a reserved-bit fault (see expect() below);
//  - that PDPTEs keep bits 8:5 clear, which are reserved (4.4.1, table
//    4-8): QEMU 7.2 sets A (bit 5) in them; tests/unit/page_walker_test.cc
//    checks that libbt leaves them alone;
//  - reserved bits in PDPTEs, which hardware checks when MOV to CR3 loads
//    them (#GP, 4.4.1) while libbt and QEMU check them on a walk (#PF);
//  - writes to reserved EFER bits: #GP(0) in libbt
//    (tests/unit/system_instructions_test.cc), ignored by QEMU;
//  - which mapping an access uses after an entry changes and before the
//    invalidation (4.10.4.3), including after a change of EFER.NXE, which
//    invalidates nothing by itself (4.10.4.1 does not list WRMSR): the
//    guest reloads CR3 after one.
// QEMU runs this guest with -cpu qemu32,+nx (tests/guests/CMakeLists.txt).
#include "paging_pae.h"

#include "paging_test.h"

enum {
  // Test windows, all above the identity map; one page table per 2 MiB.
  kDemandBase = 0x20000000,     // 3: four pages
  kDemandPdeBase = 0x20200000,  // 3: PDE not present
  kAdPage = 0x20400000,         // 4
  kNxBase = 0x20600000,         // 5: four pages
  kNxPdeBase = 0x20800000,      // 5: PDE with NX
  kNxLargeBase = 0x20A00000,    // 5: 2 MiB page with NX
  kRsvdBase = 0x20C00000,       // 6: five pages
  kRsvdPdeBase = 0x20E00000,    // 6: PDE with bit 63 over a page table
  kRsvdLargeBase = 0x21000000,  // 6: 2 MiB page with bit 13
  kLargeBase = 0x40000000,      // 2: two 2 MiB pages
  kInvlpgBase = 0x40400000,     // 7: two 2 MiB pages
  kPdptBase = 0xC0000000,       // 3: PDPTE not present
  kDemandPages = 4,
  // 2 MiB-aligned physical memory for large pages, clear of the image.
  kLargeFrame = 0x600000,
  kInvlpgFrameA = 0x1000000,
  kInvlpgFrameB = 0x1200000,
  kCpuidNx = 1 << 20,
};

static uint64_t low_dword(uint64_t entry) { return entry & 0xFFFFFFFFu; }

// ---- expected faults ----

// expect_fault, except that P is not compared in a reserved-bit fault:
// QEMU 7.2 reports those without it, though the SDM sets P with RSVD (4.7:
// RSVD "can be set only if bit 0 is also set"). The unit tests check P
// (tests/unit/shadow_mmu_test.cc and page_walker_test.cc).
static void expect(const char *what, uint32_t cr2, uint32_t error_code, const void *eip,
                   void (*resolve)(struct guest_trap_frame *, uint32_t)) {
  expect_fault(what, cr2, error_code, eip, resolve);
  if (error_code & PFEC_RSVD) want.error_mask = ~(uint32_t)PFEC_P;
}

static void map_expected(struct guest_trap_frame *f, uint32_t cr2) {
  (void)f;
  paging_pae_map(cr2, want.physical, want.flags);
}

// Clears bits 63:32 (NX, high address bits) of the PDE and PTE that
// translate cr2.
static void clear_high_bits(struct guest_trap_frame *f, uint32_t cr2) {
  (void)f;
  *paging_pae_pde(cr2) = low_dword(*paging_pae_pde(cr2));
  volatile uint64_t *pte = paging_pae_pte(cr2);
  if (pte) *pte = low_dword(*pte);
  paging_invlpg(cr2);
}

// A not-present PDPTE: hardware reads PDPTEs when CR3 is loaded (4.4.1),
// so the fix takes a CR3 load.
static void map_pdpte(struct guest_trap_frame *f, uint32_t cr2) {
  *paging_pae_pdpte(cr2) |= PTE_P;
  map_expected(f, cr2);
  paging_reload_cr3();
}

// ---- 1 ----

static const uint32_t kKnown[4] = {0x0BADF00D, 0xCAFEBABE, 0x13579BDF, 0x2468ACE0};

static void test_identity(void) {
  paging_pae_init();
  paging_pae_enable();
  check_eq("CR0.PG", CR0_PG, paging_read_cr0() & CR0_PG);
  check_eq("CR4.PAE", CR4_PAE, paging_read_cr4() & CR4_PAE);
  check_eq("CR4.PSE", 0, paging_read_cr4() & CR4_PSE);
  check_eq("CR3 holds the PDPT", guest_addr(paging_pae_pdpte(0)), paging_read_cr3());
  check_eq("rodata through the identity map", 0xCAFEBABE, ((const volatile uint32_t *)kKnown)[1]);
  volatile uint64_t *pte = paging_pae_pte(guest_addr(kKnown));
  check_eq64("identity PTE", (guest_addr(kKnown) & ~0xFFFu) | PTE_P | PTE_RW | PTE_A, *pte);
  check_eq64("identity PDE flags", PTE_P | PTE_RW | PTE_A, *paging_pae_pde(0) & 0xFFF);
  check_group("1 identity: [0, 8 MiB) onto itself with CR4.PAE and CR0.PG");
}

// ---- 2 ----

static void check_ad(const char *what, volatile uint64_t *entry, uint64_t expected) {
  check_eq64(what, expected, *entry & (PTE_A | PTE_D));
}

static void test_large_pages(void) {
  // kLargeBase onto kLargeFrame, the next 2 MiB onto physical 0.
  const uint32_t low = kLargeBase + kPaeLargePageSize;
  paging_pae_map_large(kLargeBase, kLargeFrame, PTE_P | PTE_RW);
  paging_pae_map_large(low, 0, PTE_P | PTE_RW);
  volatile uint64_t *pde = paging_pae_pde(kLargeBase), *pde_low = paging_pae_pde(low);
  check_ad("PDE fresh", pde, 0);

  const uint32_t known = low + guest_addr(kKnown);
  for (int i = 0; i < 4; i++) check_eq("image through a 2 MiB page", kKnown[i], lin(known)[i]);
  check_ad("low PDE after a read", pde_low, PTE_A);

  phys(kLargeFrame + 0x1ABCD0)[0] = 0x22222222;
  check_eq("read at the frame + offset", 0x22222222, lin(kLargeBase + 0x1ABCD0)[0]);
  check_ad("PDE after a read", pde, PTE_A);
  lin(kLargeBase + 0x1ABCD4)[0] = 0x2D2D2D2D;
  check_eq("write through the 2 MiB page", 0x2D2D2D2D, phys(kLargeFrame + 0x1ABCD4)[0]);
  check_ad("PDE after a write", pde, PTE_A | PTE_D);

  // A dword across the two pages: physical kLargeFrame + 2 MiB - 2 and 0.
  phys(kLargeFrame + kPaeLargePageSize - 4)[0] = 0x44332211;
  lin(low)[0] = 0x88776655;  // physical 0, not present in the identity map
  check_eq("load across 2 MiB pages", 0x66554433, *lin(low - 2));

  *pde &= ~(uint64_t)(PTE_A | PTE_D);
  paging_invlpg(kLargeBase);
  check_eq("read after clear, invlpg", 0x22222222, lin(kLargeBase + 0x1ABCD0)[0]);
  check_ad("PDE after clear, invlpg, read", pde, PTE_A);
  check_eq64("PDE", kLargeFrame | PTE_P | PTE_RW | PTE_PS | PTE_A, *pde);
  check_group("2 2 MiB pages: offsets, a split access, A/D in the PDE, no CR4.PSE needed");
}

// ---- 3 ----

static void test_demand(void) {
  want.flags = PTE_P | PTE_RW;
  for (uint32_t i = 0; i < kDemandPages; i++) {
    check_demand_access(i % 2 ? "demand write" : "demand read",
                        kDemandBase + i * kPageSize + 0x124 * (i + 1), i % 2,
                        0x33000000 + (i << 16), map_expected);
  }
  check_eq64("PDE not present", 0, *paging_pae_pde(kDemandPdeBase));
  check_demand_access("PDE not present", kDemandPdeBase + 0x10, 1, 0x34000000, map_expected);
  *paging_pae_pdpte(kPdptBase) &= ~(uint64_t)PTE_P;
  paging_reload_cr3();
  check_demand_access("PDPTE not present", kPdptBase + 0x20, 0, 0x35000000, map_pdpte);
  expect_none();
  for (uint32_t i = 0; i < kDemandPages; i++) {
    check_eq("mapped page", 0x33000000 + (i << 16) + 3, lin(kDemandBase + i * kPageSize)[3]);
  }
  check_group("3 demand paging: not-present PTE, PDE and PDPTE, CR2 and error code, retry");
}

// ---- 4 ----

static void test_accessed_dirty(void) {
  uint32_t frame = take_frame(0x44000000);
  paging_pae_map(kAdPage, frame, PTE_P | PTE_RW);
  volatile uint64_t *pte = paging_pae_pte(kAdPage), *pde = paging_pae_pde(kAdPage);
  check_ad("PTE fresh", pte, 0);
  check_ad("PDE fresh", pde, 0);
  check_eq("read", 0x44000005, lin(kAdPage)[5]);
  check_ad("PTE after a read", pte, PTE_A);
  check_ad("PDE after a read", pde, PTE_A);
  lin(kAdPage)[5] = 0x4D4D4D4D;
  check_eq64("PTE after a write", frame | PTE_P | PTE_RW | PTE_A | PTE_D, *pte);
  check_ad("PDE after a write: no D in a PDE that maps a table", pde, PTE_A);

  *pte &= ~(uint64_t)(PTE_A | PTE_D);
  paging_invlpg(kAdPage);
  lin(kAdPage)[7] = 2;
  check_ad("PTE after clear, invlpg, write", pte, PTE_A | PTE_D);
  check_eq("write landed", 2, phys(frame)[7]);
  check_group("4 accessed/dirty: A and D in 64-bit PTEs, A in the PDE");
}

// ---- 5 ----

static uint32_t cpuid_80000001_edx(void) {
  uint32_t eax, ebx, ecx, edx;
  __asm__ volatile("cpuid" : "=a"(eax), "=b"(ebx), "=c"(ecx), "=d"(edx) : "a"(0x80000000u));
  if (eax < 0x80000001u) return 0;
  __asm__ volatile("cpuid" : "=a"(eax), "=b"(ebx), "=c"(ecx), "=d"(edx) : "a"(0x80000001u));
  return edx;
}

// Calls `target`, which must fault once with `error_code` at `cr2` and then
// return `value`.
static void check_fetch(const char *what, uint32_t target, uint32_t cr2, uint32_t eip,
                        uint32_t error_code, uint32_t value,
                        void (*resolve)(struct guest_trap_frame *, uint32_t)) {
  expect(what, cr2, error_code, (const void *)(uintptr_t)eip, resolve);
  uint32_t got = ((value_fn)(uintptr_t)target)();
  check_eq("faults", 1, faults.count);
  check_eq("code ran after the fix", value, got);
  expect_none();
}

static void test_nx(void) {
  check_eq("CPUID.80000001H:EDX.NX", kCpuidNx, cpuid_80000001_edx() & kCpuidNx);
  check_eq64("EFER at reset", 0, paging_read_msr(kMsrEfer));
  paging_write_msr(kMsrEfer, EFER_NXE);
  check_eq64("EFER.NXE set", EFER_NXE, paging_read_msr(kMsrEfer));

  uint32_t frame = take_code_frame(0x100, 0x9E7C0DE1);
  const uint32_t target = kNxBase + 0x100;
  paging_pae_map(kNxBase, frame, PTE_P | PTE_RW | PTE_NX);
  volatile uint64_t *pte = paging_pae_pte(kNxBase);
  check_eq("read an NX page", phys(frame)[0x40], lin(kNxBase)[0x40]);
  lin(kNxBase)[0] = 0x5A5A5A5A;
  check_eq("write an NX page", 0x5A5A5A5A, phys(frame)[0]);
  check_eq64("A/D keep NX", PTE_NX | frame | PTE_P | PTE_RW | PTE_A | PTE_D, *pte);
  check_fetch("call into an NX page", target, target, target, PFEC_P | PFEC_I, 0x9E7C0DE1,
              clear_high_bits);
  check_eq64("PTE after the fix", frame | PTE_P | PTE_RW | PTE_A | PTE_D, *pte);

  // The code has run and is translated: NX must still stop it.
  *pte |= PTE_NX;
  paging_invlpg(kNxBase);
  check_fetch("call after setting NX again", target, target, target, PFEC_P | PFEC_I, 0x9E7C0DE1,
              clear_high_bits);

  // A mov from an executable page into an NX one.
  uint32_t tail_frame, head_frame;
  take_straddling_frames(0x51DE0FF5, &tail_frame, &head_frame);
  paging_pae_map(kNxBase + kPageSize, tail_frame, PTE_P | PTE_RW);
  paging_pae_map(kNxBase + 2 * kPageSize, head_frame, PTE_P | PTE_RW | PTE_NX);
  const uint32_t start = kNxBase + 2 * kPageSize - 4;
  check_fetch("straddle into an NX page", start, kNxBase + 2 * kPageSize, start + 2,
              PFEC_P | PFEC_I, 0x51DE0FF5, clear_high_bits);

  // NX in a PDE over a page table whose PTE allows execution.
  paging_pae_map(kNxPdeBase, take_code_frame(0x200, 0x9DE0C0DE), PTE_P | PTE_RW);
  *paging_pae_pde(kNxPdeBase) |= PTE_NX;
  check_eq("read under an NX PDE", 0xCCCCCCCC, lin(kNxPdeBase)[0]);
  check_fetch("call under an NX PDE", kNxPdeBase + 0x200, kNxPdeBase + 0x200, kNxPdeBase + 0x200,
              PFEC_P | PFEC_I, 0x9DE0C0DE, clear_high_bits);

  // A 2 MiB NX page.
  emit_value((volatile uint8_t *)phys(kLargeFrame + 0x3000), 0x2B16C0DE);
  paging_pae_map_large(kNxLargeBase, kLargeFrame, PTE_P | PTE_RW | PTE_NX);
  check_fetch("call into a 2 MiB NX page", kNxLargeBase + 0x3000, kNxLargeBase + 0x3000,
              kNxLargeBase + 0x3000, PFEC_P | PFEC_I, 0x2B16C0DE, clear_high_bits);

  // Not present, with NXE: the error code says it was a fetch.
  want.physical = take_code_frame(0x300, 0x0F7C0DE5);
  want.flags = PTE_P | PTE_RW;
  check_fetch("call into a not-present page", kNxBase + 3 * kPageSize + 0x300,
              kNxBase + 3 * kPageSize + 0x300, kNxBase + 3 * kPageSize + 0x300, PFEC_I, 0x0F7C0DE5,
              map_expected);
  check_group("5 EFER.NXE: NX pages read and write, fetches fault 0x11 (PTE, PDE, 2 MiB)");
}

// ---- 6 ----

static void clear_bit13(struct guest_trap_frame *f, uint32_t cr2) {
  (void)f;
  *paging_pae_pde(cr2) &= ~(uint64_t)(1u << 13);
  paging_invlpg(cr2);
}

// A read of `linear`, whose entries set reserved bits, must fault once;
// `resolve` clears them and the read gives `expected`.
static void check_reserved_read(const char *what, uint32_t linear, uint32_t expected,
                                void (*resolve)(struct guest_trap_frame *, uint32_t)) {
  expect(what, linear, PFEC_P | PFEC_RSVD, probe_read_insn, resolve);
  check_eq(what, expected, probe_read(linear));
  check_eq("faults", 1, faults.count);
  expect_none();
}

static void test_reserved(void) {
  paging_write_msr(kMsrEfer, 0);
  paging_reload_cr3();
  check_eq64("EFER.NXE clear", 0, paging_read_msr(kMsrEfer));

  const uint32_t data = take_frame(0x66000000);
  paging_pae_map(kRsvdBase, data, PTE_P | PTE_RW | PTE_NX);
  check_reserved_read("read, bit 63 in the PTE", kRsvdBase + 0x40, 0x66000010, clear_high_bits);

  paging_pae_map(kRsvdBase + kPageSize, data, PTE_P | PTE_RW | PTE_NX);
  expect("write, bit 63 in the PTE", kRsvdBase + kPageSize + 0x44, PFEC_P | PFEC_W | PFEC_RSVD,
         probe_write_insn, clear_high_bits);
  probe_write(kRsvdBase + kPageSize + 0x44, 0x6E6E6E6E);
  check_eq("write after the fix", 0x6E6E6E6E, phys(data)[0x11]);
  check_eq("faults", 1, faults.count);
  expect_none();

  const uint32_t code = kRsvdBase + 2 * kPageSize + 0x100;
  paging_pae_map(kRsvdBase + 2 * kPageSize, take_code_frame(0x100, 0x6C0DE000), PTE_P | PTE_NX);
  check_fetch("fetch, bit 63 in the PTE", code, code, code, PFEC_P | PFEC_RSVD, 0x6C0DE000,
              clear_high_bits);

  paging_pae_map(kRsvdPdeBase, data, PTE_P | PTE_RW);
  *paging_pae_pde(kRsvdPdeBase) |= PTE_NX;
  check_reserved_read("read, bit 63 in the PDE", kRsvdPdeBase + 0x48, 0x66000012, clear_high_bits);

  // Physical addresses have 32 bits (CPUID.80000008H in libbt; QEMU's
  // qemu32 has no PSE-36 and faults the same), so bits 35:32 are reserved.
  paging_pae_map(kRsvdBase + 3 * kPageSize, 1ull << 32 | data, PTE_P | PTE_RW);
  check_reserved_read("read, bit 32 in the PTE", kRsvdBase + 3 * kPageSize + 0x4C, 0x66000013,
                      clear_high_bits);
  paging_pae_map(kRsvdBase + 4 * kPageSize, 1ull << 35 | data, PTE_P | PTE_RW);
  check_reserved_read("read, bit 35 in the PTE", kRsvdBase + 4 * kPageSize + 0x50, 0x66000014,
                      clear_high_bits);

  // Bits 20:13 of a 2 MiB PDE are reserved (4.4.2, table 4-9), and so are
  // its address bits 35:32.
  paging_pae_map_large(kRsvdLargeBase, kLargeFrame, PTE_P | PTE_RW);
  *paging_pae_pde(kRsvdLargeBase) |= 1u << 13;
  check_reserved_read("read, bit 13 in a 2 MiB PDE", kRsvdLargeBase + 0x1ABCD0, 0x22222222,
                      clear_bit13);
  *paging_pae_pde(kRsvdLargeBase) |= 1ull << 33;
  paging_invlpg(kRsvdLargeBase);
  check_reserved_read("read, bit 33 in a 2 MiB PDE", kRsvdLargeBase + 0x1ABCD0, 0x22222222,
                      clear_high_bits);
  check_group("6 reserved bits: bit 63 without NXE, address bits 35:32, bits 20:13 of a 2 MiB PDE");
}

// ---- 7 ----

static void test_invlpg_large(void) {
  // Give the two frames known words through kInvlpgBase + 2 MiB.
  const uint32_t other = kInvlpgBase + kPaeLargePageSize;
  paging_pae_map_large(other, kInvlpgFrameA, PTE_P | PTE_RW);
  lin(other)[0] = 0xA0A0A0A0;
  lin(other + 0x180000)[0] = 0xA1A1A1A1;
  paging_pae_map_large(other, kInvlpgFrameB, PTE_P | PTE_RW);
  paging_invlpg(other);
  lin(other)[0] = 0xB0B0B0B0;
  lin(other + 0x180000)[0] = 0xB1B1B1B1;

  paging_pae_map_large(kInvlpgBase, kInvlpgFrameA, PTE_P | PTE_RW);
  check_eq("frame A, first piece", 0xA0A0A0A0, lin(kInvlpgBase)[0]);
  check_eq("frame A, a later piece", 0xA1A1A1A1, lin(kInvlpgBase + 0x180000)[0]);
  paging_pae_map_large(kInvlpgBase, kInvlpgFrameB, PTE_P | PTE_RW);
  // An address in neither piece read so far.
  paging_invlpg(kInvlpgBase + 0xC0000);
  check_eq("frame B, first piece", 0xB0B0B0B0, lin(kInvlpgBase)[0]);
  check_eq("frame B, the later piece", 0xB1B1B1B1, lin(kInvlpgBase + 0x180000)[0]);
  lin(kInvlpgBase + 0x180004)[0] = 0xB2B2B2B2;
  check_eq("write lands in frame B", 0xB2B2B2B2, lin(other + 0x180004)[0]);
  check_group("7 invlpg in a 2 MiB page drops the whole page");
}

int main(void) {
  guest_load_flat_gdt();
  guest_idt_init();
  page_faults_checked();
  test_identity();
  test_large_pages();
  test_demand();
  test_accessed_dirty();
  test_nx();
  test_reserved();
  test_invlpg_large();
  return check_finish();
}
