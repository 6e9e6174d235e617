// Bulk memory: copies and fills with rep movs/rep stos and with plain loops
// (built with -fno-tree-loop-distribute-patterns, so they stay loops).
#include "compute.h"

// 4 MiB buffers; rounds chosen for about 0.3 s each natively (fast-string
// rep movs/stos move far more bytes in that time than the loops).
enum {
  kWords = 1 << 20,
  kMovsRounds = 3200,
  kCopyRounds = 1100,
  kStosRounds = 7000,
  kFillRounds = 1100,
};

static uint32_t src[kWords], dst[kWords];

static uint32_t sample(const uint32_t *v) {
  uint32_t sum = 0;
  for (uint32_t i = 0; i < kWords; i += 1021) sum = mix(sum, v[i]);
  return sum;
}

static void init_src(void) {
  uint32_t seed = 3;
  for (uint32_t i = 0; i < kWords; i++) src[i] = lcg_next(&seed);
}

uint32_t rep_movs(void) {
  init_src();
  uint32_t sum = 0;
  for (int round = 0; round < kMovsRounds; round++) {
    // Shift by one word per round so every round moves different data.
    uint32_t skip = (uint32_t)round & 63;
    uint32_t *d = dst, count = kWords - skip;
    const uint32_t *s = src + skip;
    __asm__ volatile("rep movsl" : "+S"(s), "+D"(d), "+c"(count) : : "memory");
    sum = mix(sum, dst[round]);
  }
  return mix(sum, sample(dst));
}

uint32_t copy_loop(void) {
  init_src();
  uint32_t sum = 0;
  for (int round = 0; round < kCopyRounds; round++) {
    uint32_t skip = (uint32_t)round & 63;
    for (uint32_t i = 0; i < kWords - skip; i++) dst[i] = src[i + skip];
    sum = mix(sum, dst[round]);
  }
  return mix(sum, sample(dst));
}

uint32_t rep_stos(void) {
  uint32_t sum = 0;
  for (int round = 0; round < kStosRounds; round++) {
    uint32_t *d = dst + (round & 63), count = kWords - (round & 63);
    uint32_t value = 0x01010101u * (uint32_t)round;
    __asm__ volatile("rep stosl" : "+D"(d), "+c"(count) : "a"(value) : "memory");
    sum = mix(sum, dst[kWords - 1 - round]);
  }
  return mix(sum, sample(dst));
}

uint32_t fill_loop(void) {
  uint32_t sum = 0;
  for (int round = 0; round < kFillRounds; round++) {
    uint32_t value = 0x01010101u * (uint32_t)round;
    for (uint32_t i = round & 63; i < kWords; i++) dst[i] = value;
    sum = mix(sum, dst[kWords - 1 - round]);
  }
  return mix(sum, sample(dst));
}
