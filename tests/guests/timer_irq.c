// The 8254 timer interrupt through the 8259 PIC: IRQ0 remapped to vector
// 0x20, periodic ticks waking hlt, the counter latch, a one-shot that
// interrupts exactly once, masking in the PIC, and the in-service register
// seen from the handler. Times are measured with PIT channel 2 (idt.h:
// guest_pit_busy_wait), so every check holds whatever the speed of the
// machine; counts are exact where the hardware makes them so and lower
// bounds elsewhere.
//
// Not checked: channel 0's OUT in mode 2. An 8254 holds it high and drops it
// for one clock before each reload; QEMU does the opposite, so a status
// read-back in the handler of a periodic tick reads OUT=1 on hardware and
// OUT=0 under QEMU.
#include "guest.h"
#include "idt.h"

enum {
  kIrq0Vector = 0x20,
  kSlaveBase = 0x28,
  kClocksPerMs = 1193,    // PIT clocks
  kOneShotCount = 50000,  // about 42 ms
};

// sti; hlt; cli. STI delays interrupts by one instruction (SDM Vol. 2B,
// STI), so the tick that ends the wait arrives in the hlt, and the saved
// EIP is sti_hlt_after (SDM Vol. 2A, HLT: the interrupt handler returns to
// the instruction after HLT).
void sti_hlt(void);
extern const char sti_hlt_after[];
__asm__(
    ".pushsection .text\n"
    ".globl sti_hlt, sti_hlt_after\n"
    "sti_hlt:\n"
    "  sti\n"
    "  hlt\n"
    "sti_hlt_after:\n"
    "  cli\n"
    "  ret\n"
    ".popsection\n");

static volatile uint32_t ticks;
static volatile uint32_t spurious;
// What the IRQ0 handler found wrong, by kind.
static volatile uint32_t not_in_service, still_in_service, if_set_inside, saved_if_clear,
    eip_not_after_hlt;
static volatile int in_hlt_loop, in_oneshot;
static volatile uint32_t out_low, out_high;  // channel 0 OUT in the handler

static void irq0_handler(struct guest_trap_frame *f) {
  ticks++;
  if (!(guest_pic_isr() & 1)) not_in_service++;
  if (guest_read_eflags() & IF) if_set_inside++;
  if (!(f->eflags & IF)) saved_if_clear++;
  if (in_hlt_loop && f->eip != guest_addr(sti_hlt_after)) eip_not_after_hlt++;
  if (in_oneshot) {
    if (guest_pit_status(0) & kGuestPitStatusOut) {
      out_high++;
    } else {
      out_low++;
    }
  }
  guest_pic_eoi(0);
  if (guest_pic_isr() & 1) still_in_service++;
}

// IRQ7 and IRQ15 without a request (8259A: the vector of the lowest
// priority input, with nothing set in service).
static void spurious_handler(struct guest_trap_frame *f) {
  spurious++;
  if (f->vector == kSlaveBase + 7) guest_pic_eoi(0);  // master has IRQ2 in service
}

static void wait_clocks(uint32_t clocks) {
  while (clocks) {
    uint16_t n = clocks > 60000 ? 60000 : (uint16_t)clocks;
    guest_pit_busy_wait(n);
    clocks -= n;
  }
}

static void sti(void) { __asm__ volatile("sti" ::: "memory"); }
static void cli(void) { __asm__ volatile("cli" ::: "memory"); }

// Mode 2 at 1000 Hz; hlt until 50 ticks, each hlt ended by a tick.
static void test_periodic(void) {
  guest_pit_periodic(1000);
  guest_pic_mask(0xFFFF & ~1);
  unsigned empty_halts = 0;
  in_hlt_loop = 1;
  while (ticks < 50) {
    uint32_t before = ticks;
    sti_hlt();
    if (ticks == before) empty_halts++;
  }
  in_hlt_loop = 0;
  check_eq("hlt returns without a tick", 0, empty_halts);
  check_eq("saved eip not after the hlt", 0, eip_not_after_hlt);
  check_group("ticks >= 50, each hlt ended by IRQ0 after the hlt");
}

