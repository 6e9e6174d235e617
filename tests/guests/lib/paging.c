// 32-bit paging structures for test guests (see paging.h). Everything lives
// in .bss, below kPagingIdentityEnd, so the guest reaches its paging
// structures at their physical addresses whether paging is on or off.
#include "paging.h"

enum {
  kEntries = 1024,
  kDirectories = 4,
  kTables = 12,
  kIdentityPdes = kPagingIdentityEnd / kLargePageSize,
  kPdeTableFlags = PTE_P | PTE_RW | PTE_US,  // the PTEs decide what ring 3 may do
  kAddressMask = 0xFFFFF000u,
  kLargeAddressMask = 0xFFC00000u,
};

extern char __bss_end[];  // guest.ld

static uint32_t directories[kDirectories][kEntries] __attribute__((aligned(kPageSize)));
static uint32_t tables[kTables][kEntries] __attribute__((aligned(kPageSize)));
static unsigned directories_used, tables_used;
static uint32_t *current;
static int large_pages_used;

__attribute__((noreturn)) static void fatal(const char *what) {
  check_fail("paging: %s", what);
  guest_exit(check_finish());
}

static int paging_on(void) { return (paging_read_cr0() & CR0_PG) != 0; }

static uint32_t *new_table(void) {
  if (tables_used == kTables) fatal("out of page tables");
  return tables[tables_used++];
}

void paging_init(uint32_t identity_flags) {
  if (directories_used != 0) fatal("paging_init called twice");
  if (guest_addr(__bss_end) > kPagingIdentityEnd) fatal("image ends above the identity map");
  current = directories[directories_used++];
  for (uint32_t pde = 0; pde < kIdentityPdes; pde++) {
    uint32_t base = pde * kLargePageSize;
    if (identity_flags & PTE_PS) {
      current[pde] = base | identity_flags;
      large_pages_used = 1;
      continue;
    }
    uint32_t *table = new_table();
    for (uint32_t i = 0; i < kEntries; i++) table[i] = (base + i * kPageSize) | identity_flags;
    current[pde] = guest_addr(table) | kPdeTableFlags;
  }
  if (!(identity_flags & PTE_PS)) tables[0][0] = 0;  // page 0 not present
}

uint32_t *paging_new_directory(void) {
  if (directories_used == kDirectories) fatal("out of page directories");
  uint32_t *directory = directories[directories_used++];
  for (uint32_t pde = 0; pde < kIdentityPdes; pde++) directory[pde] = directories[0][pde];
  return directory;
}

uint32_t *paging_current(void) { return current; }
void paging_select(uint32_t *directory) { current = directory; }

volatile uint32_t *paging_pde(uint32_t linear) { return &current[linear >> 22]; }

volatile uint32_t *paging_pte(uint32_t linear) {
  uint32_t pde = *paging_pde(linear);
  if (!(pde & PTE_P) || (pde & PTE_PS)) return 0;
  uint32_t *table = (uint32_t *)(uintptr_t)(pde & kAddressMask);
  return &table[(linear >> 12) & (kEntries - 1)];
}

void paging_map(uint32_t linear, uint32_t physical, uint32_t flags) {
  volatile uint32_t *pde = paging_pde(linear);
  if ((*pde & (PTE_P | PTE_PS)) == (PTE_P | PTE_PS)) fatal("4 KiB mapping under a 4 MiB page");
  if (!(*pde & PTE_P)) *pde = guest_addr(new_table()) | kPdeTableFlags;
  *paging_pte(linear) = (physical & kAddressMask) | (flags & ~PTE_PS);
}

void paging_map_large(uint32_t linear, uint32_t physical, uint32_t flags) {
  if ((linear | physical) & ~kLargeAddressMask) fatal("4 MiB page not 4 MiB-aligned");
  *paging_pde(linear) = physical | flags | PTE_PS;
  large_pages_used = 1;
  if (paging_on()) paging_write_cr4(paging_read_cr4() | CR4_PSE);
}

void paging_enable(int write_protect) {
  paging_load_cr3(current);
  if (large_pages_used) paging_write_cr4(paging_read_cr4() | CR4_PSE);
  uint32_t cr0 = paging_read_cr0() | CR0_PG;
  cr0 = write_protect ? cr0 | CR0_WP : cr0 & ~CR0_WP;
  paging_write_cr0(cr0);
}

void paging_load_cr3(uint32_t *directory) {
  current = directory;
  __asm__ volatile("mov %0, %%cr3" : : "r"(guest_addr(directory)) : "memory");
}

void paging_reload_cr3(void) {
  __asm__ volatile("mov %0, %%cr3" : : "r"(paging_read_cr3()) : "memory");
}
