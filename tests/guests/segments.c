// Data segments with bases (SDM Vol. 3A 3.4.5, 5.3): DS, ES and SS with
// bases reach memory at base + offset for every kind of access (segments_asm.S):
//   - ModRM and moffs operands, the SS default of EBP and ESP bases, the
//     es:, ss:, ds: and cs: overrides, 16-bit addressing, xlat, a high-byte
//     register next to ESP, and lea, which adds no base;
//   - push, pop (of memory too), call, ret, pusha, popa, enter, leave, and
//     push and pop of segment registers through SS;
//   - movs, stos, lods, cmps, scas with rep, forwards and backwards, from
//     DS or an override to ES;
//   - an expand-down DS, whose offsets near 4 GiB wrap to below its base;
//   - DS reloaded flat a thousand times in a loop, then based;
// and segment loads fault as the SDM has them: #GP(selector) for an
// execute-only code segment in DS, a read-only one, one of another DPL or a
// null selector in SS, a selector past the GDT; #NP(selector) for a data
// segment that is not present, #SS(selector) in SS.
//
// Not here: limit checks. QEMU's TCG checks no data segment limits (QEMU
// 7.2 reads past a limit, writes to a read-only segment and through a null
// DS without a fault), so #GP and #SS for those are checked by
// tests/unit/segment_limits_test.cc instead.
#include "guest.h"
#include "idt.h"

// segments_asm.S
extern uint32_t results[64];
extern uint32_t segment_load_selector;
void based_operands(void);
void based_stack(void);
void based_strings(void);
void expand_down(void);
uint32_t reload_loop(uint32_t count);
uint32_t load_ds(void);
uint32_t load_ss(void);
extern const char load_ds_after[], load_ss_after[];

enum {
  kBasedDs = 0x18,
  kBasedEs = 0x20,
  kBasedSs = 0x28,
  kDownDs = 0x30,
  kExecuteOnly = 0x38,
  kReadOnly = 0x40,
  kAbsent = 0x48,
  kDpl3 = 0x50,
  kDownStack = 0x58,
  kPastGdt = 0x100,
  kGp = 13,
  kNp = 11,
  kSs = 12,
};

// DS's area is three pages: the expand-down segment reaches past the first.
static uint32_t ds_area[0xC00] __attribute__((aligned(4096)));
static uint32_t es_area[0x400] __attribute__((aligned(4096)));
static uint32_t ss_area[0x400] __attribute__((aligned(4096)));
static uint64_t gdt[12] __attribute__((aligned(8)));

static void setup(void) {
  gdt[1] = guest_descriptor(0, 0xFFFFF, 0x9A, 0xC0);
  gdt[2] = guest_descriptor(0, 0xFFFFF, 0x92, 0xC0);
  gdt[3] = guest_descriptor(guest_addr(ds_area), 0xFFF, 0x92, 0x40);
  gdt[4] = guest_descriptor(guest_addr(es_area), 0xFFF, 0x92, 0x40);
  gdt[5] = guest_descriptor(guest_addr(ss_area), 0xFFF, 0x92, 0x40);
  gdt[6] = guest_descriptor(guest_addr(ds_area) + 0x1000, 0xFFF, 0x96, 0x40);  // expand-down
  gdt[7] = guest_descriptor(0, 0xFFFFF, 0x98, 0xC0);                           // execute-only code
  gdt[8] = guest_descriptor(0, 0xFFFFF, 0x90, 0xC0);                           // read-only data
  gdt[9] = guest_descriptor(0, 0xFFFFF, 0x12, 0xC0);                           // data, not present
  gdt[10] = guest_descriptor(0, 0xFFFFF, 0xF2, 0xC0);                          // data, DPL 3
  gdt[11] = guest_descriptor(0, 0xFFF, 0x96, 0xC0);  // expand-down above 16 MiB - 1
  guest_load_gdt_table(gdt, sizeof(gdt));
  for (uint32_t i = 0; i < ARRAY_SIZE(ds_area); i++) ds_area[i] = 0xD0000000 + 4 * i;
  for (uint32_t i = 0; i < ARRAY_SIZE(es_area); i++) es_area[i] = 0xE0000000 + 4 * i;
  for (uint32_t i = 0; i < ARRAY_SIZE(ss_area); i++) ss_area[i] = 0x50000000 + 4 * i;
}

struct expectation {
  const char *what;
  uint32_t value;
};

// results[first + i] against expected[i].
static void check_results(unsigned first, const struct expectation *expected, unsigned count) {
  for (unsigned i = 0; i < count; i++)
    check_eq(expected[i].what, expected[i].value, results[first + i]);
}

static const struct expectation kOperands[] = {
    {"moffs through DS", 0xD0000010},
    {"[ebx] through DS", 0xD0000020},
    {"[ebp+4] through SS", 0x50000034},
    {"es:[ebx]", 0xE0000020},
    {"ss:[ebx]", 0x50000020},
    {"ds:[ebp+4]", 0xD0000034},
    {"cs: (flat)", 0xC5C5C5C5},
    {"ss: moffs", 0x50000014},
    {"[bx+si]", 0xD0000080},
    {"[bp+di]", 0x50000038},
    {"lea", 0x24},
    {"xlat", 0xD0},
    {"ah from [esp+5]", 0x0800},
};

