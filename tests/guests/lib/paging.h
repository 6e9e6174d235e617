// 32-bit paging for test guests (SDM Vol. 3A 4.3): page directories and page
// tables in statically allocated, 4 KiB-aligned memory inside the guest's
// image, which the guest can always write because the first 8 MiB of linear
// memory map onto themselves (the image, loaded at 1 MiB, and its stack lie
// there). Linear page 0 stays not present in a 4 KiB identity map, so a null
// pointer raises #PF.
//
// The identity map's page tables are shared by every directory, so mapping a
// page below 8 MiB changes every address space; test windows belong above.
// paging_map() and paging_map_large() only write entries: invalidating what
// the TLB may hold for a changed entry is the caller's job (SDM Vol. 3A
// 4.10.4), except that a not-present entry made present needs nothing
// (4.10.4.3). A broken invariant here (out of tables, a 4 KiB mapping under
// a 4 MiB page) fails the run.
#pragma once

#include "guest.h"

// Paging-structure entry flags (SDM Vol. 3A 4.3, tables 4-5 to 4-7). PS is
// only meaningful in a PDE, where it maps a 4 MiB page (with CR4.PSE); D and
// G only in a PTE or a PDE that maps a 4 MiB page.
enum {
  PTE_P = 1 << 0,
  PTE_RW = 1 << 1,
  PTE_US = 1 << 2,
  PTE_PWT = 1 << 3,
  PTE_PCD = 1 << 4,
  PTE_A = 1 << 5,
  PTE_D = 1 << 6,
  PTE_PS = 1 << 7,
  PTE_G = 1 << 8,
};

// Page-fault error code (SDM Vol. 3A 4.7, figure 4-12). I is reported only
// with NX (PAE paging and EFER.NXE, paging_pae.h) or CR4.SMEP.
enum {
  PFEC_P = 1 << 0,     // 0: not-present page; 1: protection violation
  PFEC_W = 1 << 1,     // the access was a write
  PFEC_U = 1 << 2,     // the access was made in user mode (CPL 3)
  PFEC_RSVD = 1 << 3,  // a reserved bit was set in a paging-structure entry
  PFEC_I = 1 << 4,     // instruction fetch
};

// Control register bits (SDM Vol. 3A 2.5).
enum {
  CR0_WP = 1u << 16,
  CR0_PG = 1u << 31,
  CR4_PSE = 1u << 4,
  CR4_PAE = 1u << 5,
  CR4_PGE = 1u << 7,
};

enum {
  kPageSize = 0x1000,
  kLargePageSize = 0x400000,
  kPagingIdentityEnd = 0x800000,  // [0, 8 MiB) maps onto itself
};

// Builds the first directory: [0, 8 MiB) onto itself with `identity_flags`
// (PTE_P | PTE_RW at least; with PTE_PS as two 4 MiB pages, which include
// page 0, else as 4 KiB pages), and makes it the current one. Call once,
// before anything else here.
void paging_init(uint32_t identity_flags);
// A new directory holding only the identity map (sharing its page tables).
uint32_t *paging_new_directory(void);
// The directory that paging_map*, paging_pte and paging_pde work on, and
// that paging_enable and paging_reload_cr3 load.
uint32_t *paging_current(void);
void paging_select(uint32_t *directory);

// Maps the 4 KiB page at `linear` onto `physical` (both rounded down to a
// page) with `flags` (PTE_P unset: a not-present entry), taking a fresh page
// table when the PDE has none. PDEs made here carry P and RW; the PTE alone
// decides access.
void paging_map(uint32_t linear, uint32_t physical, uint32_t flags);
// Maps the 4 MiB page at `linear` onto `physical` (both 4 MiB-aligned) with
// `flags` | PTE_PS, and sets CR4.PSE if paging is already on.
void paging_map_large(uint32_t linear, uint32_t physical, uint32_t flags);
// The entries translating `linear` in the current directory; paging_pte
// returns 0 when the PDE is not present or maps a 4 MiB page.
volatile uint32_t *paging_pde(uint32_t linear);
volatile uint32_t *paging_pte(uint32_t linear);

// Loads CR3 with the current directory, sets CR4.PSE if a 4 MiB page was
// mapped, then CR0.PG, and CR0.WP when `write_protect`.
void paging_enable(int write_protect);
// Loads CR3 with `directory` and makes it the current one.
void paging_load_cr3(uint32_t *directory);
// MOV to CR3 with its own value: flushes every non-global TLB entry.
void paging_reload_cr3(void);

static inline void paging_invlpg(uint32_t linear) {
  __asm__ volatile("invlpg (%0)" : : "r"(linear) : "memory");
}

static inline uint32_t paging_read_cr0(void) {
  uint32_t value;
  __asm__ volatile("mov %%cr0, %0" : "=r"(value));
  return value;
}

static inline void paging_write_cr0(uint32_t value) {
  __asm__ volatile("mov %0, %%cr0" : : "r"(value) : "memory");
}

// The linear address of the last #PF (SDM Vol. 3A 4.7).
static inline uint32_t paging_read_cr2(void) {
  uint32_t value;
  __asm__ volatile("mov %%cr2, %0" : "=r"(value));
  return value;
}

static inline uint32_t paging_read_cr3(void) {
  uint32_t value;
  __asm__ volatile("mov %%cr3, %0" : "=r"(value));
  return value;
}

static inline uint32_t paging_read_cr4(void) {
  uint32_t value;
  __asm__ volatile("mov %%cr4, %0" : "=r"(value));
  return value;
}

static inline void paging_write_cr4(uint32_t value) {
  __asm__ volatile("mov %0, %%cr4" : : "r"(value) : "memory");
}