// Waits until `done()` or `ms` milliseconds of PIT time have passed.
// Interrupts are raised by the emulator's timer thread and may arrive late
// relative to the counters the guest reads, so the checks below wait for
// events rather than for fixed times, and only add fixed waits where an
// event must not happen.
static int wait_until(int (*done)(void), uint32_t ms) {
  for (uint32_t i = 0; i < ms && !done(); i++) guest_pit_busy_wait(kClocksPerMs);
  return done();
}

static uint32_t start_ticks, expected_ticks;
static int ticks_reached(void) { return ticks - start_ticks >= expected_ticks; }
static int irq0_requested(void) { return guest_pic_irr() & 1; }

// Channel 0 in mode 0: the latched count goes down at channel 2's rate, and
// the terminal count interrupts once, with OUT high in the handler.
static void test_oneshot(void) {
  sti_hlt();  // just after a tick: the next one is 1 ms away
  guest_pit_oneshot(kOneShotCount);
  guest_pit_busy_wait(10);  // the count is loaded on the first clock
  uint16_t first = guest_pit_read(0);
  guest_pit_busy_wait(1000);
  uint16_t second = guest_pit_read(0);
  check_true("latched count below the initial count", first < kOneShotCount);
  check_true("latched count decreases", second < first);
  check_true("count falls >= 1000 in 1000 channel-2 clocks", first - second >= 1000);
  check_group("latch: channel 0 counts down at channel 2's rate");

  // A tick of the periodic mode is still pending if this guest was held up
  // for more than 1 ms since the hlt; it arrives first, with OUT low.
  uint32_t stale = guest_pic_irr() & 1;
  out_low = out_high = 0;
  in_oneshot = 1;
  start_ticks = ticks;
  expected_ticks = stale + 1;
  sti();
  wait_until(ticks_reached, 2000);
  wait_clocks(100 * kClocksPerMs);  // nothing more may come
  cli();
  in_oneshot = 0;
  check_eq("interrupts with OUT high", 1, out_high);
  check_eq("interrupts with OUT low", stale, out_low);
  check_group("one-shot: exactly one interrupt, at the terminal count");
}

// Masked in the PIC, IRQ0 stays pending in the IRR and arrives on unmask.
static void test_mask(void) {
  guest_pit_periodic(1000);
  guest_pic_mask(0xFFFF);
  start_ticks = ticks;
  sti();
  int requested = wait_until(irq0_requested, 2000);
  wait_clocks(20 * kClocksPerMs);
  cli();
  check_true("IRR bit 0 while masked", requested);
  check_eq("ticks while masked", start_ticks, ticks);
  guest_pic_mask(0xFFFF & ~1);
  expected_ticks = 1;
  sti();
  wait_until(ticks_reached, 2000);
  cli();
  guest_pic_mask(0xFFFF);
  check_true("ticks after unmasking", ticks > start_ticks);
  check_group("mask: IRQ0 held in the IRR while masked, ticks after unmask");
}

int main(void) {
  guest_load_flat_gdt();
  guest_idt_init();
  guest_pic_remap(kIrq0Vector, kSlaveBase);
  guest_idt_set(kIrq0Vector, irq0_handler, kGuestInterruptGate, 0);
  guest_idt_set(kIrq0Vector + 7, spurious_handler, kGuestInterruptGate, 0);
  guest_idt_set(kSlaveBase + 7, spurious_handler, kGuestInterruptGate, 0);

  test_periodic();
  test_oneshot();
  test_mask();

  check_eq("IRQ0 not in service in its handler", 0, not_in_service);
  check_eq("IRQ0 in service after EOI", 0, still_in_service);
  check_eq("IF set in the handler", 0, if_set_inside);
  check_eq("IF clear in the saved EFLAGS", 0, saved_if_clear);
  check_group("handler: ISR shows IRQ0 in service until EOI, IF clear");
  check_eq("spurious IRQ7/IRQ15", 0, spurious);
  check_group("no spurious interrupts");
  return check_finish();
}
