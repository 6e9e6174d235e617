// The system instructions of a protected-mode kernel (SDM Vol. 2 for each;
// Vol. 3A table 2-2 for CR0.EM/MP/TS):
//   sgdt, sidt, sldt, str, smsw: what lgdt/lidt/lldt/ltr and CR0 hold, with
//     register and memory destinations;
//   lldt, ltr: LDT and available-TSS descriptors only, #GP/#NP with the
//     selector otherwise, the TSS marked busy;
//   lar, lsl, verr, verw: ZF and results for a GDT and an LDT of assorted
//     descriptors, selectors with RPL above DPL, past the table limits;
//   rdmsr, wrmsr: IA32_SYSENTER_CS/ESP/EIP, IA32_PAT, IA32_MISC_ENABLE;
//   sysenter: CS, SS, ESP, EIP from the MSRs, IF cleared; sysenter and
//     sysexit with IA32_SYSENTER_CS = 0 are #GP(0);
//   CR0.TS (set with mov to CR0 as kernels do, or lmsw), clts, CR0.EM and
//     CR0.MP: #NM and #UD from x87, MMX, SSE, fxsave and wait, each at the
//     instruction, which runs after the handler fixes CR0 (lazy FPU
//     switching).
//
// Not checked here because QEMU 7.2 deviates from the SDM (the unit tests in
// tests/unit/system_instructions_test.cc check them):
//   - ltr of a null selector is #GP(0); QEMU loads an unusable TR;
//   - sysenter and sysexit test bits 15:2 of IA32_SYSENTER_CS; QEMU tests
//     all of them, so 3 does not fault;
//   - MMX and SSE with both CR0.EM and CR0.TS set are #UD; QEMU gives #NM;
//   - #GP(0) for unknown MSRs, IA32_EFER bits other than NXE (no SYSCALL
//     or long mode), invalid PAT memory types and writes to read-only
//     IA32_MISC_ENABLE bits; QEMU reads 0 or takes the write;
//   - IA32_SYSENTER_CS keeps bits 63:16; QEMU keeps 15:0;
//   - sgdt/sidt store the full 32-bit base with a 16-bit operand size;
//     QEMU stores 24 bits;
//   - wrmsr to IA32_TIME_STAMP_COUNTER moves what rdtsc and rdmsr read;
//     QEMU's TCG ignores it.
// IA32_APIC_BASE is #GP(0) here, as CPUID reports no APIC; QEMU's CPU has
// one.
#include "guest.h"
#include "idt.h"

// system_regs_asm.S
uint64_t msr_read(uint32_t msr);
void msr_write(uint32_t msr, uint64_t value);
void do_ltr(uint32_t selector);
void do_lldt(uint32_t selector);
void do_sysenter(uint32_t eflags);
void try_sysenter(void);
void try_sysexit(void);
void fpu_fld1(void);
void fpu_movd(void);
void fpu_xorps(void);
void fpu_wait(void);
void fpu_cvt(void);
void fpu_stmxcsr(void);
void fpu_fxsave(void);
extern uint32_t fpu_result, sysenter_seen[4];
extern const char msr_read_insn[], msr_read_after[], msr_write_insn[], msr_write_after[],
    ltr_insn[], ltr_after[], lldt_insn[], lldt_after[], sysenter_entry[], sysenter_insn[],
    sysenter_after[], sysexit_insn[], sysexit_after[], fld1_insn[], movd_insn[], xorps_insn[],
    wait_insn[], cvt_insn[], stmxcsr_insn[], fxsave_insn[];

enum { kCr0Mp = 1 << 1, kCr0Em = 1 << 2, kCr0Ts = 1 << 3 };
enum { kVectorUd = 6, kVectorNm = 7, kVectorNp = 11, kVectorGp = 13 };

static uint32_t read_cr0(void) {
  uint32_t cr0;
  __asm__ volatile("mov %%cr0, %0" : "=r"(cr0));
  return cr0;
}

