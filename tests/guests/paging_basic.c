// 32-bit paging (SDM Vol. 3A chapter 4) in ring 0, one check group each:
//  1. identity map: code keeps running, data stays readable and writable;
//  2. aliases: two linear pages onto one physical page stay coherent, and an
//     access that crosses between linear pages onto unrelated frames splits;
//  3. demand paging: not-present faults in a window, CR2, error code and
//     saved EIP checked, the handler maps a frame and the access retries;
//  4. accessed and dirty flags in PTE and PDE (4.8);
//  5. CR0.WP: a write to a read-only page at CPL 0 succeeds with WP=0 and
//     faults with WP=1 (4.6); the handler makes the page writable;
//  6. INVLPG and MOV to CR3 make a changed PTE take effect (4.10.4.1);
//  7. 4 MiB pages with CR4.PSE, and their A/D flags in the PDE;
//  8. #PF inside rep movsd: ECX/ESI/EDI at the fault count the iterations
//     done (Vol. 2B, REP), and the instruction completes after the fix;
//  9. instruction fetch from a not-present page, also by an instruction
//     that straddles into one;
// 10. self-modifying code through a different linear alias of its page
//     (Vol. 3A "Self-Modifying Code": the check uses physical addresses).
//
// Not checked, because the SDM leaves it open: which mapping an access uses
// after a PTE changes and before the invalidation (4.10.4.3); whether a
// write that faults on the second page of a split access has stored its
// first part; EFLAGS.RF in fault frames (see idt_exceptions.c).
#include "paging.h"
#include "paging_test.h"

enum {
  // Test windows, all above the identity map; one page table per 4 MiB.
  kAliasBase = 0x20000000,   // 2: three pages
  kAdPage = 0x20010000,      // 4
  kRoPage = 0x20020000,      // 5
  kSwapPage = 0x20030000,    // 6
  kSmcAlias = 0x20040000,    // 10
  kDemandBase = 0x30000000,  // 3: kDemandPages pages
  kMovsBase = 0x30100000,    // 8: six pages
  kExecBase = 0x30200000,    // 9: three pages
  kLargeBase = 0x40000000,   // 7: two 4 MiB pages
  kDemandPages = 8,
};

// Maps want.physical with want.flags at the faulting page.
static void map_expected(struct guest_trap_frame *f, uint32_t cr2) {
  (void)f;
  paging_map(cr2, want.physical, want.flags);
}

// ---- 1 ----

static const uint32_t kKnown[4] = {0x0BADF00D, 0xCAFEBABE, 0x13579BDF, 0x2468ACE0};
static uint32_t written_before;

static uint32_t sum_known(void) {
  uint32_t sum = 0;
  for (int i = 0; i < 4; i++) sum += ((const volatile uint32_t *)kKnown)[i];
  return sum;
}

static void test_identity(void) {
  written_before = 0x600DDA7A;
  uint32_t sum_before = sum_known();
  paging_init(PTE_P | PTE_RW);
  paging_enable(0);
  uint32_t cr0 = paging_read_cr0();
  check_eq("CR0.PG", CR0_PG, cr0 & CR0_PG);
  check_eq("CR0.WP", 0, cr0 & CR0_WP);
  check_eq("CR3", guest_addr(paging_current()), paging_read_cr3());
  check_eq("CR4.PSE", 0, paging_read_cr4() & CR4_PSE);
  check_eq("rodata through the identity map", sum_before, sum_known());
  check_eq("data written before paging", 0x600DDA7A, *(volatile uint32_t *)&written_before);
  *(volatile uint32_t *)&written_before = 0xAF7E0000;
  check_eq("data written with paging", 0xAF7E0000, *(volatile uint32_t *)&written_before);
  volatile uint32_t *pte = paging_pte(guest_addr(kKnown));
  check_eq("identity PTE frame", guest_addr(kKnown) & ~0xFFFu, *pte & ~0xFFFu);
  check_eq("identity PTE A after reading", PTE_A, *pte & PTE_A);
  check_group("1 identity: [0, 8 MiB) onto itself, code and data work with CR0.PG=1");
}

