// Address spaces under 32-bit paging (SDM Vol. 3A 4.3, 4.10.4):
//  1. two page directories map the same linear page onto different frames;
//     MOV to CR3 switches between them, each sees and writes its own frame;
//  2. a page present in one address space only faults in the other; a PTE
//     edited while its directory is not loaded takes effect once it is;
//  3. global pages (CR4.PGE, 4.10.2.4): a G page shared by both directories
//     maps correctly across CR3 loads; after its PTE changes, toggling
//     CR4.PGE (which flushes every TLB entry, global ones included) or
//     INVLPG (which invalidates global entries too) makes the change seen;
//     with CR4.PGE=0 the G flag is ignored, so a CR3 reload flushes the page.
// The identity map uses 4 MiB global pages here, as kernels map themselves.
//
// Not checked: whether a global entry survives a CR3 load (the TLB may drop
// any entry at any time, 4.10.4.1), so a G page's PTE is only changed
// before a flush that also covers global entries.
#include "guest.h"
#include "idt.h"
#include "paging.h"

enum {
  kPfVector = 14,
  kSpacePage = 0x50000000,    // different frames in each directory
  kPrivatePage = 0x50001000,  // present in the second directory only
  kGlobalPage = 0x60000000,   // one G page, same page table in both
  kSwitches = 16,
  kWords = kPageSize / 4,
};

static uint32_t frames[6][kWords] __attribute__((aligned(kPageSize)));

static volatile uint32_t *lin(uint32_t linear) { return (volatile uint32_t *)(uintptr_t)linear; }

static void fill(unsigned frame, uint32_t value) {
  for (uint32_t i = 0; i < kWords; i++) frames[frame][i] = value + i;
}

static uint32_t frame_addr(unsigned frame) { return guest_addr(frames[frame]); }

// A frame's word at its physical address. Volatile: the compiler cannot
// know that the stores through a test window land in `frames`.
static uint32_t word(unsigned frame, unsigned i) { return ((volatile uint32_t *)frames[frame])[i]; }

// The only #PF expected: a read of kPrivatePage while the first directory
// is loaded; the handler loads the second one, where the page is present.
static uint32_t *second;
static volatile unsigned faults;

static void page_fault(struct guest_trap_frame *f) {
  uint32_t cr2 = paging_read_cr2();
  faults++;
  if (cr2 != kPrivatePage + 4 || f->error_code != 0 || faults > 1) {
    check_fail("#PF cr2 %08x error %x eip %08x", cr2, f->error_code, f->eip);
    guest_exit(check_finish());
  }
  paging_load_cr3(second);
}

static void test_switch(uint32_t *first) {
  check_eq("CR3 after switching to the second", guest_addr(second), paging_read_cr3());
  for (unsigned i = 0; i < kSwitches; i++) {
    paging_load_cr3(first);
    check_eq("first space reads its frame", 0x10000000 + 2 * i, lin(kSpacePage)[2 * i]);
    lin(kSpacePage)[2 * i] = 0xF1000000 + i;
    paging_load_cr3(second);
    check_eq("second space reads its frame", 0x20000000 + 2 * i, lin(kSpacePage)[2 * i]);
    lin(kSpacePage)[2 * i] = 0xF2000000 + i;
  }
  for (unsigned i = 0; i < kSwitches; i++) {
    check_eq("writes in the first space", 0xF1000000 + i, word(0, 2 * i));
    check_eq("writes in the second space", 0xF2000000 + i, word(1, 2 * i));
    check_eq("second space, back in its frame", 0xF2000000 + i, lin(kSpacePage)[2 * i]);
  }
  check_eq("CR3", guest_addr(second), paging_read_cr3());
  check_group("1 CR3 switch: one linear page, a different frame in each directory");
}

