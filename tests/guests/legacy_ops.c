// Instructions with no 64-bit encoding, which libbt emulates in C++: BCD
// adjustment (daa das aaa aas aam aad), salc, into, bound, arpl, and (guest
// only) far pointer loads, far call and far return. Each result is checked
// against a C model written from the SDM's pseudocode; the native build
// runs the same checks on the host CPU, which validates the model.
#include "guest.h"

// Flags the SDM defines for each instruction; the rest are undefined.
enum {
  kDaaFlags = CF | AF | ZF | SF | PF,
  kAaaFlags = CF | AF,
  kAamFlags = ZF | SF | PF,
};

struct Result {
  uint32_t eax;
  uint32_t flags;
};

static int parity_even(uint8_t v) { return !(__builtin_popcount(v) & 1); }

static uint32_t result_flags(uint8_t v) {
  return (v == 0 ? ZF : 0) | (v & 0x80 ? SF : 0) | (parity_even(v) ? PF : 0);
}

// Runs one BCD instruction with AX and the given CF/AF.
#define BCD_RUNNER(name, insn)                                                  \
  static struct Result name(uint32_t ax, uint32_t in_flags) {                  \
    struct Result r;                                                            \
    __asm__ volatile("push %2\n\tpopf\n\t" insn "\n\tpushf\n\tpop %1"          \
                     : "=a"(r.eax), "=r"(r.flags)                               \
                     : "r"(in_flags | 0x2), "0"(ax)                             \
                     : "cc");                                                   \
    return r;                                                                   \
  }
BCD_RUNNER(run_daa, "daa")
BCD_RUNNER(run_das, "das")
BCD_RUNNER(run_aaa, "aaa")
BCD_RUNNER(run_aas, "aas")
BCD_RUNNER(run_aam10, "aam $10")
BCD_RUNNER(run_aam7, "aam $7")
BCD_RUNNER(run_aad10, "aad $10")
BCD_RUNNER(run_aad3, "aad $3")
BCD_RUNNER(run_salc, ".byte 0xd6")

static struct Result model_daa(uint32_t ax, uint32_t f) {
  uint32_t al = ax & 0xFF, out = f & ~kDaaFlags, result = al;
  int cf = 0;
  if ((al & 0xF) > 9 || (f & AF)) {
    result = al + 6;
    cf = (f & CF) || result > 0xFF;
    out |= AF;
  }
  if (al > 0x99 || (f & CF)) {
    result += 0x60;
    cf = 1;
  } else {
    cf = 0;
  }
  out |= (cf ? CF : 0) | result_flags((uint8_t)result);
  return (struct Result){(ax & ~0xFFu) | (result & 0xFF), out};
}

static struct Result model_das(uint32_t ax, uint32_t f) {
  uint32_t al = ax & 0xFF, out = f & ~kDaaFlags, result = al;
  int cf = 0;
  if ((al & 0xF) > 9 || (f & AF)) {
    cf = (f & CF) || al < 6;
    result = al - 6;
    out |= AF;
  }
  if (al > 0x99 || (f & CF)) {
    result -= 0x60;
    cf = 1;
  }
  out |= (cf ? CF : 0) | result_flags((uint8_t)result);
  return (struct Result){(ax & ~0xFFu) | (result & 0xFF), out};
}

static struct Result model_aaa_aas(uint32_t ax, uint32_t f, int add) {
  int adjust = (ax & 0xF) > 9 || (f & AF);
  uint32_t low = ax & 0xFFFF;
  if (adjust) low = add ? low + 0x106 : low - 6 - 0x100;
  low = (low & 0xFF00) | (low & 0x0F);
  return (struct Result){(ax & ~0xFFFFu) | (low & 0xFFFF), (f & ~kAaaFlags) | (adjust ? CF | AF : 0)};
}

static struct Result model_aam(uint32_t ax, uint32_t f, uint8_t base) {
  uint8_t al = ax & 0xFF;
  return (struct Result){(ax & ~0xFFFFu) | (uint32_t)(al / base) << 8 | (al % base),
                         (f & ~kAamFlags) | result_flags(al % base)};
}

static struct Result model_aad(uint32_t ax, uint32_t f, uint8_t base) {
  uint8_t al = (uint8_t)((ax & 0xFF) + ((ax >> 8) & 0xFF) * base);
  return (struct Result){(ax & ~0xFFFFu) | al, (f & ~kAamFlags) | result_flags(al)};
}

static void check_result(const char *name, uint32_t ax, uint32_t f, struct Result want,
                         struct Result got, uint32_t defined) {
  if (want.eax != got.eax || (want.flags & defined) != (got.flags & defined)) {
    check_fail("%s ax=%04x flags=%03x: expected eax=%08x flags=%03x got eax=%08x flags=%03x", name,
               ax, f, want.eax, want.flags & defined, got.eax, got.flags & defined);
  }
}

