// Integer workloads: sieve of Eratosthenes, table-driven CRC32, quicksort
// and naive recursive Fibonacci. Sizes give roughly 0.3-1 s each natively.
#include "compute.h"

enum {
  kSieveLimit = 8 << 20,
  kSieveRounds = 16,
  kCrcBytes = 4 << 20,
  kCrcRounds = 40,
  kSortCount = 1 << 20,
  kSortRounds = 5,
  kFibN = 42,
};

static uint8_t composite[kSieveLimit];

uint32_t sieve(void) {
  uint32_t sum = 0;
  for (int round = 0; round < kSieveRounds; round++) {
    for (uint32_t i = 0; i < kSieveLimit; i++) composite[i] = 0;
    uint32_t count = 0, last = 0;
    for (uint32_t i = 2; i < kSieveLimit; i++) {
      if (composite[i]) continue;
      count++;
      last = i;
      for (uint32_t j = i * 2; j < kSieveLimit; j += i) composite[j] = 1;
    }
    sum = mix(mix(sum, count), last);
  }
  return sum;
}

static uint8_t crc_data[kCrcBytes];

uint32_t crc32(void) {
  uint32_t table[256];
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    table[i] = c;
  }
  uint32_t seed = 1;
  for (uint32_t i = 0; i < kCrcBytes; i++) crc_data[i] = lcg_next(&seed) >> 24;
  uint32_t sum = 0;
  for (int round = 0; round < kCrcRounds; round++) {
    uint32_t crc = 0xFFFFFFFFu ^ (uint32_t)round;
    for (uint32_t i = 0; i < kCrcBytes; i++) {
      crc = table[(crc ^ crc_data[i]) & 0xFF] ^ (crc >> 8);
    }
    sum = mix(sum, ~crc);
  }
  return sum;
}

static int32_t sort_data[kSortCount];

static void swap(int32_t *a, int32_t *b) {
  int32_t t = *a;
  *a = *b;
  *b = t;
}

// Median-of-three quicksort; recurses into the smaller side so the depth
// stays logarithmic, insertion sort below 16 elements.
static void sort(int32_t *v, int32_t n) {
  while (n > 16) {
    int32_t mid = n / 2;
    if (v[mid] < v[0]) swap(&v[mid], &v[0]);
    if (v[n - 1] < v[0]) swap(&v[n - 1], &v[0]);
    if (v[n - 1] < v[mid]) swap(&v[n - 1], &v[mid]);
    int32_t pivot = v[mid];
    int32_t i = 0, j = n - 1;
    while (i <= j) {
      while (v[i] < pivot) i++;
      while (v[j] > pivot) j--;
      if (i <= j) swap(&v[i++], &v[j--]);
    }
    if (j + 1 < n - i) {
      sort(v, j + 1);
      v += i;
      n -= i;
    } else {
      sort(v + i, n - i);
      n = j + 1;
    }
  }
  for (int32_t i = 1; i < n; i++) {
    int32_t x = v[i], j = i - 1;
    for (; j >= 0 && v[j] > x; j--) v[j + 1] = v[j];
    v[j + 1] = x;
  }
}

uint32_t quicksort(void) {
  uint32_t sum = 0, seed = 42;
  for (int round = 0; round < kSortRounds; round++) {
    for (int32_t i = 0; i < kSortCount; i++) {
      sort_data[i] = (int32_t)lcg_next(&seed);
    }
    sort(sort_data, kSortCount);
    uint32_t unsorted = 0;
    for (int32_t i = 1; i < kSortCount; i++) {
      unsorted += sort_data[i - 1] > sort_data[i];
    }
    for (int32_t i = 0; i < kSortCount; i += 4096) {
      sum = mix(sum, (uint32_t)sort_data[i]);
    }
    sum = mix(sum, unsorted);
  }
  return sum;
}

static uint32_t fib(uint32_t n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }

uint32_t fib_recursion(void) {
  // Through a volatile so the call is not folded at compile time.
  static volatile uint32_t n = kFibN;
  return fib(n);
}