// ---- 2 ----

static void test_alias(void) {
  uint32_t frame = take_frame(0x22000000);
  uint32_t left = take_frame(0x22100000), right = take_frame(0x22200000);
  paging_map(kAliasBase, frame, PTE_P | PTE_RW);
  // Linear pages 1 and 2 onto two frames in the opposite order.
  paging_map(kAliasBase + kPageSize, right, PTE_P | PTE_RW);
  paging_map(kAliasBase + 2 * kPageSize, left, PTE_P | PTE_RW);
  check_eq("alias read", 0x22000010, lin(kAliasBase)[0x10]);
  lin(kAliasBase)[0x20] = 0xA11A5001;
  check_eq("write through the alias, read at the frame", 0xA11A5001, phys(frame)[0x20]);
  phys(frame)[0x21] = 0xA11A5002;
  check_eq("write at the frame, read through the alias", 0xA11A5002, lin(kAliasBase)[0x21]);
  for (uint32_t i = 0; i < 8; i++) {
    lin(kAliasBase)[i] = i * 0x01010101;
    check_eq("alternating writes", i * 0x01010101, phys(frame)[i]);
    phys(frame)[i] = ~i;
    check_eq("alternating writes back", ~i, lin(kAliasBase)[i]);
  }
  // A dword at the end of linear page 1: two bytes from `right`, two from
  // `left`.
  phys(right)[kWords - 1] = 0x44332211;
  phys(left)[0] = 0x88776655;
  uint32_t split = *(volatile uint32_t *)(uintptr_t)(kAliasBase + 2 * kPageSize - 2);
  check_eq("load across linear pages", 0x66554433, split);
  *(volatile uint32_t *)(uintptr_t)(kAliasBase + 2 * kPageSize - 2) = 0xDDCCBBAA;
  check_eq("store across linear pages, first frame", 0xBBAA2211, phys(right)[kWords - 1]);
  check_eq("store across linear pages, second frame", 0x8877DDCC, phys(left)[0]);
  check_group("2 alias: two linear pages onto one frame, a split access onto two frames");
}

// ---- 3 ----

static void test_demand(void) {
  unsigned total = 0;
  want.flags = PTE_P | PTE_RW;
  for (uint32_t i = 0; i < kDemandPages; i++) {
    uint32_t linear = kDemandBase + i * kPageSize + ((i * 0x124) & 0xFFC);
    check_demand_access(i % 2 ? "demand write" : "demand read", linear, i % 2,
                        0x33000000 + (i << 16), map_expected);
    total += faults.count;
  }
  expect_none();
  for (uint32_t i = 0; i < kDemandPages; i++) {
    check_eq("mapped page", 0x33000000 + (i << 16) + 3, lin(kDemandBase + i * kPageSize)[3]);
  }
  check_eq("faults after every page is mapped", 0, faults.count);
  guest_printf("demand: %u faults for %u pages\n", total, (unsigned)kDemandPages);
  check_group("3 demand paging: not-present #PF, CR2 and error code, map, retry");
}

// ---- 4 ----

static void check_ad(const char *what, volatile uint32_t *entry, uint32_t expected) {
  check_eq(what, expected, *entry & (PTE_A | PTE_D));
}