static void write_cr0(uint32_t cr0) { __asm__ volatile("mov %0, %%cr0" : : "r"(cr0) : "memory"); }

// ---- Exceptions ----

// After logging, the handler resumes at resume_at, or clears CR0.TS (clts)
// or CR0.EM and CR0.TS and restarts the instruction.
static enum { kResume, kClts, kClearEmTs } action;
static const char *resume_at;
static struct {
  unsigned count;
  uint32_t vector, error_code, eip;
} seen;

static void on_exception(struct guest_trap_frame *f) {
  seen.count++;
  seen.vector = f->vector;
  seen.error_code = f->error_code;
  seen.eip = f->eip;
  switch (action) {
    case kResume: f->eip = guest_addr(resume_at); break;
    case kClts: __asm__ volatile("clts"); break;
    case kClearEmTs: write_cr0(read_cr0() & ~(kCr0Em | kCr0Ts)); break;
  }
}

static void expect(int what, const char *resume) {
  seen.count = 0;
  action = what;
  resume_at = resume;
}

// Prints "<what>: vector V error E eip insn+N" and checks one exception.
static void check_exception(const char *what, uint32_t vector, uint32_t error_code,
                            const char *insn) {
  guest_printf("%s: vector 0x%x error 0x%x eip insn+%d\n", what, seen.vector, seen.error_code,
               (int)(seen.eip - guest_addr(insn)));
  check_eq(what, 1, seen.count);
  check_eq(what, vector, seen.vector);
  check_eq(what, error_code, seen.error_code);
  check_eq(what, guest_addr(insn), seen.eip);
}

static void check_no_exception(const char *what) { check_eq(what, 0, seen.count); }

// ---- Descriptor tables ----

static uint64_t gate(uint32_t offset, uint8_t access) {
  return (offset & 0xFFFF) | (uint64_t)kGuestCodeSelector << 16 | (uint64_t)access << 40 |
         (uint64_t)(offset >> 16) << 48;
}

enum { kBig = 0xC0, kByte32 = 0x40 };  // G and D/B; D/B only

static uint64_t gdt[18] __attribute__((aligned(8)));
static uint64_t ldt[3] __attribute__((aligned(8)));
static uint8_t tss_area[4][0x100] __attribute__((aligned(16)));

struct __attribute__((packed)) table_register {
  uint16_t limit;
  uint32_t base;
};

