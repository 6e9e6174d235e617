// Memory accesses at the edges: loads and stores of 2, 4, 8 and 16 bytes
// that cross a page boundary, 32-bit effective-address wraparound
// (base + disp and index * scale past 4 GiB), and 16-bit address-size
// wraparound at 64 KiB. Paging is off, so linear = physical and only RAM
// may be touched: the wrapped accesses land in low memory (kLow), which the
// guest owns once it has loaded its own GDT. Built with -msse2.
#include "guest.h"

enum { kPage = 4096, kLow = 0x7000 };

static uint8_t pages[2 * kPage] __attribute__((aligned(kPage)));

static void fill(void) {
  for (unsigned i = 0; i < sizeof(pages); i++) pages[i] = (uint8_t)(i * 31 + 7);
}

// Loads `size` bytes at p with one instruction of that width into out.
static void load(int size, const uint8_t *p, uint8_t out[16]) {
  switch (size) {
    case 2: {
      uint16_t v;
      __asm__ volatile("movw (%1), %0" : "=r"(v) : "r"(p) : "memory");
      memcpy(out, &v, 2);
      break;
    }
    case 4: {
      uint32_t v;
      __asm__ volatile("movl (%1), %0" : "=r"(v) : "r"(p) : "memory");
      memcpy(out, &v, 4);
      break;
    }
    case 8:
      __asm__ volatile("movq (%1), %%xmm0; movq %%xmm0, (%0)"
                       :
                       : "r"(out), "r"(p)
                       : "xmm0", "memory");
      break;
    case 16:
      __asm__ volatile("movdqu (%1), %%xmm0; movdqu %%xmm0, (%0)"
                       :
                       : "r"(out), "r"(p)
                       : "xmm0", "memory");
      break;
  }
}

// Stores `size` bytes from in at p with one instruction of that width.
static void store(int size, uint8_t *p, const uint8_t in[16]) {
  switch (size) {
    case 2: {
      uint16_t v;
      memcpy(&v, in, 2);
      __asm__ volatile("movw %1, (%0)" : : "r"(p), "r"(v) : "memory");
      break;
    }
    case 4: {
      uint32_t v;
      memcpy(&v, in, 4);
      __asm__ volatile("movl %1, (%0)" : : "r"(p), "r"(v) : "memory");
      break;
    }
    case 8:
      __asm__ volatile("movq (%1), %%xmm0; movq %%xmm0, (%0)"
                       :
                       : "r"(p), "r"(in)
                       : "xmm0", "memory");
      break;
    case 16:
      __asm__ volatile("movdqu (%1), %%xmm0; movdqu %%xmm0, (%0)"
                       :
                       : "r"(p), "r"(in)
                       : "xmm0", "memory");
      break;
  }
}

static void test_page_crossing(void) {
  static const int sizes[] = {2, 4, 8, 16};
  static const unsigned offsets[] = {kPage - 1, kPage - 2, kPage - 3};
  uint8_t got[16], pattern[16];
  for (int i = 0; i < 16; i++) pattern[i] = (uint8_t)(0xF0 - i);
  for (unsigned s = 0; s < ARRAY_SIZE(sizes); s++) {
    int size = sizes[s];
    for (unsigned k = 0; k < ARRAY_SIZE(offsets); k++) {
      unsigned off = offsets[k];
      fill();
      load(size, pages + off, got);
      if (memcmp(got, pages + off, size)) {
        check_fail("%d-byte load at page offset %u", size, off);
      }
      store(size, pages + off, pattern);
      if (memcmp(pages + off, pattern, size) || pages[off - 1] != (uint8_t)((off - 1) * 31 + 7) ||
          pages[off + size] != (uint8_t)((off + size) * 31 + 7)) {
        check_fail("%d-byte store at page offset %u", size, off);
      }
    }
  }

  // x87 and cmpxchg8b 8-byte accesses, a read-modify-write and a push,
  // all across the boundary.
  fill();
  uint64_t q, want;
  memcpy(&want, pages + kPage - 3, 8);
  __asm__ volatile("fildll %1; fistpll %0" : "=m"(q) : "m"(*(uint64_t *)(pages + kPage - 3)));
  check_eq64("fildll across pages", want, q);
  uint32_t lo = 0x11223344, hi = 0x55667788;
  __asm__ volatile("lock cmpxchg8b %0"
                   : "+m"(*(uint64_t *)(pages + kPage - 5)), "+a"(lo), "+d"(hi)
                   : "b"(0), "c"(0)
                   : "cc");
  memcpy(&want, pages + kPage - 5, 8);
  check_eq64("cmpxchg8b across pages (mismatch loads memory)", want, (uint64_t)hi << 32 | lo);

  uint32_t v;
  memcpy(&v, pages + kPage - 1, 4);
  __asm__ volatile("addl $0x01010101, %0" : "+m"(*(uint32_t *)(pages + kPage - 1)) : : "cc");
  uint32_t after;
  memcpy(&after, pages + kPage - 1, 4);
  check_eq("add to memory across pages", v + 0x01010101, after);

  uint32_t popped;
  __asm__ volatile(
      "mov %%esp, %%ecx; mov %1, %%esp; pushl $0xCAFEF00D;"
      "popl %0; mov %%ecx, %%esp"
      : "=r"(popped)
      : "r"(pages + kPage + 2)
      : "ecx", "memory");
  check_eq("push/pop across pages", 0xCAFEF00D, popped);
  memcpy(&v, pages + kPage - 2, 4);
  check_eq("push across pages stored", 0xCAFEF00D, v);
  check_group("memory: page-crossing accesses");
}