static void test_accessed_dirty(void) {
  uint32_t frame = take_frame(0x44000000);
  paging_map(kAdPage, frame, PTE_P | PTE_RW);
  volatile uint32_t *pte = paging_pte(kAdPage), *pde = paging_pde(kAdPage);
  // The PDE has translated aliases already: clear its A too. INVLPG also
  // empties the paging-structure caches (4.10.4.1).
  *pde &= ~PTE_A;
  paging_invlpg(kAdPage);
  check_ad("PTE fresh", pte, 0);
  check_eq("read", 0x44000005, lin(kAdPage)[5]);
  check_ad("PTE after a read", pte, PTE_A);
  check_eq("PDE A after a read", PTE_A, *pde & PTE_A);
  lin(kAdPage)[5] = 0x4D4D4D4D;
  check_ad("PTE after a write", pte, PTE_A | PTE_D);

  *pte &= ~(PTE_A | PTE_D);
  paging_invlpg(kAdPage);
  check_eq("read again", 0x4D4D4D4D, lin(kAdPage)[5]);
  check_ad("PTE after clear, invlpg, read", pte, PTE_A);
  lin(kAdPage)[6] = 1;
  check_ad("PTE after clear, invlpg, read, write", pte, PTE_A | PTE_D);

  *pte &= ~(PTE_A | PTE_D);
  paging_invlpg(kAdPage);
  lin(kAdPage)[7] = 2;
  check_ad("PTE after clear, invlpg, write", pte, PTE_A | PTE_D);
  check_eq("writes landed", 1 + 2, phys(frame)[6] + phys(frame)[7]);
  check_group("4 accessed/dirty: A on read, D on write, set again after clear and invlpg");
}

// ---- 5 ----

static uint32_t ro_frame;

// WP=1 write to the read-only page: nothing stored yet; make it writable.
static void make_writable(struct guest_trap_frame *f, uint32_t cr2) {
  (void)f;
  check_eq("read-only word at the fault", 0x55000000 + (cr2 & 0xFFF) / 4,
           phys(ro_frame)[(cr2 & 0xFFF) / 4]);
  *paging_pte(cr2) |= PTE_RW;
  paging_invlpg(cr2);  // else the retry may fault once more (4.10.4.3)
}

static void test_write_protect(void) {
  ro_frame = take_frame(0x55000000);
  paging_map(kRoPage, ro_frame, PTE_P);  // read-only
  volatile uint32_t *pte = paging_pte(kRoPage);
  expect_none();
  probe_write(kRoPage + 0x10, 0x57575757);
  check_eq("WP=0: faults", 0, faults.count);
  check_eq("WP=0: write landed", 0x57575757, phys(ro_frame)[4]);
  check_eq("WP=0: D set", PTE_D, *pte & PTE_D);
  check_eq("WP=0: still read-only", 0, *pte & PTE_RW);

  // No invalidation: a TLB entry caches R/W, and CR0.WP applies when the
  // access is checked (4.10.2.2, 4.6).
  paging_write_cr0(paging_read_cr0() | CR0_WP);
  check_eq("WP=1: read", 0x55000009, probe_read(kRoPage + 0x24));
  expect_fault("WP=1 write", kRoPage + 0x20, PFEC_P | PFEC_W, probe_write_insn, make_writable);
  probe_write(kRoPage + 0x20, 0x5A5A5A5A);
  check_eq("WP=1: faults", 1, faults.count);
  check_eq("WP=1: write landed after the fix", 0x5A5A5A5A, phys(ro_frame)[8]);

  *pte &= ~PTE_RW;
  paging_invlpg(kRoPage);
  expect_fault("WP=1 write again", kRoPage + 0xFFC, PFEC_P | PFEC_W, probe_write_insn,
               make_writable);
  probe_write(kRoPage + 0xFFC, 0x5B5B5B5B);
  check_eq("WP=1 again: faults", 1, faults.count);
  check_eq("WP=1 again: write landed", 0x5B5B5B5B, phys(ro_frame)[kWords - 1]);
  expect_none();
  check_group("5 CR0.WP: ring-0 write to a read-only page passes with WP=0, #PF 0x3 with WP=1");
}

// ---- 6 ----

