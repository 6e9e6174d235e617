// String instructions: movs/stos/lods/cmps/scas in byte, word and dword
// sizes, with and without rep/repe/repne, forward (DF=0) and backward
// (DF=1), overlapping copies and ECX=0. Every case checks the final ESI, EDI,
// ECX and the flags as well as memory. Expected flags of a compare come from
// a plain cmp of the same operands (arith_flags checks cmp itself).
#include "guest.h"

struct sregs {
  uint32_t esi, edi, ecx, eax, eflags;
};

// Runs `insn` with the registers in r and EFLAGS = flags_in (which sets DF),
// then stores the registers and the arithmetic flags plus DF back into r.
#define RUN(insn, r, flags_in)                                           \
  __asm__ volatile("push %[fin]; popf;" insn "; pushf; pop %[fout]; cld" \
                   : "+S"((r).esi), "+D"((r).edi), "+c"((r).ecx),        \
                     "+a"((r).eax), [fout] "=&r"((r).eflags)             \
                   : [fin] "r"((uint32_t)(flags_in))                     \
                   : "memory", "cc");                                    \
  (r).eflags &= F_ARITH | DF

static uint8_t src[256], dst[256];
static uint8_t big_src[65536 + 16], big_dst[65536 + 16];

static void fill(uint8_t *p, unsigned n, uint8_t seed) {
  for (unsigned i = 0; i < n; i++) p[i] = (uint8_t)(seed + i * 7);
}

static void check_regs(const char *name, const struct sregs *r, uint32_t esi, uint32_t edi,
                       uint32_t ecx) {
  if (r->esi != esi) check_fail("%s esi expected %08x got %08x", name, esi, r->esi);
  if (r->edi != edi) check_fail("%s edi expected %08x got %08x", name, edi, r->edi);
  if (r->ecx != ecx) check_fail("%s ecx expected %08x got %08x", name, ecx, r->ecx);
}

static void check_flags(const char *name, const struct sregs *r, uint32_t flags) {
  if (r->eflags != flags) {
    check_fail("%s eflags expected %08x got %08x", name, flags, r->eflags);
  }
}

static void check_mem(const char *name, const uint8_t *got, const uint8_t *want, unsigned n) {
  for (unsigned i = 0; i < n; i++) {
    if (got[i] != want[i]) {
      check_fail("%s byte %u expected %02x got %02x", name, i, want[i], got[i]);
      return;
    }
  }
}

// The flags `cmp a, b` leaves for operands of `size` bytes.
static uint32_t cmp_flags(uint32_t a, uint32_t b, int size) {
  uint32_t flags;
  if (size == 1) {
    __asm__("cmpb %b2, %b1; pushf; pop %0" : "=r"(flags) : "q"(a), "q"(b));
  } else if (size == 2) {
    __asm__("cmpw %w2, %w1; pushf; pop %0" : "=r"(flags) : "r"(a), "r"(b));
  } else {
    __asm__("cmpl %2, %1; pushf; pop %0" : "=r"(flags) : "r"(a), "r"(b));
  }
  return flags & F_ARITH;
}

