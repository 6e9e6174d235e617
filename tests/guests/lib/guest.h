// Runtime shared by every bare-metal test guest, the compute suite and the
// demo: serial console, printf, test checks and a few CPU helpers. Guests are
// Multiboot v1 kernels entered in 32-bit protected mode with flat segments,
// paging and interrupts off (multiboot.S). Guest sources that avoid
// privileged instructions also build as native -m32 Linux programs with
// print.c, check.c and native.c (bt_guest_native()).
#pragma once

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

// Console: COM1 in guests (machine.c), stdout in native builds (native.c).
void guest_putc(char c);
// %c %s %d %u %x with optional '0'/'-' flags and width, l/ll sizes.
void guest_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void guest_vprintf(const char *fmt, va_list ap);

// Test bookkeeping (check.c). A failed check prints
// "FAIL: <what> expected X got Y" (check_fail: "FAIL: <message>");
// check_group() prints "<name> ok" when no check failed since the previous
// group; check_finish() prints the PASS/FAIL summary and returns main()'s
// result (0 = pass).
void check_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void check_eq(const char *what, uint32_t expected, uint32_t got);
void check_eq64(const char *what, uint64_t expected, uint64_t got);
void check_true(const char *what, int ok);
void check_group(const char *name);
int check_finish(void);

// Writes `value` to the isa-debug-exit port (QEMU exits with
// (value << 1) | 1) and halts if the machine keeps running.
__attribute__((noreturn)) void guest_exit(uint32_t value);

// Loads a GDT with flat ring-0 code (kGuestCodeSelector) and data
// (kGuestDataSelector) descriptors and reloads every segment register: the
// loader's GDT may live in memory the guest does not own (Multiboot 3.2).
enum { kGuestCodeSelector = 0x08, kGuestDataSelector = 0x10 };
void guest_load_flat_gdt(void);
// Loads the GDT `gdtr` points to (a 16-bit limit, then the base) and reloads
// CS from kGuestCodeSelector and the other segment registers from
// kGuestDataSelector, which it must hold as the flat GDT does.
void guest_load_gdt(const void *gdtr);

// The guest-linear address of `p`: guests run with flat segments, where a
// pointer is one.
static inline uint32_t guest_addr(const volatile void *p) { return (uint32_t)(uintptr_t)p; }

// guest_load_gdt for the table of `bytes` bytes at `gdt`.
static inline void guest_load_gdt_table(const void *gdt, uint16_t bytes) {
  const struct __attribute__((packed)) {
    uint16_t limit;
    uint32_t base;
  } gdtr = {(uint16_t)(bytes - 1), guest_addr(gdt)};
  guest_load_gdt(&gdtr);
}

// A segment descriptor (SDM Vol. 3A 3.4.5): `flags` holds G, D/B, L and AVL
// in its high nibble; `limit` is in the units G chooses.
static inline uint64_t guest_descriptor(uint32_t base, uint32_t limit, uint8_t access,
                                        uint8_t flags) {
  return (limit & 0xFFFFull) | (uint64_t)(base & 0xFFFFFF) << 16 | (uint64_t)access << 40 |
         (uint64_t)((limit >> 16) & 0xF) << 48 | (uint64_t)(flags & 0xF0) << 48 |
         (uint64_t)(base >> 24) << 56;
}

// A 32-bit TSS (SDM Vol. 3A figure 7-2) up to its I/O map base; selectors
// sit in the low half of their slots.
struct guest_tss {
  uint32_t link, esp0, ss0, esp1, ss1, esp2, ss2, cr3, eip, eflags;
  uint32_t eax, ecx, edx, ebx, esp, ebp, esi, edi;
  uint32_t es, cs, ss, ds, fs, gs, ldt;
  uint16_t trap, io_map_base;
} __attribute__((packed));

static inline uint64_t guest_rdtsc(void) {
  uint32_t lo, hi;
  __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
  return ((uint64_t)hi << 32) | lo;
}

static inline void guest_outb(uint16_t port, uint8_t value) {
  __asm__ volatile("outb %0, %1" : : "a"(value), "Nd"(port));
}

static inline uint8_t guest_inb(uint16_t port) {
  uint8_t value;
  __asm__ volatile("inb %1, %0" : "=a"(value) : "Nd"(port));
  return value;
}

static inline uint16_t guest_inw(uint16_t port) {
  uint16_t value;
  __asm__ volatile("inw %1, %0" : "=a"(value) : "Nd"(port));
  return value;
}

static inline void guest_outl(uint16_t port, uint32_t value) {
  __asm__ volatile("outl %0, %1" : : "a"(value), "Nd"(port));
}

static inline uint32_t guest_inl(uint16_t port) {
  uint32_t value;
  __asm__ volatile("inl %1, %0" : "=a"(value) : "Nd"(port));
  return value;
}

// EFLAGS bits (SDM Vol. 1, 3.4.3) and the six arithmetic status flags.
enum {
  CF = 1 << 0,
  PF = 1 << 2,
  AF = 1 << 4,
  ZF = 1 << 6,
  SF = 1 << 7,
  DF = 1 << 10,
  OF = 1 << 11,
  F_ARITH = CF | PF | AF | ZF | SF | OF,
};

// Lets SSE instructions run (x87 and MMX need no setup).
void guest_enable_sse(void);

// string.c: gcc emits calls to these even with -fno-builtin.
void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