static void test_invalidation(void) {
  uint32_t a = take_frame(0x61000000), b = take_frame(0x62000000), c = take_frame(0x63000000);
  volatile uint32_t *page = lin(kSwapPage);
  paging_map(kSwapPage, a, PTE_P | PTE_RW);
  check_eq("first mapping", 0x61000002, page[2]);
  paging_map(kSwapPage, b, PTE_P | PTE_RW);
  // Either a or b until the invalidation: not checked (4.10.4.3).
  (void)page[2];
  paging_invlpg(kSwapPage + 0x123);  // any address in the page
  check_eq("after invlpg", 0x62000002, page[2]);
  page[3] = 0x6B6B6B6B;
  check_eq("write after invlpg lands in the new frame", 0x6B6B6B6B, phys(b)[3]);
  check_eq("old frame untouched", 0x61000003, phys(a)[3]);

  paging_map(kSwapPage, c, PTE_P | PTE_RW);
  (void)page[2];
  paging_reload_cr3();
  check_eq("after a CR3 reload", 0x63000002, page[2]);

  paging_map(kSwapPage, 0, 0);
  paging_invlpg(kSwapPage);
  want.physical = a;
  want.flags = PTE_P | PTE_RW;
  expect_fault("unmapped", kSwapPage + 8, 0, probe_read_insn, map_expected);
  check_eq("remapped after the fault", 0x61000002, probe_read(kSwapPage + 8));
  check_eq("faults after unmapping", 1, faults.count);
  expect_none();
  check_group("6 invalidation: invlpg and a CR3 reload make changed PTEs take effect");
}

// ---- 7 ----

static void test_large_pages(void) {
  // kLargeBase onto physical 4 MiB, the next 4 MiB onto physical 0.
  const uint32_t low = kLargeBase + kLargePageSize;
  paging_map_large(kLargeBase, kLargePageSize, PTE_P | PTE_RW);
  paging_map_large(low, 0, PTE_P | PTE_RW);
  check_eq("CR4.PSE", CR4_PSE, paging_read_cr4() & CR4_PSE);
  volatile uint32_t *pde = paging_pde(kLargeBase), *pde_low = paging_pde(low);
  check_ad("PDE fresh", pde, 0);

  uint32_t known = low + guest_addr(kKnown);
  for (int i = 0; i < 4; i++) check_eq("image through a 4 MiB page", kKnown[i], lin(known)[i]);
  check_ad("low PDE after a read", pde_low, PTE_A);

  phys(kLargePageSize + 0x1234 * 4)[0] = 0x77777777;
  check_eq("read at physical 4 MiB + offset", 0x77777777, lin(kLargeBase)[0x1234]);
  check_ad("PDE after a read", pde, PTE_A);
  lin(kLargeBase)[0x1235] = 0x7D7D7D7D;
  check_eq("write through the 4 MiB page", 0x7D7D7D7D, phys(kLargePageSize)[0x1235]);
  check_ad("PDE after a write", pde, PTE_A | PTE_D);

  // A dword across the two 4 MiB pages: physical 0x7ffffe and 0.
  phys(kPagingIdentityEnd - 4)[0] = 0x44332211;
  lin(low)[0] = 0x88776655;  // physical 0, not present in the identity map
  check_eq("load across 4 MiB pages", 0x66554433, *lin(kLargeBase + kLargePageSize - 2));

  *pde &= ~(PTE_A | PTE_D);
  paging_invlpg(kLargeBase);
  check_eq("read after clear, invlpg", 0x77777777, lin(kLargeBase)[0x1234]);
  check_ad("PDE after clear, invlpg, read", pde, PTE_A);
  check_group("7 4 MiB pages: CR4.PSE, offsets within the page, A/D in the PDE");
}

// ---- 8 ----

// rep movsd with ESI, EDI, ECX from the arguments; what they were after it
// ends up in movs_after.
void copy_dwords(uint32_t dst, uint32_t src, uint32_t count);
extern const char movsd_insn[];
uint32_t movs_after[3];  // ECX, ESI, EDI
__asm__(
    ".pushsection .text\n"
    ".globl copy_dwords, movsd_insn\n"
    "copy_dwords:\n"
    "  push %esi\n"
    "  push %edi\n"
    "  mov 12(%esp), %edi\n"
    "  mov 16(%esp), %esi\n"
    "  mov 20(%esp), %ecx\n"
    "  cld\n"
    "movsd_insn:\n"
    "  rep movsl\n"
    "  mov %ecx, movs_after\n"
    "  mov %esi, movs_after+4\n"
    "  mov %edi, movs_after+8\n"
    "  pop %edi\n"
    "  pop %esi\n"
    "  ret\n"
    ".popsection\n");

