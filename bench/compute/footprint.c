// code_footprint: 4096 distinct small functions called through a table, in
// eight phases of 512. Real programs have far more code than a hot loop;
// this one translates to several MiB of host code, so a 1 MiB translation
// cache must evict between phases, while each phase still fits.
#include "compute.h"

enum { kFunctions = 4096, kPhases = 8, kCallsPerFunction = 2500 };

// Each function mixes its argument differently, with a data-dependent branch.
#define FN(n)                                                      \
  static __attribute__((noinline)) uint32_t fn##n(uint32_t x) {    \
    x ^= x >> ((n) % 13 + 1);                                      \
    x *= 0x9E3779B1u + (n);                                        \
    if (x & (1u << ((n) % 31))) return (x << 3 | x >> 29) + (n);   \
    return x - (n) * 7u;                                           \
  }
#define FN16(p)                                                           \
  FN(p##0) FN(p##1) FN(p##2) FN(p##3) FN(p##4) FN(p##5) FN(p##6) FN(p##7) \
  FN(p##8) FN(p##9) FN(p##a) FN(p##b) FN(p##c) FN(p##d) FN(p##e) FN(p##f)
#define FN256(p)                                                                \
  FN16(p##0) FN16(p##1) FN16(p##2) FN16(p##3) FN16(p##4) FN16(p##5) FN16(p##6) \
  FN16(p##7) FN16(p##8) FN16(p##9) FN16(p##a) FN16(p##b) FN16(p##c) FN16(p##d) \
  FN16(p##e) FN16(p##f)
FN256(0x0) FN256(0x1) FN256(0x2) FN256(0x3) FN256(0x4) FN256(0x5) FN256(0x6) FN256(0x7)
FN256(0x8) FN256(0x9) FN256(0xa) FN256(0xb) FN256(0xc) FN256(0xd) FN256(0xe) FN256(0xf)

#define REF16(p)                                                                  \
  fn##p##0, fn##p##1, fn##p##2, fn##p##3, fn##p##4, fn##p##5, fn##p##6, fn##p##7, \
  fn##p##8, fn##p##9, fn##p##a, fn##p##b, fn##p##c, fn##p##d, fn##p##e, fn##p##f,
#define REF256(p)                                                                          \
  REF16(p##0) REF16(p##1) REF16(p##2) REF16(p##3) REF16(p##4) REF16(p##5) REF16(p##6)     \
  REF16(p##7) REF16(p##8) REF16(p##9) REF16(p##a) REF16(p##b) REF16(p##c) REF16(p##d)     \
  REF16(p##e) REF16(p##f)
static uint32_t (*const functions[kFunctions])(uint32_t) = {
    REF256(0x0) REF256(0x1) REF256(0x2) REF256(0x3) REF256(0x4) REF256(0x5)
    REF256(0x6) REF256(0x7) REF256(0x8) REF256(0x9) REF256(0xa) REF256(0xb)
    REF256(0xc) REF256(0xd) REF256(0xe) REF256(0xf)};

uint32_t code_footprint(void) {
  uint32_t x = 12345, sum = 0;
  const unsigned per_phase = kFunctions / kPhases;
  for (unsigned phase = 0; phase < kPhases; phase++) {
    uint32_t (*const *first)(uint32_t) = functions + phase * per_phase;
    for (unsigned round = 0; round < kCallsPerFunction; round++) {
      for (unsigned i = 0; i < per_phase; i++) x = first[i](x);
    }
    sum = mix(sum, x);
  }
  return sum;
}
