// A bare-metal guest worth watching for a few seconds in a terminal: an
// ASCII Mandelbrot zoom drawn with ANSI cursor-home, a prime counter with a
// progress bar, and a summary of how long each part computed. The TSC is
// calibrated against PIT channel 2 so frames are paced in real time; if the
// PIT does not answer, pacing assumes a 2 GHz TSC and the summary reports
// cycles only.
#include "guest.h"

enum {
  kWidth = 78,
  kHeight = 22,
  kFrames = 30,
  kFrameMs = 100,
  kPrimeLimit = 400000,
  kPrimeSteps = 20,
  kPrimeStepMs = 50,
};

// Cycles per millisecond: measured (0 when unknown), and used for pacing.
static uint64_t tsc_per_ms;
static uint64_t pace_per_ms = 2000000;

// Times 50 ms of PIT channel 2 (1.193182 MHz) in one-shot mode, gated
// through port 0x61, like Linux's pit_calibrate_tsc(). Gives up (leaving
// tsc_per_ms = 0) if the result is outside 0.1-10 GHz or the output has not
// risen after 10^9 cycles (50 ms even at 10 GHz is half that).
static void calibrate_tsc(void) {
  enum { kPitHz = 1193182, kLatch = kPitHz / 20 };
  guest_outb(0x61, (guest_inb(0x61) & ~0x02) | 0x01);  // gate on, speaker off
  guest_outb(0x43, 0xB0);                              // channel 2, lobyte/hibyte, mode 0
  guest_outb(0x42, kLatch & 0xFF);
  guest_outb(0x42, kLatch >> 8);
  uint64_t start = guest_rdtsc(), now = start;
  while (!(guest_inb(0x61) & 0x20)) {
    now = guest_rdtsc();
    if (now - start > 1000000000) return;
  }
  uint64_t per_ms = (now - start) / 50;
  if (per_ms > 100000 && per_ms < 10000000) tsc_per_ms = pace_per_ms = per_ms;
}

static uint64_t to_ms(uint64_t cycles) { return tsc_per_ms ? cycles / tsc_per_ms : 0; }

static void wait_until(uint64_t deadline) {
  while (guest_rdtsc() < deadline) {
  }
}

static void print_cpu(void) {
  uint32_t brand[12], eax, ebx, ecx, edx;
  __asm__ volatile("cpuid" : "=a"(eax), "=b"(ebx), "=c"(ecx), "=d"(edx) : "a"(0x80000000));
  if (eax < 0x80000004) {
    guest_printf("guest CPU: (no brand string)\n");
    return;
  }
  for (uint32_t leaf = 0; leaf < 3; leaf++) {
    __asm__ volatile("cpuid"
                     : "=a"(brand[leaf * 4]), "=b"(brand[leaf * 4 + 1]), "=c"(brand[leaf * 4 + 2]),
                       "=d"(brand[leaf * 4 + 3])
                     : "a"(0x80000002 + leaf));
  }
  char text[49];
  memcpy(text, brand, 48);
  text[48] = '\0';
  const char *p = text;
  while (*p == ' ') p++;
  guest_printf("guest CPU: %s\n", p);
}

// Draws one frame centred on (cx, cy), `scale` wide; returns the iterations
// computed.
static uint32_t draw_mandelbrot(double cx, double cy, double scale, uint32_t max_iter) {
  static const char ramp[] = " .:-=+*#%@";
  static char line[kWidth + 2];
  uint32_t total = 0;
  for (int row = 0; row < kHeight; row++) {
    // Terminal cells are about twice as tall as wide.
    double y0 = cy + (row - kHeight / 2) * scale * 2 / kWidth;
    for (int col = 0; col < kWidth; col++) {
      double x0 = cx + (col - kWidth / 2) * scale / kWidth;
      double x = 0, y = 0;
      uint32_t i = 0;
      for (; i < max_iter && x * x + y * y <= 4; i++) {
        double t = x * x - y * y + x0;
        y = 2 * x * y + y0;
        x = t;
      }
      total += i;
      line[col] = i == max_iter ? '@' : ramp[i % (sizeof(ramp) - 2)];
    }
    line[kWidth] = '\n';
    line[kWidth + 1] = '\0';
    guest_printf("%s", line);
  }
  return total;
}