static uint32_t source_words[16];
static uint32_t dest_words[16];

// Copies `count` dwords, faulting once on the page at `missing` after
// `done` iterations.
static void check_movsd(const char *what, uint32_t dst, uint32_t src, uint32_t count,
                        uint32_t missing, uint32_t done, uint32_t error_code, uint32_t frame) {
  want.physical = frame;
  want.flags = PTE_P | PTE_RW;
  expect_fault(what, missing, error_code, movsd_insn, map_expected);
  copy_dwords(dst, src, count);
  const struct guest_trap_frame *f = &faults.frame;
  guest_printf("%s: #PF cr2 base+0x%x error 0x%x ecx %u esi src+%u edi dst+%u\n", what,
               missing - kMovsBase, f->error_code, f->ecx, f->esi - src, f->edi - dst);
  check_eq("faults", 1, faults.count);
  check_eq("ECX at the fault", count - done, f->ecx);
  check_eq("ESI at the fault", src + 4 * done, f->esi);
  check_eq("EDI at the fault", dst + 4 * done, f->edi);
  check_eq("ECX after", 0, movs_after[0]);
  check_eq("ESI after", src + 4 * count, movs_after[1]);
  check_eq("EDI after", dst + 4 * count, movs_after[2]);
  expect_none();
}

static void test_rep_movsd(void) {
  for (uint32_t i = 0; i < 16; i++) source_words[i] = 0x88000000 + i;
  uint32_t src = guest_addr(source_words), dst = guest_addr(dest_words);

  // The destination runs into a not-present page after 6 dwords.
  uint32_t d0 = take_frame(0), d1 = take_frame(0);
  paging_map(kMovsBase, d0, PTE_P | PTE_RW);
  check_movsd("movsd dst", kMovsBase + kPageSize - 24, src, 16, kMovsBase + kPageSize, 6, PFEC_W,
              d1);
  for (uint32_t i = 0; i < 6; i++) check_eq("first page", 0x88000000 + i, phys(d0)[kWords - 6 + i]);
  for (uint32_t i = 6; i < 16; i++) check_eq("second page", 0x88000000 + i, phys(d1)[i - 6]);

  // The source runs into a not-present page after 10 dwords.
  uint32_t s0 = take_frame(0x8A000000), s1 = take_frame(0x8B000000);
  paging_map(kMovsBase + 2 * kPageSize, s0, PTE_P | PTE_RW);
  check_movsd("movsd src", dst, kMovsBase + 3 * kPageSize - 40, 16, kMovsBase + 3 * kPageSize, 10,
              0, s1);
  for (uint32_t i = 0; i < 10; i++) {
    check_eq("from page 1", 0x8A000000 + kWords - 10 + i, dest_words[i]);
  }
  for (uint32_t i = 10; i < 16; i++) check_eq("from page 2", 0x8B000000 + i - 10, dest_words[i]);

  // A misaligned destination: the third dword straddles into the missing
  // page, and CR2 is that page's first byte.
  uint32_t m0 = take_frame(0), m1 = take_frame(0);
  paging_map(kMovsBase + 4 * kPageSize, m0, PTE_P | PTE_RW);
  check_movsd("movsd split", kMovsBase + 5 * kPageSize - 10, src, 8, kMovsBase + 5 * kPageSize, 2,
              PFEC_W, m1);
  const volatile uint8_t *tail = (const volatile uint8_t *)phys(m0) + kPageSize - 10;
  const volatile uint8_t *head = (const volatile uint8_t *)phys(m1);
  uint32_t straddler = tail[8] | tail[9] << 8 | head[0] << 16 | (uint32_t)head[1] << 24;
  check_eq("straddling dword", 0x88000002, straddler);
  check_eq("last dword", 0x88000007, *(const volatile uint32_t *)(head + 18));
  check_group("8 rep movsd: #PF mid-string leaves ECX/ESI/EDI at the progress, then completes");
}

