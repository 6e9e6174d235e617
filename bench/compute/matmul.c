// SSE2 double-precision matrix multiply: built with -msse2 -mfpmath=sse, the
// i-k-j loop below vectorizes to mulpd/addpd.
#include "compute.h"

enum { kN = 200, kRounds = 128 };

static double a[kN][kN], b[kN][kN], c[kN][kN];

uint32_t matmul_sse2(void) {
  uint32_t seed = 7;
  for (int i = 0; i < kN; i++) {
    for (int j = 0; j < kN; j++) {
      a[i][j] = (double)(lcg_next(&seed) >> 8) / (1 << 24) - 0.5;
      b[i][j] = (double)(lcg_next(&seed) >> 8) / (1 << 24) - 0.5;
    }
  }
  uint32_t sum = 0;
  for (int round = 0; round < kRounds; round++) {
    for (int i = 0; i < kN; i++) {
      for (int j = 0; j < kN; j++) c[i][j] = 0;
      for (int k = 0; k < kN; k++) {
        double aik = a[i][k];
        for (int j = 0; j < kN; j++) c[i][j] += aik * b[k][j];
      }
    }
    // Feed the result back so rounds differ and cannot be skipped.
    a[round % kN][round % kN] += c[kN - 1 - round % kN][round % kN];
  }
  for (int i = 0; i < kN; i++) {
    for (int j = 0; j < kN; j++) {
      union {
        double d;
        uint32_t w[2];
      } bits = {c[i][j]};
      sum = mix(mix(sum, bits.w[0]), bits.w[1]);
    }
  }
  return sum;
}
