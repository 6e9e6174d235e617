// The machine-facing part of the runtime for guests: console on COM1 and SSE
// enablement. native.c is its stand-in for native Linux builds.
#include "guest.h"

enum {
  kCom1 = 0x3F8,
  kThr = kCom1 + 0,  // transmit holding register
  kLsr = kCom1 + 5,  // line status register
  kLsrThrEmpty = 1 << 5,
};

// The UART is used as the firmware or VMM left it: only the transmit path,
// polled byte by byte.
void guest_putc(char c) {
  while (!(guest_inb(kLsr) & kLsrThrEmpty)) {
  }
  guest_outb(kThr, (uint8_t)c);
}

// CR0.MP=1, CR0.EM=0, CR4.OSFXSR=1, CR4.OSXMMEXCPT=1 (SDM Vol. 3A 13.1.3).
void guest_enable_sse(void) {
  uint32_t cr;
  __asm__ volatile("mov %%cr0, %0" : "=r"(cr));
  cr = (cr & ~(1u << 2)) | (1u << 1);
  __asm__ volatile("mov %0, %%cr0" : : "r"(cr));
  __asm__ volatile("mov %%cr4, %0" : "=r"(cr));
  cr |= (1u << 9) | (1u << 10);
  __asm__ volatile("mov %0, %%cr4" : : "r"(cr));
}