// ---- 9 ----

static void test_fetch(void) {
  uint32_t e0 = take_code_frame(0x100, 0x9E7C0DE1), e1, e2;
  take_straddling_frames(0x51DE0FF5, &e1, &e2);

  const uint32_t target = kExecBase + 0x100;
  want.physical = e0;
  want.flags = PTE_P | PTE_RW;
  expect_fault("fetch", target, 0, (const void *)(uintptr_t)target, map_expected);
  uint32_t value = ((value_fn)(uintptr_t)target)();
  const struct guest_trap_frame *f = &faults.frame;
  guest_printf("fetch: #PF cr2 base+0x%x error 0x%x eip base+0x%x\n", target - kExecBase,
               f->error_code, f->eip - kExecBase);
  check_eq("fetch faults", 1, faults.count);
  check_eq("code ran after the fix", 0x9E7C0DE1, value);

  // A mov from a present page into a not-present one.
  paging_map(kExecBase + kPageSize, e1, PTE_P | PTE_RW);
  const uint32_t start = kExecBase + 2 * kPageSize - 4, missing = kExecBase + 2 * kPageSize;
  want.physical = e2;
  expect_fault("split fetch", missing, 0, (const void *)(uintptr_t)(start + 2), map_expected);
  value = ((value_fn)(uintptr_t)start)();
  guest_printf("split fetch: #PF cr2 base+0x%x error 0x%x eip base+0x%x\n", missing - kExecBase,
               f->error_code, f->eip - kExecBase);
  check_eq("split fetch faults", 1, faults.count);
  check_eq("split instruction ran after the fix", 0x51DE0FF5, value);
  expect_none();
  check_group("9 fetch: #PF on a jump into a not-present page and on a straddling instruction");
}

// ---- 10 ----

uint32_t smc_value(void);
extern char smc_value_imm[];
__asm__(
    ".pushsection .text\n"
    ".balign 16\n"  // the immediate stays within one page
    ".globl smc_value, smc_value_imm\n"
    "smc_value:\n"
    "  mov $0x11111111, %eax\n"
    "  ret\n"
    "smc_value_imm = smc_value + 1\n"
    ".popsection\n");

static void test_smc_alias(void) {
  const uint32_t imm = guest_addr(smc_value_imm);
  const uint32_t alias = kSmcAlias + (imm & 0xFFF);
  const uint32_t alias_fn = kSmcAlias + (guest_addr(smc_value) & 0xFFF);
  paging_map(kSmcAlias, imm, PTE_P | PTE_RW);
  check_eq("before patching", 0x11111111, smc_value());
  for (uint32_t v = 1; v <= 4; v++) {
    *lin(alias) = v * 0x01010101;  // a write through the alias
    check_eq("identity view of the code", v * 0x01010101, *(volatile uint32_t *)smc_value_imm);
    check_eq("call after patching through the alias", v * 0x01010101, smc_value());
  }
  // The other way round: patch at the original address, run the alias.
  check_eq("call through the alias", 4 * 0x01010101, ((value_fn)(uintptr_t)alias_fn)());
  *(volatile uint32_t *)smc_value_imm = 0x5A5A5A5A;
  check_eq("alias call after patching the original", 0x5A5A5A5A, ((value_fn)(uintptr_t)alias_fn)());
  check_eq("original call", 0x5A5A5A5A, smc_value());
  *(volatile uint32_t *)smc_value_imm = 0x11111111;
  check_group("10 self-modifying code: a patch through one linear alias seen through another");
}

int main(void) {
  guest_load_flat_gdt();
  guest_idt_init();
  page_faults_checked();
  test_identity();
  test_alias();
  test_demand();
  test_accessed_dirty();
  test_write_protect();
  test_invalidation();
  test_large_pages();
  test_rep_movsd();
  test_fetch();
  test_smc_alias();
  return check_finish();
}
