// Test bookkeeping for the self-checking guests (see guest.h).
#include "guest.h"

static unsigned failures;
static unsigned group_failures;

void check_fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  failures++;
  guest_printf("FAIL: ");
  guest_vprintf(fmt, ap);
  guest_putc('\n');
  va_end(ap);
}

void check_eq(const char *what, uint32_t expected, uint32_t got) {
  if (expected != got) {
    check_fail("%s expected %08x got %08x", what, expected, got);
  }
}

void check_eq64(const char *what, uint64_t expected, uint64_t got) {
  if (expected != got) {
    check_fail("%s expected %016llx got %016llx", what, expected, got);
  }
}

void check_true(const char *what, int ok) {
  if (!ok) check_fail("%s", what);
}

void check_group(const char *name) {
  if (failures == group_failures) guest_printf("%s ok\n", name);
  group_failures = failures;
}

int check_finish(void) {
  guest_printf(failures ? "FAIL\n" : "PASS\n");
  return failures ? 1 : 0;
}
