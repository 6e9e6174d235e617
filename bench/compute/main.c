// Runs every compute workload once and prints
//   <name>: checksum=<hex> cycles=<rdtsc delta>
// which compare.sh reads from the native, btvm and QEMU runs.
#include "compute.h"
#include "guest.h"

static const struct {
  const char *name;
  uint32_t (*run)(void);
} workloads[] = {
    {"sieve", sieve},
    {"crc32", crc32},
    {"quicksort", quicksort},
    {"fib_recursion", fib_recursion},
    {"matmul_sse2", matmul_sse2},
    {"interpreter", interpreter},
    {"rep_movs", rep_movs},
    {"copy_loop", copy_loop},
    {"rep_stos", rep_stos},
    {"fill_loop", fill_loop},
    {"code_footprint", code_footprint},
};

int main(void) {
  guest_enable_sse();  // matmul_sse2 and compiler-vectorized loops use SSE2
  for (unsigned i = 0; i < ARRAY_SIZE(workloads); i++) {
    uint64_t start = guest_rdtsc();
    uint32_t checksum = workloads[i].run();
    uint64_t cycles = guest_rdtsc() - start;
    guest_printf("%s: checksum=%08x cycles=%llu\n", workloads[i].name, checksum, cycles);
  }
  return 0;
}