static void test_bcd(void) {
  static const uint32_t kFlagInputs[] = {0, CF, AF, CF | AF};
  for (uint32_t ah = 0; ah < 256; ah += 51) {
    for (uint32_t al = 0; al < 256; al++) {
      for (unsigned i = 0; i < ARRAY_SIZE(kFlagInputs); i++) {
        const uint32_t ax = 0x12340000 | ah << 8 | al, f = kFlagInputs[i];
        check_result("daa", ax, f, model_daa(ax, f), run_daa(ax, f), kDaaFlags);
        check_result("das", ax, f, model_das(ax, f), run_das(ax, f), kDaaFlags);
        check_result("aaa", ax, f, model_aaa_aas(ax, f, 1), run_aaa(ax, f), kAaaFlags);
        check_result("aas", ax, f, model_aaa_aas(ax, f, 0), run_aas(ax, f), kAaaFlags);
        check_result("aam 10", ax, f, model_aam(ax, f, 10), run_aam10(ax, f), kAamFlags);
        check_result("aam 7", ax, f, model_aam(ax, f, 7), run_aam7(ax, f), kAamFlags);
        check_result("aad 10", ax, f, model_aad(ax, f, 10), run_aad10(ax, f), kAamFlags);
        check_result("aad 3", ax, f, model_aad(ax, f, 3), run_aad3(ax, f), kAamFlags);
        const struct Result salc = {(ax & ~0xFFu) | ((f & CF) ? 0xFF : 0), f | 0x2};
        check_result("salc", ax, f, salc, run_salc(ax, f), F_ARITH);
      }
    }
  }
  check_group("legacy: daa das aaa aas aam aad salc");
}

static void test_arpl_bound_into(void) {
  uint16_t selector = 0x0011;
  uint32_t zf;
  __asm__ volatile("arpl %2, %0\n\tsetz %b1" : "+m"(selector), "=q"(zf) : "r"((uint16_t)0x0003));
  check_eq("arpl memory raises RPL", 0x0013, selector);
  check_eq("arpl memory ZF", 1, zf & 1);
  uint32_t reg = 0xABCD0013;
  __asm__ volatile("arpl %w2, %w0\n\tsetz %b1" : "+r"(reg), "=q"(zf) : "r"(0x0001u));
  check_eq("arpl register keeps a higher RPL", 0xABCD0013, reg);
  check_eq("arpl register ZF", 0, zf & 1);

  static const int32_t bounds[2] = {-5, 100};
  for (int32_t index = -5; index <= 100; index += 15) {
    __asm__ volatile("bound %0, %1" : : "r"(index), "m"(bounds));
  }
  uint32_t value = 7;
  __asm__ volatile("xor %%eax, %%eax\n\tinto\n\tinc %0" : "+r"(value) : : "eax", "cc");
  check_eq("into without OF falls through", 8, value);
  check_group("legacy: arpl bound into");
}

#if !BT_GUEST_NATIVE
// Far transfers and far pointer loads need the guest's own flat GDT.
static void test_far(void) {
  guest_load_flat_gdt();
  static const struct {
    uint32_t offset;
    uint16_t selector;
  } __attribute__((packed)) far_pointer = {0x12345678, kGuestDataSelector};
  uint32_t got = 0;
  __asm__ volatile("push %%es\n\tles %1, %0\n\tpop %%es" : "=r"(got) : "m"(far_pointer));
  check_eq("les offset", 0x12345678, got);
  __asm__ volatile("push %%ds\n\tlds %1, %0\n\tpop %%ds" : "=r"(got) : "m"(far_pointer));
  check_eq("lds offset", 0x12345678, got);
  __asm__ volatile("lfs %1, %0" : "=r"(got) : "m"(far_pointer));
  check_eq("lfs offset", 0x12345678, got);
  __asm__ volatile("lgs %1, %0" : "=r"(got) : "m"(far_pointer));
  check_eq("lgs offset", 0x12345678, got);

  static uint32_t marker;  // not on the stack: ESP moves inside the call
  __asm__ volatile(
      "lcall %[cs], $1f\n\t"
      "jmp 2f\n"
      "1:\n\t"
      "movl $0x5a5a, %[marker]\n\t"
      "movl 4(%%esp), %%eax\n\t"
      "cmpl %[cs], %%eax\n\t"
      "jne 3f\n\t"
      "orl $1, %[marker]\n"
      "3:\n\t"
      "lret\n"
      "2:\n\t"
      : [marker] "+m"(marker)
      : [cs] "i"(kGuestCodeSelector)
      : "eax", "cc", "memory");
  check_eq("far call and return with CS pushed", 0x5a5b, marker);
  check_group("legacy: far pointer loads, far call and return");
}
#endif

int main(void) {
  test_bcd();
  test_arpl_bound_into();
#if !BT_GUEST_NATIVE
  test_far();
#endif
  return check_finish();
}