static void test_movs(void) {
  struct sregs r;
  uint8_t want[256];

  fill(src, 256, 1);
  memset(dst, 0, 256);
  r = (struct sregs){guest_addr(src), guest_addr(dst), 17, 0, 0};
  RUN("rep movsb", r, CF | ZF);
  check_regs("rep movsb", &r, guest_addr(src + 17), guest_addr(dst + 17), 0);
  check_flags("rep movsb", &r, CF | ZF);
  check_mem("rep movsb", dst, src, 17);
  check_true("rep movsb stops at count", dst[17] == 0);

  r = (struct sregs){guest_addr(src), guest_addr(dst), 9, 0, 0};
  RUN("rep movsw", r, 0);
  check_regs("rep movsw", &r, guest_addr(src + 18), guest_addr(dst + 18), 0);
  r = (struct sregs){guest_addr(src), guest_addr(dst), 5, 0, 0};
  RUN("rep movsl", r, 0);
  check_regs("rep movsd", &r, guest_addr(src + 20), guest_addr(dst + 20), 0);
  check_mem("rep movsd", dst, src, 20);

  // Backward: ESI/EDI start at the last element and step down.
  memset(dst, 0, 256);
  r = (struct sregs){guest_addr(src + 36), guest_addr(dst + 36), 10, 0, 0};
  RUN("rep movsl", r, DF);
  check_regs("std rep movsd", &r, guest_addr(src) - 4, guest_addr(dst) - 4, 0);
  check_flags("std rep movsd", &r, DF);
  check_mem("std rep movsd", dst, src, 40);
  r = (struct sregs){guest_addr(src + 9), guest_addr(dst + 9), 10, 0, 0};
  memset(dst, 0, 256);
  RUN("rep movsb", r, DF);
  check_regs("std rep movsb", &r, guest_addr(src) - 1, guest_addr(dst) - 1, 0);
  check_mem("std rep movsb", dst, src, 10);
  r = (struct sregs){guest_addr(src + 6), guest_addr(dst + 6), 4, 0, 0};
  RUN("rep movsw", r, DF);
  check_regs("std rep movsw", &r, guest_addr(src) - 2, guest_addr(dst) - 2, 0);

  // Overlap, forward with EDI = ESI + 1: each byte copies the one just
  // written, so the first byte repeats (no memmove semantics).
  fill(src, 256, 1);
  r = (struct sregs){guest_addr(src), guest_addr(src + 1), 32, 0, 0};
  RUN("rep movsb", r, 0);
  memset(want, 1, 33);
  check_mem("overlapping rep movsb", src, want, 33);
  check_true("overlapping rep movsb stops", src[33] == (uint8_t)(1 + 33 * 7));
  fill(src, 256, 1);
  r = (struct sregs){guest_addr(src), guest_addr(src + 4), 8, 0, 0};
  RUN("rep movsl", r, 0);
  for (int i = 0; i < 36; i++) want[i] = (uint8_t)(1 + (i % 4) * 7);
  check_mem("overlapping rep movsd", src, want, 36);
  // Overlap, backward: moving a block up by 3 from its end is a memmove.
  fill(src, 256, 1);
  fill(want, 256, 1);
  memmove(want + 3, want, 50);
  r = (struct sregs){guest_addr(src + 49), guest_addr(src + 52), 50, 0, 0};
  RUN("rep movsb", r, DF);
  check_mem("std overlapping rep movsb", src, want, 60);

  // ECX = 0: nothing moves, registers and flags stay.
  fill(src, 256, 1);
  memset(dst, 0, 256);
  r = (struct sregs){guest_addr(src), guest_addr(dst), 0, 0, 0};
  RUN("rep movsl", r, F_ARITH);
  check_regs("rep movsd ecx=0", &r, guest_addr(src), guest_addr(dst), 0);
  check_flags("rep movsd ecx=0", &r, F_ARITH);
  check_true("rep movsd ecx=0 writes nothing", dst[0] == 0);

  // Without rep: one element, ECX untouched.
  r = (struct sregs){guest_addr(src), guest_addr(dst), 77, 0, 0};
  RUN("movsw", r, 0);
  check_regs("movsw", &r, guest_addr(src + 2), guest_addr(dst + 2), 77);
  check_mem("movsw", dst, src, 2);

  // A long copy, which engines tend to split into chunks.
  fill(big_src, sizeof(big_src), 3);
  r = (struct sregs){guest_addr(big_src + 1), guest_addr(big_dst + 3), 65536 / 4, 0, 0};
  RUN("rep movsl", r, 0);
  check_regs("rep movsd 64k", &r, guest_addr(big_src + 65537), guest_addr(big_dst + 65539), 0);
  check_mem("rep movsd 64k", big_dst + 3, big_src + 1, 65536);
  check_group("string: movs");
}