// The flat code and data selectors of guest_load_flat_gdt() (0x08, 0x10,
// here already accessed, so that loads do not change them), then system
// descriptors and assorted segments, the same as the unit tests'.
static void load_gdt(void) {
  gdt[1] = guest_descriptor(0, 0xFFFFF, 0x9B, kBig);                      // 0x08 code
  gdt[2] = guest_descriptor(0, 0xFFFFF, 0x93, kBig);                      // 0x10 data
  gdt[3] = guest_descriptor(guest_addr(tss_area[0]), 0x67, 0x89, 0);      // 0x18 32-bit TSS
  gdt[4] = guest_descriptor(guest_addr(tss_area[1]), 0x67, 0x89, 0);      // 0x20 32-bit TSS
  gdt[5] = guest_descriptor(guest_addr(ldt), sizeof(ldt) - 1, 0x82, 0);   // 0x28 LDT
  gdt[6] = guest_descriptor(guest_addr(tss_area[2]), 0x67, 0x09, 0);      // 0x30 TSS, not present
  gdt[7] = guest_descriptor(0, 0xFFFFF, 0xF3, kBig);                      // 0x38 data, DPL 3
  gdt[8] = guest_descriptor(0, 0xFFFFF, 0x99, kBig);                      // 0x40 code, execute-only
  gdt[9] = guest_descriptor(0, 0xFFFFF, 0x9F, kBig);                      // 0x48 conforming code
  gdt[10] = guest_descriptor(0x1000, 0x12345, 0x91, kByte32);             // 0x50 data, read-only
  gdt[11] = gate(0x12345678, 0x8E);                                       // 0x58 interrupt gate
  gdt[12] = gate(0x9ABCDEF0, 0x8C);                                       // 0x60 call gate
  gdt[13] = guest_descriptor(guest_addr(tss_area[3]), 0x2B, 0x81, 0);     // 0x68 16-bit TSS
  gdt[14] = guest_descriptor(0, 0xFFFF, 0x13, 0);                         // 0x70 data, not present
  gdt[15] = guest_descriptor(0, 0xFFFF, 0x80, 0);                         // 0x78 reserved type 0
  gdt[16] = guest_descriptor(guest_addr(ldt), sizeof(ldt) - 1, 0x02, 0);  // 0x80 LDT, not present
  gdt[17] = guest_descriptor(0, 0xFFFFF, 0xB3, kBig);                     // 0x88 data, DPL 1
  ldt[0] = guest_descriptor(0x2000, 0xFFF, 0x93, kByte32);                // 0x04 data
  ldt[1] = guest_descriptor(0, 0xFFFFF, 0x9B, kBig);                      // 0x0C code
  ldt[2] = guest_descriptor(0, 0x1FFF, 0xF1, kByte32);                    // 0x14 data, DPL 3
  struct table_register gdtr = {sizeof(gdt) - 1, guest_addr(gdt)};
  __asm__ volatile("lgdt %0" : : "m"(gdtr) : "memory");
}

static unsigned access_type(uint16_t selector) {
  return (unsigned)(gdt[selector >> 3] >> 40) & 0xF;
}

static void test_stores(void) {
  struct table_register gdtr, idtr, other, back;
  __asm__ volatile("sgdt %0" : "=m"(gdtr));
  __asm__ volatile("sidt %0" : "=m"(idtr));
  guest_printf("sgdt: limit 0x%04x\n", gdtr.limit);
  check_eq("sgdt limit", sizeof(gdt) - 1, gdtr.limit);
  check_eq("sgdt base", guest_addr(gdt), gdtr.base);
  guest_printf("sidt: limit 0x%04x\n", idtr.limit);
  check_eq("sidt limit", 0x7FF, idtr.limit);
  // Another IDTR value (nothing is delivered while it is loaded).
  other = (struct table_register){0x1234, 0x00ABCDEF};
  __asm__ volatile("lidt %1; sidt %0; lidt %2" : "=m"(back) : "m"(other), "m"(idtr) : "memory");
  check_eq("sidt after lidt: limit", 0x1234, back.limit);
  check_eq("sidt after lidt: base", 0x00ABCDEF, back.base);

  uint32_t cr0 = read_cr0(), msw32, msw16 = 0xFFFFFFFF;
  uint16_t msw_mem;
  __asm__ volatile("smsw %0" : "=r"(msw32));
  __asm__ volatile("smsw %w0" : "+r"(msw16));
  __asm__ volatile("smsw %0" : "=m"(msw_mem));
  guest_printf("smsw: 0x%04x\n", msw_mem);
  check_eq("smsw m16", cr0 & 0xFFFF, msw_mem);
  check_eq("smsw r32 (all of CR0)", cr0, msw32);
  check_eq("smsw r16 keeps bits 31:16", 0xFFFF0000 | (cr0 & 0xFFFF), msw16);

  uint32_t tr = 0xFFFFFFFF, ldtr = 0xFFFFFFFF, tr16 = 0xFFFFFFFF;
  __asm__ volatile("str %0" : "+r"(tr));
  __asm__ volatile("sldt %0" : "+r"(ldtr));
  __asm__ volatile("str %w0" : "+r"(tr16));
  guest_printf("after boot: tr 0x%04x ldtr 0x%04x\n", tr, ldtr);
  check_eq("str r32 after boot", 0, tr);
  check_eq("sldt r32 after boot", 0, ldtr);
  check_eq("str r16 keeps bits 31:16", 0xFFFF0000, tr16);
  check_group("sgdt, sidt, smsw, str, sldt");
}

