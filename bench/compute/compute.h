// Guest compute workloads. The same sources build as a Multiboot guest
// (compute.elf) and as a native Linux program (compute_native); each
// workload returns a checksum that must be the same in both.
#pragma once

#include <stdint.h>

uint32_t sieve(void);
uint32_t crc32(void);
uint32_t quicksort(void);
uint32_t fib_recursion(void);
uint32_t matmul_sse2(void);
uint32_t interpreter(void);
uint32_t rep_movs(void);
uint32_t copy_loop(void);
uint32_t rep_stos(void);
uint32_t fill_loop(void);
uint32_t code_footprint(void);

// A 32-bit LCG (Numerical Recipes constants): deterministic input data.
static inline uint32_t lcg_next(uint32_t *state) {
  *state = *state * 1664525u + 1013904223u;
  return *state;
}

// Mixes `value` into a running checksum (FNV-1a style over 32-bit words).
static inline uint32_t mix(uint32_t sum, uint32_t value) { return (sum ^ value) * 16777619u; }