static void test_stos(void) {
  struct sregs r;
  uint8_t want[64];

  memset(dst, 0, 256);
  r = (struct sregs){0, guest_addr(dst + 1), 13, 0xAB, 0};
  RUN("rep stosb", r, ZF);
  check_regs("rep stosb", &r, 0, guest_addr(dst + 14), 0);
  check_flags("rep stosb", &r, ZF);
  memset(want, 0, 64);
  memset(want + 1, 0xAB, 13);
  check_mem("rep stosb", dst, want, 20);

  r = (struct sregs){0, guest_addr(dst), 3, 0x1234, 0};
  RUN("rep stosw", r, 0);
  check_regs("rep stosw", &r, 0, guest_addr(dst + 6), 0);
  check_mem("rep stosw", dst, (const uint8_t *)"\x34\x12\x34\x12\x34\x12\xAB", 7);

  memset(dst, 0, 256);
  r = (struct sregs){0, guest_addr(dst + 8), 3, 0xDEADBEEF, 0};
  RUN("rep stosl", r, DF);
  check_regs("std rep stosd", &r, 0, guest_addr(dst) - 4, 0);
  check_mem("std rep stosd", dst,
            (const uint8_t *)"\xEF\xBE\xAD\xDE\xEF\xBE\xAD\xDE\xEF\xBE\xAD\xDE", 12);

  r = (struct sregs){0, guest_addr(dst + 100), 0, 0x55, 0};
  RUN("rep stosb", r, CF);
  check_regs("rep stosb ecx=0", &r, 0, guest_addr(dst + 100), 0);
  check_true("rep stosb ecx=0 writes nothing", dst[100] == 0);

  r = (struct sregs){0, guest_addr(dst + 100), 5, 0x77665544, 0};
  RUN("stosl", r, 0);
  check_regs("stosd", &r, 0, guest_addr(dst + 104), 5);
  check_eq("stosd value", 0x77665544, *(uint32_t *)(dst + 100));
  check_group("string: stos");
}

static void test_lods(void) {
  struct sregs r;

  fill(src, 256, 1);
  r = (struct sregs){guest_addr(src + 2), 0, 0, 0xFFFFFFFF, 0};
  RUN("lodsb", r, 0);
  check_regs("lodsb", &r, guest_addr(src + 3), 0, 0);
  check_eq("lodsb eax", 0xFFFFFF00 | src[2], r.eax);

  r = (struct sregs){guest_addr(src + 4), 0, 0, 0xFFFFFFFF, 0};
  RUN("lodsw", r, DF);
  check_regs("std lodsw", &r, guest_addr(src + 2), 0, 0);
  check_eq("std lodsw eax", 0xFFFF0000 | src[4] | src[5] << 8, r.eax);

  r = (struct sregs){guest_addr(src + 8), 0, 0, 0, 0};
  RUN("lodsl", r, 0);
  check_eq("lodsd eax", *(uint32_t *)(src + 8), r.eax);

  // rep lods is legal: EAX ends with the last element.
  r = (struct sregs){guest_addr(src), 0, 10, 0, 0};
  RUN("rep lodsb", r, 0);
  check_regs("rep lodsb", &r, guest_addr(src + 10), 0, 0);
  check_eq("rep lodsb eax", src[9], r.eax);
  check_group("string: lods");
}

