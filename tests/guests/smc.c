// Self-modifying code: (a) patching an immediate in a function between
// calls, (b) rewriting instructions ahead in the same straight-line block,
// (c) generating functions into a data buffer and regenerating them,
// (d) loops that patch code on the page they run from. Paging is off, so
// every page is writable and executable.
#include "guest.h"

uint32_t smc_get(void);
extern volatile uint32_t smc_get_imm;
uint32_t smc_next(uint32_t v);
uint32_t smc_opcode(uint32_t v);
uint32_t smc_loop(uint32_t n);
uint32_t smc_loop_call(uint32_t n);

static void test_patch_immediate(void) {
  check_eq("smc_get before patch", 0x11111111, smc_get());
  for (uint32_t v = 1; v <= 5; v++) {
    smc_get_imm = v * 0x01010101;
    check_eq("smc_get after patch", v * 0x01010101, smc_get());
  }
  check_group("smc: patched immediate");
}

static void test_same_block(void) {
  static const uint32_t values[] = {42, 0xDEADBEEF, 0, 7};
  for (unsigned i = 0; i < 4; i++) {
    check_eq("store into the next instruction", values[i], smc_next(values[i]));
  }
  for (uint32_t v = 100; v < 103; v++) {
    check_eq("opcode rewritten ahead in the block", v - 1, smc_opcode(v));
  }
  check_group("smc: rewrite within the running block");
}

// A page of its own in .bss, well away from the guest's code.
static uint8_t code_page[4096] __attribute__((aligned(4096)));

typedef uint32_t (*gen_fn)(uint32_t);

// mov $imm, %eax; ret
static gen_fn emit_const(uint8_t *p, uint32_t imm) {
  p[0] = 0xB8;
  memcpy(p + 1, &imm, 4);
  p[5] = 0xC3;
  return (gen_fn)(uintptr_t)p;
}

// mov 4(%esp), %eax; <op> $imm8, %eax; ret with op = add (0xC0) or sub
// (0xE8) in the ModRM of 83 /0 and 83 /5.
static gen_fn emit_arith(uint8_t *p, uint8_t modrm, int8_t imm) {
  static const uint8_t load[4] = {0x8B, 0x44, 0x24, 0x04};
  memcpy(p, load, 4);
  p[4] = 0x83;
  p[5] = modrm;
  p[6] = (uint8_t)imm;
  p[7] = 0xC3;
  return (gen_fn)(uintptr_t)p;
}

static void test_generated(void) {
  gen_fn f = emit_const(code_page, 0x600DC0DE);
  check_eq("generated mov/ret", 0x600DC0DE, f(0));
  f = emit_arith(code_page, 0xC0, 5);
  check_eq("regenerated as add", 15, f(10));
  f = emit_arith(code_page, 0xE8, 5);
  check_eq("regenerated as sub, same length", 5, f(10));
  uint32_t sum = 0, want = 0;
  for (uint32_t i = 0; i < 100; i++) {
    // Alternate between two offsets so both fresh and reused bytes run.
    f = emit_const(code_page + (i & 1) * 64, i * 3);
    sum += f(0);
    want += i * 3;
  }
  check_eq("100 regenerated functions", want, sum);
  check_group("smc: generated code in a data buffer");
}

static void test_patch_loops(void) {
  check_eq("loop patching its own body", 500500, smc_loop(1000));
  check_eq("loop patching a callee", 500500, smc_loop_call(1000));
  check_group("smc: loops patching their own page");
}

int main(void) {
  test_patch_immediate();
  test_same_block();
  test_generated();
  test_patch_loops();
  return check_finish();
}
