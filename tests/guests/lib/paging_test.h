// What paging test guests share, whatever the paging mode: frames to map,
// loads and stores at known EIPs, code to put in a frame, and a #PF handler
// that checks each fault against what the test expects and lets the test
// resolve it, after which the faulting instruction runs again.
#pragma once

#include "guest.h"
#include "idt.h"
#include "paging.h"

enum { kPfVector = 14, kWords = kPageSize / 4 };

// A fresh 4 KiB frame from a pool in the identity-mapped image, so the
// guest reaches it at its physical address; word i holds fill + i. Returns
// the physical address; an empty pool fails the run.
uint32_t take_frame(uint32_t fill);

static inline volatile uint32_t *phys(uint32_t physical) {
  return (volatile uint32_t *)(uintptr_t)physical;
}

static inline volatile uint32_t *lin(uint32_t linear) {
  return (volatile uint32_t *)(uintptr_t)linear;
}

// One load or store with a known EIP (probe_read_insn, probe_write_insn),
// for the saved EIP of faults.
uint32_t probe_read(uint32_t linear);
void probe_write(uint32_t linear, uint32_t value);
extern const char probe_read_insn[], probe_write_insn[];

typedef uint32_t (*value_fn)(void);

// Writes `mov $value, %eax; ret` (6 bytes) at p.
void emit_value(volatile uint8_t *p, uint32_t value);
// A frame of int3, so that a stray jump ends the run, but for
// `mov $value, %eax; ret` at `offset`.
uint32_t take_code_frame(uint32_t offset, uint32_t value);
// Two frames of int3 but for `nop; nop; mov $value, %eax; ret` in the last
// four bytes of *first and the first four of *second: mapped at adjacent
// linear pages and entered four bytes before the boundary, the mov
// straddles it.
void take_straddling_frames(uint32_t value, uint32_t *first, uint32_t *second);

// What the next #PF must look like, and how the handler resolves it;
// physical and flags are for the test's resolve function to map.
struct page_fault_want {
  const char *what;
  uint32_t cr2, error_code, eip;
  uint32_t error_mask;  // the error-code bits compared; all unless changed
  void (*resolve)(struct guest_trap_frame *f, uint32_t cr2);
  uint32_t physical;
  uint64_t flags;
};
extern struct page_fault_want want;

// The faults taken since the last expect_*, and the last one's frame as
// the handler saw it on entry. Faulting accesses are calls (probe_*, code
// in frames), so the compiler keeps `want` and `faults` in memory around
// them.
struct page_fault_log {
  volatile unsigned count;
  struct guest_trap_frame frame;
};
extern struct page_fault_log faults;

// Routes #PF to the checking handler. A fault nobody expects, one that does
// not match, or more than four for one expectation fail the run or the
// check.
void page_faults_checked(void);
// The next #PF must be at `eip` for `cr2` with `error_code`; `resolve` then
// fixes what caused it.
void expect_fault(const char *what, uint32_t cr2, uint32_t error_code, const void *eip,
                  void (*resolve)(struct guest_trap_frame *, uint32_t));
void expect_none(void);

// A read of `linear` in a not-present page, or with `write` a store: it
// must fault once (CR2 `linear`, P clear) and `resolve` map want.physical,
// a fresh frame filled from `fill` (take_frame), after which the read
// gives the frame's word or the store lands in it.
void check_demand_access(const char *what, uint32_t linear, int write, uint32_t fill,
                         void (*resolve)(struct guest_trap_frame *, uint32_t));