static uint32_t store_ldtr(void) {
  uint16_t value = 0xFFFF;
  __asm__ volatile("sldt %0" : "=m"(value));
  return value;
}

static uint32_t store_tr(void) {
  uint16_t value = 0xFFFF;
  __asm__ volatile("str %0" : "=m"(value));
  return value;
}

static void test_lldt(void) {
  expect(kResume, lldt_after);
  do_lldt(0x28);
  check_no_exception("lldt 0x28");
  guest_printf("lldt 0x28: ldtr 0x%04x\n", store_ldtr());
  check_eq("sldt after lldt 0x28", 0x28, store_ldtr());
  do_lldt(0x18);
  check_exception("lldt TSS", kVectorGp, 0x18, lldt_insn);
  expect(kResume, lldt_after);
  do_lldt(0x2C);
  check_exception("lldt TI=1", kVectorGp, 0x2C, lldt_insn);
  expect(kResume, lldt_after);
  do_lldt(0x80);
  check_exception("lldt not present", kVectorNp, 0x80, lldt_insn);
  check_eq("ldtr after the faults", 0x28, store_ldtr());
  check_group("lldt");
}

struct segment_check {
  uint16_t selector;
  uint8_t lar, lsl, verr, verw;
  uint32_t limit;
};

static const struct segment_check checks[] = {
    {0x00, 0, 0, 0, 0, 0},          {0x03, 0, 0, 0, 0, 0},          {0x08, 1, 1, 1, 0, 0xFFFFFFFF},
    {0x0B, 0, 0, 0, 0, 0},          {0x10, 1, 1, 1, 1, 0xFFFFFFFF}, {0x18, 1, 1, 0, 0, 0x67},
    {0x28, 1, 1, 0, 0, 0x17},       {0x30, 1, 1, 0, 0, 0x67},       {0x3B, 1, 1, 1, 1, 0xFFFFFFFF},
    {0x40, 1, 1, 0, 0, 0xFFFFFFFF}, {0x4B, 1, 1, 1, 0, 0xFFFFFFFF}, {0x50, 1, 1, 1, 0, 0x12345},
    {0x58, 0, 0, 0, 0, 0},          {0x60, 1, 0, 0, 0, 0},          {0x68, 1, 1, 0, 0, 0x2B},
    {0x70, 1, 1, 1, 1, 0xFFFF},     {0x78, 0, 0, 0, 0, 0},          {0x89, 1, 1, 1, 1, 0xFFFFFFFF},
    {0x8A, 0, 0, 0, 0, 0},          {0x90, 0, 0, 0, 0, 0},          {0x04, 1, 1, 1, 1, 0xFFF},
    {0x0C, 1, 1, 1, 0, 0xFFFFFFFF}, {0x17, 1, 1, 1, 0, 0x1FFF},     {0x1C, 0, 0, 0, 0, 0},
};

