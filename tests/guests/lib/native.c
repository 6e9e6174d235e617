// Stand-in for machine.c when guest sources are built as native Linux
// programs (compute_native, arith_flags_native): the console is stdout and
// the OS has already enabled SSE.
#include "guest.h"

#include <stdio.h>

void guest_putc(char c) { putchar(c); }

void guest_enable_sse(void) {}