static void test_private(uint32_t *first) {
  check_eq("present in the second space", 0x30000001, lin(kPrivatePage)[1]);
  paging_load_cr3(first);
  faults = 0;
  // The handler switches to the second directory; the read then retries.
  check_eq("read after the #PF", 0x30000001, lin(kPrivatePage)[1]);
  check_eq("faults in the first space", 1, faults);
  check_eq("CR3 after the handler", guest_addr(second), paging_read_cr3());

  // Edit the second directory's PTE while the first is loaded.
  paging_load_cr3(first);
  paging_select(second);
  paging_map(kSpacePage, frame_addr(2), PTE_P | PTE_RW);
  paging_select(first);
  check_eq("first space unaffected", 0xF1000000, lin(kSpacePage)[0]);
  paging_load_cr3(second);
  check_eq("second space sees the edit", 0x30000000, lin(kSpacePage)[0]);
  check_group("2 per-space pages: not present in one, edits to an unloaded directory");
}

static void test_global(uint32_t *first) {
  paging_load_cr3(first);
  paging_write_cr4(paging_read_cr4() | CR4_PGE);
  check_eq("CR4.PGE", CR4_PGE, paging_read_cr4() & CR4_PGE);
  volatile uint32_t *pte = paging_pte(kGlobalPage);
  check_eq("G page", 0x40000005, lin(kGlobalPage)[5]);
  for (unsigned i = 0; i < 4; i++) {
    paging_load_cr3(i % 2 ? first : second);
    check_eq("G page after a CR3 load", 0x40000005, lin(kGlobalPage)[5]);
    paging_reload_cr3();
    check_eq("G page after a CR3 reload", 0x40000005, lin(kGlobalPage)[5]);
  }

  *pte = frame_addr(4) | PTE_P | PTE_RW | PTE_G;
  paging_write_cr4(paging_read_cr4() & ~CR4_PGE);
  paging_write_cr4(paging_read_cr4() | CR4_PGE);
  check_eq("after toggling CR4.PGE", 0x50000005, lin(kGlobalPage)[5]);
  lin(kGlobalPage)[6] = 0x6A6A6A6A;
  check_eq("write after toggling CR4.PGE", 0x6A6A6A6A, word(4, 6));

  *pte = frame_addr(5) | PTE_P | PTE_RW | PTE_G;
  paging_invlpg(kGlobalPage);
  check_eq("after invlpg of the G page", 0x60000005, lin(kGlobalPage)[5]);
  paging_load_cr3(second);
  check_eq("G page in the second space", 0x60000005, lin(kGlobalPage)[5]);

  // With PGE off, G is ignored and the page is an ordinary one.
  paging_write_cr4(paging_read_cr4() & ~CR4_PGE);
  *pte = frame_addr(3) | PTE_P | PTE_RW | PTE_G;
  paging_reload_cr3();
  check_eq("G ignored with CR4.PGE=0", 0x40000005, lin(kGlobalPage)[5]);
  check_eq("identity map still works", 0xF2000000, word(1, 0));
  check_group("3 global pages: correct across CR3 loads, flushed by PGE toggles and invlpg");
}

int main(void) {
  guest_load_flat_gdt();
  guest_idt_init();
  guest_idt_set(kPfVector, page_fault, kGuestInterruptGate, 0);
  fill(0, 0x10000000);
  fill(1, 0x20000000);
  fill(2, 0x30000000);
  fill(3, 0x40000000);
  fill(4, 0x50000000);
  fill(5, 0x60000000);

  paging_init(PTE_P | PTE_RW | PTE_PS | PTE_G);
  uint32_t *first = paging_current();
  paging_map(kSpacePage, frame_addr(0), PTE_P | PTE_RW);
  paging_map(kGlobalPage, frame_addr(3), PTE_P | PTE_RW | PTE_G);
  second = paging_new_directory();
  paging_select(second);
  paging_map(kSpacePage, frame_addr(1), PTE_P | PTE_RW);
  paging_map(kPrivatePage, frame_addr(2), PTE_P | PTE_RW);
  // The G page's page table is shared, as kernels share theirs.
  *paging_pde(kGlobalPage) = first[kGlobalPage >> 22];
  paging_select(first);
  paging_enable(1);
  paging_load_cr3(second);

  test_switch(first);
  test_private(first);
  test_global(first);
  return check_finish();
}