// lar, lsl, verr and verw of every selector in `checks` (the LDT loaded).
static void test_segment_checks(void) {
  for (unsigned i = 0; i < ARRAY_SIZE(checks); i++) {
    const struct segment_check *c = &checks[i];
    uint32_t ar = 0xDEADBEEF, limit = 0xDEADBEEF, sel = c->selector;
    uint8_t lar_zf, lsl_zf, verr_zf, verw_zf;
    __asm__ volatile("lar %2, %0; setz %1" : "+r"(ar), "=qm"(lar_zf) : "r"(sel) : "cc");
    __asm__ volatile("lsl %2, %0; setz %1" : "+r"(limit), "=qm"(lsl_zf) : "r"(sel) : "cc");
    __asm__ volatile("verr %w1; setz %0" : "=qm"(verr_zf) : "r"(sel) : "cc");
    __asm__ volatile("verw %w1; setz %0" : "=qm"(verw_zf) : "r"(sel) : "cc");
    guest_printf("selector 0x%02x: lar %u %08x lsl %u %08x verr %u verw %u\n", sel, lar_zf, ar,
                 lsl_zf, limit, verr_zf, verw_zf);
    const uint64_t d = sel & 4 ? ldt[sel >> 3] : gdt[sel >> 3];
    check_eq("lar zf", c->lar, lar_zf);
    check_eq("lar result", c->lar ? (uint32_t)(d >> 32) & 0x00F0FF00 : 0xDEADBEEF, ar);
    check_eq("lsl zf", c->lsl, lsl_zf);
    check_eq("lsl result", c->lsl ? c->limit : 0xDEADBEEF, limit);
    check_eq("verr zf", c->verr, verr_zf);
    check_eq("verw zf", c->verw, verw_zf);
  }
  check_group("lar, lsl, verr, verw");
}

static void test_ltr(void) {
  expect(kResume, ltr_after);
  do_ltr(0x18);
  check_no_exception("ltr 0x18");
  guest_printf("ltr 0x18: tr 0x%04x, descriptor type 0x%x\n", store_tr(), access_type(0x18));
  check_eq("str after ltr", 0x18, store_tr());
  check_eq("TSS busy", 0xB, access_type(0x18));
  static const struct {
    const char *what;
    uint16_t selector;
    uint32_t vector, error_code;
  } faults[] = {
      {"ltr busy TSS", 0x18, kVectorGp, 0x18},
      {"ltr data", 0x10, kVectorGp, 0x10},
      {"ltr LDT", 0x28, kVectorGp, 0x28},
      {"ltr TI=1", 0x1C, kVectorGp, 0x1C},
      {"ltr past the limit", 0x90, kVectorGp, 0x90},
      {"ltr not present", 0x30, kVectorNp, 0x30},
  };
  for (unsigned i = 0; i < ARRAY_SIZE(faults); i++) {
    expect(kResume, ltr_after);
    do_ltr(faults[i].selector);
    check_exception(faults[i].what, faults[i].vector, faults[i].error_code, ltr_insn);
  }
  check_eq("tr after the faults", 0x18, store_tr());
  expect(kResume, ltr_after);
  do_ltr(0x68);
  check_no_exception("ltr 16-bit TSS");
  guest_printf("ltr 0x68: tr 0x%04x, descriptor type 0x%x\n", store_tr(), access_type(0x68));
  check_eq("16-bit TSS busy", 0x3, access_type(0x68));
  check_group("ltr");
}

// ---- MSRs ----

enum {
  kMsrSysenterCs = 0x174,
  kMsrSysenterEsp = 0x175,
  kMsrSysenterEip = 0x176,
  kMsrMiscEnable = 0x1A0,
  kMsrPat = 0x277,
};

static void test_msrs(void) {
  expect(kResume, msr_write_after);
  msr_write(kMsrSysenterCs, 0x0008);
  msr_write(kMsrSysenterEsp, 0x89ABCDEF);
  msr_write(kMsrSysenterEip, 0x00C0FFEE);
  expect(kResume, msr_read_after);
  check_eq64("SYSENTER_CS", 0x0008, msr_read(kMsrSysenterCs));
  check_eq64("SYSENTER_ESP", 0x89ABCDEF, msr_read(kMsrSysenterEsp));
  check_eq64("SYSENTER_EIP", 0x00C0FFEE, msr_read(kMsrSysenterEip));
  check_eq64("PAT at reset", 0x0007040600070406ull, msr_read(kMsrPat));
  check_eq("MISC_ENABLE fast strings", 1, (uint32_t)msr_read(kMsrMiscEnable) & 1);
  expect(kResume, msr_write_after);
  msr_write(kMsrPat, 0x0001050400070406ull);
  expect(kResume, msr_read_after);
  check_eq64("PAT written", 0x0001050400070406ull, msr_read(kMsrPat));
  check_no_exception("MSR accesses");
  check_group("rdmsr/wrmsr: SYSENTER_CS/ESP/EIP, PAT, MISC_ENABLE");
}

