// Helpers of paging test guests (see paging_test.h).
#include "paging_test.h"

enum { kFrames = 40 };

static uint32_t frames[kFrames][kWords] __attribute__((aligned(kPageSize)));
static unsigned frames_used;

struct page_fault_want want;
struct page_fault_log faults;

uint32_t take_frame(uint32_t fill) {
  if (frames_used == kFrames) {
    check_fail("out of frames");
    guest_exit(check_finish());
  }
  uint32_t *frame = frames[frames_used++];
  for (uint32_t i = 0; i < kWords; i++) frame[i] = fill + i;
  return guest_addr(frame);
}

__asm__(
    ".pushsection .text\n"
    ".globl probe_read, probe_read_insn, probe_write, probe_write_insn\n"
    "probe_read:\n"
    "  mov 4(%esp), %edx\n"
    "probe_read_insn:\n"
    "  mov (%edx), %eax\n"
    "  ret\n"
    "probe_write:\n"
    "  mov 4(%esp), %edx\n"
    "  mov 8(%esp), %eax\n"
    "probe_write_insn:\n"
    "  mov %eax, (%edx)\n"
    "  ret\n"
    ".popsection\n");

void emit_value(volatile uint8_t *p, uint32_t value) {
  p[0] = 0xB8;
  for (int i = 0; i < 4; i++) p[1 + i] = (uint8_t)(value >> 8 * i);
  p[5] = 0xC3;
}

static uint32_t take_int3_frame(void) {
  uint32_t frame = take_frame(0);
  for (uint32_t i = 0; i < kWords; i++) phys(frame)[i] = 0xCCCCCCCC;
  return frame;
}

uint32_t take_code_frame(uint32_t offset, uint32_t value) {
  uint32_t frame = take_int3_frame();
  emit_value((volatile uint8_t *)phys(frame) + offset, value);
  return frame;
}

void take_straddling_frames(uint32_t value, uint32_t *first, uint32_t *second) {
  *first = take_int3_frame();
  *second = take_int3_frame();
  uint8_t bytes[8] = {0x90, 0x90};
  emit_value(bytes + 2, value);
  volatile uint8_t *tail = (volatile uint8_t *)phys(*first) + kPageSize - 4;
  volatile uint8_t *head = (volatile uint8_t *)phys(*second);
  for (int i = 0; i < 4; i++) {
    tail[i] = bytes[i];
    head[i] = bytes[4 + i];
  }
}

static void page_fault(struct guest_trap_frame *f) {
  uint32_t cr2 = paging_read_cr2();
  faults.count++;
  faults.frame = *f;
  if (!want.resolve || faults.count > 4) {
    check_fail("unexpected #PF: cr2 %08x error %x eip %08x", cr2, f->error_code, f->eip);
    guest_exit(check_finish());
  }
  if (cr2 != want.cr2 || ((f->error_code ^ want.error_code) & want.error_mask) != 0 ||
      f->eip != want.eip) {
    check_fail("%s: #PF cr2 %08x error %x eip %08x, expected cr2 %08x error %x eip %08x", want.what,
               cr2, f->error_code, f->eip, want.cr2, want.error_code, want.eip);
  }
  want.resolve(f, cr2);
}

void page_faults_checked(void) { guest_idt_set(kPfVector, page_fault, kGuestInterruptGate, 0); }

void expect_fault(const char *what, uint32_t cr2, uint32_t error_code, const void *eip,
                  void (*resolve)(struct guest_trap_frame *, uint32_t)) {
  want.what = what;
  want.cr2 = cr2;
  want.error_code = error_code;
  want.error_mask = ~0u;
  want.eip = guest_addr(eip);
  want.resolve = resolve;
  faults.count = 0;
}

void expect_none(void) {
  want.resolve = 0;
  faults.count = 0;
}

void check_demand_access(const char *what, uint32_t linear, int write, uint32_t fill,
                         void (*resolve)(struct guest_trap_frame *, uint32_t)) {
  const uint32_t word = (linear & 0xFFF) / 4;
  want.physical = take_frame(fill);
  if (write) {
    expect_fault(what, linear, PFEC_W, probe_write_insn, resolve);
    probe_write(linear, ~(fill + word));
    check_eq(what, ~(fill + word), phys(want.physical)[word]);
  } else {
    expect_fault(what, linear, 0, probe_read_insn, resolve);
    check_eq(what, fill + word, probe_read(linear));
  }
  check_eq("faults for one page", 1, faults.count);
}