// Plain accesses to fixed low addresses, hidden from the compiler, which
// would otherwise treat pointers near 0 as null.
static uint32_t peek(uint32_t addr) {
  uint32_t v;
  __asm__ volatile("movl (%1), %0" : "=r"(v) : "r"(addr) : "memory");
  return v;
}

static void poke(uint32_t addr, uint32_t v) {
  __asm__ volatile("movl %1, (%0)" : : "r"(addr), "r"(v) : "memory");
}

static void test_wrap32(void) {
  uint32_t saved = peek(0x10);  // IVT entry 4: unused in protected mode
  uint32_t v;

  // base 0xFFFFFFF0 + disp 0x20 = 0x10.
  __asm__ volatile("movl $0x0BADCAFE, 0x20(%0)" : : "r"(0xFFFFFFF0u) : "memory");
  check_eq("store to base+disp past 4 GiB", 0x0BADCAFE, peek(0x10));
  __asm__ volatile("movl 0x20(%1), %0" : "=r"(v) : "r"(0xFFFFFFF0u) : "memory");
  check_eq("load from base+disp past 4 GiB", 0x0BADCAFE, v);
  poke(0x10, saved);

  for (int i = 0; i < 4; i++) poke(kLow + 4 * i, 0xA0000000u + i);
  // index * scale past 4 GiB: 0x20000000 * 8 = 2^32.
  __asm__ volatile("movl (%1,%2,8), %0" : "=r"(v) : "r"(kLow), "r"(0x20000000u) : "memory");
  check_eq("index*8 past 4 GiB", 0xA0000000, v);
  // base + index + disp: 0xFFFFFFFF + 0x7000 + 5 = 0x7004.
  __asm__ volatile("movl 5(%1,%2), %0" : "=r"(v) : "r"(0xFFFFFFFFu), "r"(kLow) : "memory");
  check_eq("base+index+disp past 4 GiB", 0xA0000001, v);
  // Negative index: 0x7008 + (-2) * 4 = 0x7000.
  __asm__ volatile("movl (%1,%2,4), %0" : "=r"(v) : "r"(kLow + 8), "r"(-2) : "memory");
  check_eq("negative index", 0xA0000000, v);
  // A read-modify-write through a wrapped address.
  __asm__ volatile("addl $0x10, -0x1000(%0)" : : "r"(kLow + 0x100C) : "memory", "cc");
  check_eq("add through base+negative disp", 0xA0000013, peek(kLow + 12));
  __asm__ volatile("leal 0x20(%1), %0" : "=r"(v) : "r"(0xFFFFFFF0u));
  check_eq("lea past 4 GiB", 0x10, v);
  check_group("memory: 32-bit effective-address wraparound");
}

static void test_wrap16(void) {
  for (int i = 0; i < 8; i++) poke(kLow + 4 * i, 0xB0000000u + i);
  uint32_t v;

  // [bx+si+disp] is computed modulo 64 KiB: 0xFFF0 + 0x7010 + 0x10 = 0x17010.
  __asm__ volatile(
      "movw $0xFFF0, %%bx; movw $0x7010, %%si;"
      "movl 0x10(%%bx,%%si), %0"
      : "=r"(v)
      :
      : "ebx", "esi", "memory");
  check_eq("[bx+si+disp] wraps at 64 KiB", 0xB0000004, v);
  __asm__ volatile(
      "movw $0x8000, %%bx; movw $0xF008, %%si;"
      "movl $0x5EED5EED, (%%bx,%%si)"
      :
      :
      : "ebx", "esi", "memory");
  check_eq("store to [bx+si] wraps at 64 KiB", 0x5EED5EED, peek(kLow + 8));
  // [bp+di-disp] below zero wraps to the top of the 64 KiB: 0xFFF0.
  poke(0xFFF0, 0x70B70B70);
  __asm__ volatile(
      "push %%ebp; movw $0x10, %%bp; movw $0, %%di;"
      "movl -0x20(%%bp,%%di), %0; pop %%ebp"
      : "=a"(v)
      :
      : "edi", "memory");
  check_eq("[bp+di-disp] wraps below 0", 0x70B70B70, v);
  // Only the address wraps: a dword at offset 0xFFFE reaches 0x10001.
  poke(0xFFFC, 0xE1E0FFFF);
  poke(0x10000, 0xFFFFE3E2);
  __asm__ volatile("movw $0xFFFE, %%bx; movl (%%bx), %0" : "=r"(v) : : "ebx", "memory");
  check_eq("dword at [bx=0xFFFE]", 0xE3E2E1E0, v);
  check_group("memory: 16-bit address-size wraparound");
}

int main(void) {
  guest_load_flat_gdt();
  guest_enable_sse();
  test_page_crossing();
  test_wrap32();
  test_wrap16();
  return check_finish();
}