// ---- sysenter, sysexit ----

static uint32_t sysenter_stack[64] __attribute__((aligned(16)));

static void test_sysenter(void) {
  const uint32_t top = guest_addr(sysenter_stack + ARRAY_SIZE(sysenter_stack));
  msr_write(kMsrSysenterCs, 0x0B);  // RPL 3: ignored
  msr_write(kMsrSysenterEsp, top);
  msr_write(kMsrSysenterEip, guest_addr(sysenter_entry));
  expect(kResume, 0);
  do_sysenter(0x2 | IF | ZF | CF);
  check_no_exception("sysenter");
  guest_printf("sysenter: cs 0x%04x ss 0x%04x eflags 0x%x\n", sysenter_seen[0], sysenter_seen[1],
               sysenter_seen[3]);
  check_eq("sysenter cs", 0x08, sysenter_seen[0]);
  check_eq("sysenter ss", 0x10, sysenter_seen[1]);
  check_eq("sysenter esp", top, sysenter_seen[2]);
  check_eq("sysenter eflags", 0x2 | ZF | CF, sysenter_seen[3]);
  check_group("sysenter: CS, SS, ESP, EIP from the MSRs, IF cleared");

  msr_write(kMsrSysenterCs, 0);
  expect(kResume, sysenter_after);
  try_sysenter();
  check_exception("sysenter with SYSENTER_CS 0", kVectorGp, 0, sysenter_insn);
  expect(kResume, sysexit_after);
  try_sysexit();
  check_exception("sysexit with SYSENTER_CS 0", kVectorGp, 0, sysexit_insn);
  check_group("sysenter/sysexit: #GP(0) without SYSENTER_CS");
}

// ---- CR0.TS, EM, MP ----

static void set_cr0_bits(uint32_t bits) { write_cr0(read_cr0() | bits); }

static uint32_t store_msw(void) {
  uint16_t value;
  __asm__ volatile("smsw %0" : "=m"(value));
  return value;
}

// Runs `f` with CR0 |= `bits`; expects one exception `vector` at `insn`.
static void check_fpu_fault(const char *what, uint32_t bits, void (*f)(void), uint32_t vector,
                            const char *insn) {
  set_cr0_bits(bits);
  f();
  check_exception(what, vector, 0, insn);
  check_eq("TS and EM after the handler", 0, read_cr0() & (kCr0Ts | kCr0Em));
}

static void test_task_switched(void) {
  expect(kClts, 0);  // lazy FPU switching: the #NM handler runs clts
  fpu_result = 0;
  check_fpu_fault("#NM fld1", kCr0Ts, fpu_fld1, kVectorNm, fld1_insn);
  check_eq("fld1 after #NM", 0x3F800000, fpu_result);
  expect(kClts, 0);
  check_fpu_fault("#NM movd mm0", kCr0Ts, fpu_movd, kVectorNm, movd_insn);
  expect(kClts, 0);
  check_fpu_fault("#NM xorps", kCr0Ts, fpu_xorps, kVectorNm, xorps_insn);
  expect(kClts, 0);
  check_fpu_fault("#NM cvttsd2si", kCr0Ts, fpu_cvt, kVectorNm, cvt_insn);
  check_eq("cvttsd2si after #NM", 1234, fpu_result);
  expect(kClts, 0);
  check_fpu_fault("#NM stmxcsr", kCr0Ts, fpu_stmxcsr, kVectorNm, stmxcsr_insn);
  check_eq("stmxcsr after #NM (flags aside)", 0x1F80, fpu_result & ~0x3Fu);
  expect(kClts, 0);
  check_fpu_fault("#NM fxsave", kCr0Ts, fpu_fxsave, kVectorNm, fxsave_insn);
  // MP is set (guest_enable_sse): wait faults too.
  expect(kClts, 0);
  check_fpu_fault("#NM fwait with MP", kCr0Ts, fpu_wait, kVectorNm, wait_insn);
  // Without MP, wait ignores TS.
  write_cr0((read_cr0() & ~kCr0Mp) | kCr0Ts);
  expect(kClts, 0);
  fpu_wait();
  check_no_exception("fwait with TS, MP clear");
  guest_printf("fwait with TS and MP clear: msw 0x%04x\n", store_msw());
  __asm__ volatile("clts");
  guest_printf("clts: msw 0x%04x\n", store_msw());
  check_eq("clts clears TS", 0, read_cr0() & kCr0Ts);
  set_cr0_bits(kCr0Mp);
  check_group("CR0.TS: #NM from x87, MMX, SSE, fxsave, wait with MP; clts");
}