static const struct expectation kStack[] = {
    {"push imm", 0x12345678},
    {"call, pop", 0},
    {"call, ret", 0},
    {"ESP after pusha", 0x7E0},
    {"EDI pushed by pusha", 0x77},
    {"EAX after popa", 0x55},
    {"ESI after popa", 0x66},
    {"EBP after enter", 0x7FC},
    {"ESP after enter", 0x7EC},
    {"EBP pushed by enter", 0x700},
    {"EBP after leave", 0x700},
    {"ESP after leave", 0x800},
    {"push ds", kBasedDs},
    {"pop ds, then moffs", 0xE0000010},
};

static const struct expectation kStrings[] = {
    {"ESI after rep movsd", 0x110},
    {"EDI after rep movsd", 0x210},
    {"lodsd", 0xD0000300},
    {"ss: lodsd", 0x50000304},
    {"es: lodsd", 0xE0000308},
    {"cmpsd", 1},
    {"ECX after repne cmpsd", 5},
    {"EDI after repne scasd", 0x404},
    {"ECX after repne scasd", 11},
    {"ESI after std; rep movsd", 0x504},
    {"EDI after std; rep movsd", 0x604},
};

static const struct expectation kExpandDown[] = {
    {"offset 0x1000", 0xD0002000},
    {"offset 0xfffff000", 0xD0000000},
    {"offset 0xfffffffc", 0xD0000FFC},
};

static void check_operands(void) {
  based_operands();
  check_results(0, kOperands, ARRAY_SIZE(kOperands));
  check_eq("store through DS", 0xAAAA5555, ds_area[0x40 / 4]);
  check_eq("add to memory through DS", 0xD0000045, ds_area[0x44 / 4]);
  check_group("operands");
}

static void check_stack(void) {
  based_stack();
  results[25] &= 0xFFFF;  // push ds: the selector, whatever the high half
  check_results(13, kStack, ARRAY_SIZE(kStack));
  check_eq("push [ebx], pop [0x48]", 0xD0000020, ds_area[0x48 / 4]);
  check_group("stack");
}

static void check_strings(void) {
  based_strings();
  check_results(27, kStrings, ARRAY_SIZE(kStrings));
  for (unsigned i = 0; i < 4; i++) check_eq("rep movsd", 0xD0000100 + 4 * i, es_area[0x80 + i]);
  check_eq("rep stosd", 0xA5A5A5A5, es_area[0x210 / 4]);
  check_eq("rep stosd", 0xA5A5A5A5, es_area[0x214 / 4]);
  check_eq("std; rep movsd", 0xD000050C, es_area[0x60C / 4]);
  check_eq("std; rep movsd", 0xD0000508, es_area[0x608 / 4]);
  check_eq("std; rep movsd", 0xE0000604, es_area[0x604 / 4]);
  check_group("strings");
}

static void check_expand_down(void) {
  expand_down();
  check_results(38, kExpandDown, ARRAY_SIZE(kExpandDown));
  check_group("expand-down");
}

static void check_reloads(void) {
  check_eq("flat reloads, then a based one", 1000u * 0xC5C5C5C5u + 0xD0000010u, reload_loop(1000));
  check_group("reloads");
}

static struct {
  unsigned count;
  uint32_t vector, error_code;
} fault;
static const char *resume_at;

static void on_fault(struct guest_trap_frame *f) {
  fault.count++;
  fault.vector = f->vector;
  fault.error_code = f->error_code;
  f->eip = guest_addr(resume_at);
}

static const char *vector_name(uint32_t vector) {
  return vector == kGp ? "#GP" : vector == kNp ? "#NP" : vector == kSs ? "#SS" : "?";
}

// Loads `selector` into DS or SS and prints what came of it.
static void load(int ss, uint32_t selector, uint32_t vector, uint32_t error_code) {
  fault.count = 0;
  segment_load_selector = selector;
  resume_at = ss ? load_ss_after : load_ds_after;
  const uint32_t after = ss ? load_ss() : load_ds();
  if (fault.count) {
    guest_printf("mov %s, %04x: %s(%04x)\n", ss ? "ss" : "ds", selector, vector_name(fault.vector),
                 fault.error_code);
  } else {
    guest_printf("mov %s, %04x: loaded %04x\n", ss ? "ss" : "ds", selector, after & 0xFFFF);
  }
  check_eq("faults", vector ? 1 : 0, fault.count);
  if (vector) {
    check_eq("vector", vector, fault.vector);
    check_eq("error code", error_code, fault.error_code);
  } else {
    check_eq("selector", selector, after & 0xFFFF);
  }
}

static void check_loads(void) {
  guest_idt_init();
  guest_idt_set(kNp, on_fault, kGuestTrapGate, 0);
  guest_idt_set(kSs, on_fault, kGuestTrapGate, 0);
  guest_idt_set(kGp, on_fault, kGuestTrapGate, 0);
  load(0, kExecuteOnly, kGp, kExecuteOnly);
  load(0, kReadOnly, 0, 0);
  load(0, kDpl3, 0, 0);
  load(0, 0, 0, 0);
  load(0, kAbsent, kNp, kAbsent);
  load(0, kPastGdt, kGp, kPastGdt);
  load(1, kReadOnly, kGp, kReadOnly);
  load(1, kDpl3, kGp, kDpl3);
  load(1, kAbsent, kSs, kAbsent);
  load(1, 0, kGp, 0);
  load(1, kDownStack, 0, 0);
  load(1, kBasedSs, 0, 0);
  check_group("segment loads");
}

int main(void) {
  setup();
  check_operands();
  check_stack();
  check_strings();
  check_expand_down();
  check_reloads();
  check_loads();
  return check_finish();
}