struct phase {
  const char *name;
  uint64_t busy, wall;  // cycles computing, cycles including pacing
  uint32_t work;
};

static void mandelbrot_zoom(struct phase *ph) {
  uint64_t start = guest_rdtsc();
  double scale = 3.2;
  guest_printf("\x1b[2J");
  for (int frame = 0; frame < kFrames; frame++) {
    uint64_t t0 = guest_rdtsc();
    guest_printf("\x1b[H");
    ph->work += draw_mandelbrot(-0.743643887, 0.131825904, scale, 64 + 16 * (uint32_t)frame);
    uint64_t t1 = guest_rdtsc();
    ph->busy += t1 - t0;
    guest_printf("frame %2d/%d  zoom %6ux  %6llu kcycles\x1b[K\n", frame + 1, kFrames,
                 (uint32_t)(3.2 / scale), (t1 - t0) / 1000);
    wait_until(t0 + kFrameMs * pace_per_ms);
    scale *= 0.75;
  }
  ph->wall = guest_rdtsc() - start;
}

static int is_prime(uint32_t n) {
  if (n < 2) return 0;
  for (uint32_t d = 2; d * d <= n; d++) {
    if (n % d == 0) return 0;
  }
  return 1;
}

static void prime_counter(struct phase *ph) {
  uint64_t start = guest_rdtsc();
  uint32_t count = 0, n = 0;
  guest_printf("\n");
  for (int step = 1; step <= kPrimeSteps; step++) {
    uint64_t t0 = guest_rdtsc();
    for (uint32_t end = kPrimeLimit / kPrimeSteps * step; n < end; n++) {
      count += is_prime(n);
    }
    ph->busy += guest_rdtsc() - t0;
    guest_printf("\rprimes below %u: [", n);
    for (int i = 0; i < kPrimeSteps; i++) guest_putc(i < step ? '#' : '.');
    guest_printf("] %3d%%  %u found", step * 100 / kPrimeSteps, count);
    wait_until(t0 + kPrimeStepMs * pace_per_ms);
  }
  guest_printf("\n");
  ph->work = count;
  ph->wall = guest_rdtsc() - start;
}

static void print_phase(const struct phase *ph, const char *unit) {
  if (tsc_per_ms) {
    guest_printf(
        "  %-12s %8u %-11s computed in %5llu ms, shown over %5llu ms"
        "\n",
        ph->name, ph->work, unit, to_ms(ph->busy), to_ms(ph->wall));
  } else {
    guest_printf("  %-12s %8u %-11s computed in %llu cycles\n", ph->name, ph->work, unit, ph->busy);
  }
}

int main(void) {
  guest_enable_sse();  // the Mandelbrot loop is SSE2 (-mfpmath=sse)
  uint64_t start = guest_rdtsc();
  calibrate_tsc();
  struct phase zoom = {"mandelbrot", 0, 0, 0};
  struct phase primes = {"primes", 0, 0, 0};
  mandelbrot_zoom(&zoom);
  prime_counter(&primes);

  guest_printf("\nlibbt demo guest: bare-metal Multiboot kernel, no OS\n");
  print_cpu();
  if (tsc_per_ms) {
    guest_printf("TSC: %llu MHz (calibrated against PIT channel 2)\n", tsc_per_ms / 1000);
  } else {
    guest_printf("TSC: not calibrated (no PIT channel 2), paced as if 2 GHz\n");
  }
  print_phase(&zoom, "iterations");
  print_phase(&primes, "primes");
  uint64_t total = guest_rdtsc() - start;
  if (tsc_per_ms) {
    guest_printf("  total        %llu ms\n", to_ms(total));
  } else {
    guest_printf("  total        %llu cycles\n", total);
  }
  return 0;
}