static void test_emulation(void) {
  expect(kClearEmTs, 0);
  check_fpu_fault("EM: #NM fld1", kCr0Em, fpu_fld1, kVectorNm, fld1_insn);
  expect(kClearEmTs, 0);
  check_fpu_fault("EM: #NM fxsave", kCr0Em, fpu_fxsave, kVectorNm, fxsave_insn);
  expect(kClearEmTs, 0);
  check_fpu_fault("EM: #UD movd mm0", kCr0Em, fpu_movd, kVectorUd, movd_insn);
  expect(kClearEmTs, 0);
  check_fpu_fault("EM: #UD xorps", kCr0Em, fpu_xorps, kVectorUd, xorps_insn);
  expect(kClearEmTs, 0);
  check_fpu_fault("EM: #UD stmxcsr", kCr0Em, fpu_stmxcsr, kVectorUd, stmxcsr_insn);
  // wait ignores EM (MP is set, TS clear).
  set_cr0_bits(kCr0Em);
  expect(kClearEmTs, 0);
  fpu_wait();
  check_no_exception("EM: fwait");
  write_cr0(read_cr0() & ~kCr0Em);
  check_group("CR0.EM: #NM from x87 and fxsave, #UD from MMX and SSE, wait runs");
}

// lmsw loads MP, EM and TS (and could set PE, never clear it).
static void test_lmsw(void) {
  const uint32_t msw = store_msw();
  const uint16_t with_ts = (uint16_t)((msw & ~0xF) | kCr0Ts | kCr0Mp);
  __asm__ volatile("lmsw %0" : : "r"(with_ts));
  guest_printf("lmsw TS|MP, PE clear: msw 0x%04x\n", store_msw());
  check_eq("lmsw leaves PE set", 1, store_msw() & 1);
  check_eq("lmsw sets TS and MP", kCr0Ts | kCr0Mp, store_msw() & (kCr0Ts | kCr0Mp));
  expect(kClts, 0);
  fpu_fld1();
  check_exception("#NM fld1 after lmsw", kVectorNm, 0, fld1_insn);
  check_eq("msw after clts", (msw & ~0xF) | 1 | kCr0Mp, store_msw());
  check_group("lmsw: TS and MP, PE stays");
}

int main(void) {
  guest_load_flat_gdt();
  load_gdt();
  guest_idt_init();
  guest_pic_remap(0x20, 0x28);  // every IRQ masked
  static const uint8_t vectors[] = {kVectorUd, kVectorNm, kVectorNp, kVectorGp};
  for (unsigned i = 0; i < ARRAY_SIZE(vectors); i++) {
    guest_idt_set(vectors[i], on_exception, kGuestInterruptGate, 0);
  }

  test_stores();
  test_lldt();
  test_segment_checks();
  test_ltr();
  test_msrs();
  test_sysenter();
  guest_enable_sse();
  test_task_switched();
  test_emulation();
  test_lmsw();
  return check_finish();
}
