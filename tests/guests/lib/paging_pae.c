// PAE paging structures for test guests (see paging_pae.h). As in paging.c,
// everything lives in .bss below kPagingIdentityEnd.
#include "paging_pae.h"

enum {
  kEntries = 512,
  kTables = 16,
  kIdentityTables = kPagingIdentityEnd / kPaeLargePageSize,
  kPdeTableFlags = PTE_P | PTE_RW,
};

// The physical-address bits of an entry that maps a 4 KiB page or a table
// (4.4.2, tables 4-8 to 4-11): up to 36 of them, so that a test can set
// bits a 32-bit physical address space reserves.
static const uint64_t kAddressMask = 0x0000000FFFFFF000ull;

extern char __bss_end[];  // guest.ld

static uint64_t pdpt[4] __attribute__((aligned(32)));
static uint64_t directories[4][kEntries] __attribute__((aligned(kPageSize)));
static uint64_t tables[kTables][kEntries] __attribute__((aligned(kPageSize)));
static unsigned tables_used;

__attribute__((noreturn)) static void fatal(const char *what) {
  check_fail("paging_pae: %s", what);
  guest_exit(check_finish());
}

static uint64_t *new_table(void) {
  if (tables_used == kTables) fatal("out of page tables");
  return tables[tables_used++];
}

void paging_pae_init(void) {
  if (tables_used != 0) fatal("paging_pae_init called twice");
  if (guest_addr(__bss_end) > kPagingIdentityEnd) fatal("image ends above the identity map");
  // PDPTEs have no R/W or U/S: bits 2:1 are reserved (4.4.1, table 4-8).
  for (int i = 0; i < 4; i++) pdpt[i] = guest_addr(directories[i]) | PTE_P;
  for (uint32_t t = 0; t < kIdentityTables; t++) {
    uint64_t *table = new_table();
    for (uint32_t i = 0; i < kEntries; i++) {
      table[i] = (t * kPaeLargePageSize + i * kPageSize) | PTE_P | PTE_RW;
    }
    directories[0][t] = guest_addr(table) | kPdeTableFlags;
  }
  tables[0][0] = 0;  // page 0 not present
}

void paging_pae_enable(void) {
  paging_write_cr4(paging_read_cr4() | CR4_PAE);
  __asm__ volatile("mov %0, %%cr3" : : "r"(guest_addr(pdpt)) : "memory");
  paging_write_cr0((paging_read_cr0() | CR0_PG) & ~CR0_WP);
}

volatile uint64_t *paging_pae_pdpte(uint32_t linear) { return &pdpt[linear >> 30]; }

volatile uint64_t *paging_pae_pde(uint32_t linear) {
  return &directories[linear >> 30][(linear >> 21) & (kEntries - 1)];
}

volatile uint64_t *paging_pae_pte(uint32_t linear) {
  uint64_t pde = *paging_pae_pde(linear);
  if (!(pde & PTE_P) || (pde & PTE_PS)) return 0;
  uint64_t *table = (uint64_t *)(uintptr_t)(pde & kAddressMask);
  return &table[(linear >> 12) & (kEntries - 1)];
}

void paging_pae_map(uint32_t linear, uint64_t physical, uint64_t flags) {
  volatile uint64_t *pde = paging_pae_pde(linear);
  if ((*pde & (PTE_P | PTE_PS)) == (PTE_P | PTE_PS)) fatal("4 KiB mapping under a 2 MiB page");
  if (!(*pde & PTE_P)) *pde = guest_addr(new_table()) | kPdeTableFlags;
  *paging_pae_pte(linear) = (physical & kAddressMask) | (flags & ~(uint64_t)PTE_PS);
}

void paging_pae_map_large(uint32_t linear, uint64_t physical, uint64_t flags) {
  if ((linear | physical) & (kPaeLargePageSize - 1)) fatal("2 MiB page not 2 MiB-aligned");
  *paging_pae_pde(linear) = physical | flags | PTE_PS;
}
