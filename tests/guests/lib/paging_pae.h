// PAE paging for test guests (SDM Vol. 3A 4.4): a page-directory-pointer
// table of four entries, a page directory for each GiB, page tables, all
// with 64-bit entries, statically allocated in the guest's image. The flags,
// error-code bits and control-register helpers of paging.h apply, and so
// does its layout: [0, 8 MiB) maps onto itself with 4 KiB pages, page 0 not
// present, test windows belong above, and invalidation is the caller's job.
// There is one address space; a broken invariant (out of tables, a 4 KiB
// mapping under a 2 MiB page) fails the run.
#pragma once

#include "paging.h"

// Execute-disable: with EFER.NXE, no instruction fetch from the linear
// range an entry (PDE or PTE) maps; without it, a reserved bit (4.4.2).
#define PTE_NX (1ull << 63)

enum {
  kPaeLargePageSize = 0x200000,
  kMsrEfer = 0xC0000080,
  EFER_NXE = 1 << 11,
};

// Builds the PDPT, with all four entries present, and the identity map.
// Call once, before anything else here.
void paging_pae_init(void);
// Sets CR4.PAE, loads CR3 with the PDPT, then sets CR0.PG.
void paging_pae_enable(void);

// The entries translating `linear`; paging_pae_pte returns 0 when the PDE
// is not present or maps a 2 MiB page. CR3 holds the PDPT's address, which
// is paging_pae_pdpte(0).
volatile uint64_t *paging_pae_pdpte(uint32_t linear);
volatile uint64_t *paging_pae_pde(uint32_t linear);
volatile uint64_t *paging_pae_pte(uint32_t linear);

// Maps the 4 KiB page at `linear` onto `physical` with `flags`, taking a
// fresh page table when the PDE has none. PDEs made here carry P and RW
// only, so the PTE decides access.
void paging_pae_map(uint32_t linear, uint64_t physical, uint64_t flags);
// Maps the 2 MiB page at `linear` onto `physical` (both 2 MiB-aligned) with
// `flags` | PTE_PS; PAE needs no CR4.PSE for it.
void paging_pae_map_large(uint32_t linear, uint64_t physical, uint64_t flags);

static inline uint64_t paging_read_msr(uint32_t msr) {
  uint32_t lo, hi;
  __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
  return (uint64_t)hi << 32 | lo;
}

static inline void paging_write_msr(uint32_t msr, uint64_t value) {
  __asm__ volatile("wrmsr"
                   :
                   : "c"(msr), "a"((uint32_t)value), "d"((uint32_t)(value >> 32))
                   : "memory");
}