static void test_cmps(void) {
  struct sregs r;

  fill(src, 256, 1);
  fill(dst, 256, 1);
  r = (struct sregs){guest_addr(src), guest_addr(dst), 40, 0, 0};
  RUN("repe cmpsb", r, CF);
  check_regs("repe cmpsb equal", &r, guest_addr(src + 40), guest_addr(dst + 40), 0);
  check_flags("repe cmpsb equal", &r, cmp_flags(src[39], dst[39], 1));

  // Stops after the first difference, which is included in the count.
  dst[5] = 0xFF;
  r = (struct sregs){guest_addr(src), guest_addr(dst), 40, 0, 0};
  RUN("repe cmpsb", r, 0);
  check_regs("repe cmpsb mismatch", &r, guest_addr(src + 6), guest_addr(dst + 6), 34);
  check_flags("repe cmpsb mismatch", &r, cmp_flags(src[5], 0xFF, 1));

  // repne: stops at the first equal element.
  memset(dst, 0, 256);
  dst[12] = src[12];
  r = (struct sregs){guest_addr(src), guest_addr(dst), 100, 0, 0};
  RUN("repne cmpsb", r, 0);
  check_regs("repne cmpsb", &r, guest_addr(src + 13), guest_addr(dst + 13), 87);
  check_flags("repne cmpsb", &r, ZF | PF);

  fill(dst, 256, 1);
  dst[20] ^= 0x80;  // in the word at 20 and the dword at 20
  r = (struct sregs){guest_addr(src), guest_addr(dst), 32, 0, 0};
  RUN("repe cmpsw", r, 0);
  check_regs("repe cmpsw", &r, guest_addr(src + 22), guest_addr(dst + 22), 21);
  check_flags("repe cmpsw", &r, cmp_flags(*(uint16_t *)(src + 20), *(uint16_t *)(dst + 20), 2));

  // Backward from the dword at 40 down to the one at 20.
  r = (struct sregs){guest_addr(src + 40), guest_addr(dst + 40), 32, 0, 0};
  RUN("repe cmpsl", r, DF);
  check_regs("std repe cmpsd", &r, guest_addr(src + 16), guest_addr(dst + 16), 26);
  check_flags("std repe cmpsd", &r,
              DF | cmp_flags(*(uint32_t *)(src + 20), *(uint32_t *)(dst + 20), 4));

  // ECX = 0 compares nothing and leaves the flags alone.
  r = (struct sregs){guest_addr(src), guest_addr(dst), 0, 0, 0};
  RUN("repe cmpsb", r, ZF | SF);
  check_regs("repe cmpsb ecx=0", &r, guest_addr(src), guest_addr(dst), 0);
  check_flags("repe cmpsb ecx=0", &r, ZF | SF);

  r = (struct sregs){guest_addr(src), guest_addr(dst), 9, 0, 0};
  RUN("cmpsl", r, 0);
  check_regs("cmpsd", &r, guest_addr(src + 4), guest_addr(dst + 4), 9);
  check_flags("cmpsd", &r, ZF | PF);
  check_group("string: cmps");
}

static void test_scas(void) {
  struct sregs r;
  static const char text[] = "hello, translated world";

  // The strlen idiom: repne scasb for 0 with ECX = -1.
  r = (struct sregs){0, guest_addr(text), 0xFFFFFFFF, 0, 0};
  RUN("repne scasb", r, 0);
  check_regs("repne scasb strlen", &r, 0, guest_addr(text + sizeof(text)),
             0xFFFFFFFF - sizeof(text));
  check_flags("repne scasb strlen", &r, ZF | PF);

  // Not found: runs out of ECX with ZF clear.
  r = (struct sregs){0, guest_addr(text), 5, 'z', 0};
  RUN("repne scasb", r, 0);
  check_regs("repne scasb not found", &r, 0, guest_addr(text + 5), 0);
  check_flags("repne scasb not found", &r, cmp_flags('z', 'o', 1));

  for (int i = 0; i < 16; i++) ((uint32_t *)dst)[i] = 0x01020304;
  ((uint32_t *)dst)[9] = 0x01020305;
  r = (struct sregs){0, guest_addr(dst), 16, 0x01020304, 0};
  RUN("repe scasl", r, 0);
  check_regs("repe scasd", &r, 0, guest_addr(dst + 40), 6);
  check_flags("repe scasd", &r, cmp_flags(0x01020304, 0x01020305, 4));

  // Backward word scan for 0x0304, from the word at 10 down to the one at 4.
  memset(dst, 0, 32);
  dst[4] = 0x04;
  dst[5] = 0x03;
  r = (struct sregs){0, guest_addr(dst + 10), 8, 0x0304, 0};
  RUN("repne scasw", r, DF);
  check_regs("std repne scasw", &r, 0, guest_addr(dst + 2), 4);
  check_flags("std repne scasw", &r, DF | ZF | PF);

  r = (struct sregs){0, guest_addr(dst), 0, 0, 0};
  RUN("repne scasb", r, CF | OF);
  check_regs("repne scasb ecx=0", &r, 0, guest_addr(dst), 0);
  check_flags("repne scasb ecx=0", &r, CF | OF);
  check_group("string: scas");
}

int main(void) {
  test_movs();
  test_stos();
  test_lods();
  test_cmps();
  test_scas();
  return check_finish();
}
