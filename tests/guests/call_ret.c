// Calls, returns and the stack: deep recursion, indirect calls and jumps
// through tables and registers, ret imm16, return-address tricks, push/pop
// with ESP-relative operands, enter/leave, pusha/popa and pushf/popf. The
// instruction sequences are in call_ret_asm.S; expected values follow the
// SDM's pseudocode for each instruction and are derived in the comments.
#include "guest.h"

uint32_t recurse_sum(uint32_t n);
uint32_t jump_mem(uint32_t i);
uint32_t jump_reg(uint32_t i);
uint32_t call_mem(uint32_t i);
uint32_t call_reg(uint32_t i);
uint64_t ret_imm16(void);
uint32_t skip_return(void);
uint32_t push_ret_jump(void);
uint32_t get_eip_delta(void);
void push_pop_esp(uint32_t out[8]);
void enter_leave(uint32_t out[14]);
void pusha_popa(uint32_t out[16]);
uint32_t popf_pushf(uint32_t flags);
uint32_t popf_lahf(uint32_t flags);

static void check_array(const char *name, const uint32_t *got, const uint32_t *want, int n) {
  for (int i = 0; i < n; i++) {
    if (got[i] != want[i]) {
      check_fail("%s[%d] expected %08x got %08x", name, i, want[i], got[i]);
    }
  }
}

// Mutual recursion through function pointers the compiler cannot see
// through, so every level is an indirect call: levels with an even n add 2,
// odd ones add 1.
static uint32_t step_even(uint32_t n);
static uint32_t step_odd(uint32_t n);
static uint32_t (*volatile step[2])(uint32_t) = {step_even, step_odd};

static uint32_t step_even(uint32_t n) { return n ? step[(n - 1) & 1](n - 1) + 2 : 0; }

static uint32_t step_odd(uint32_t n) { return step[(n - 1) & 1](n - 1) + 1; }

static void test_recursion(void) {
  check_eq("recurse_sum(10000)", 50005000, recurse_sum(10000));
  check_eq("recurse_sum(1)", 1, recurse_sum(1));
  // n = 3000 down to 1: 1500 even levels, 1500 odd ones.
  check_eq("indirect mutual recursion", 1500 * 2 + 1500 * 1, step[0](3000));
  check_group("call: deep recursion");
}

static uint32_t op_add(uint32_t x) { return x + 11; }
static uint32_t op_mul(uint32_t x) { return x * 3; }
static uint32_t op_xor(uint32_t x) { return x ^ 0xA5A5; }
static uint32_t op_rot(uint32_t x) { return x << 7 | x >> 25; }
static uint32_t (*volatile ops[4])(uint32_t) = {op_add, op_mul, op_xor, op_rot};

// Dense cases become a jump table at -O2; the asm jump_* functions make sure
// of one.
static __attribute__((noinline)) uint32_t dispatch(uint32_t op, uint32_t x) {
  switch (op) {
    case 0: return x + 1;
    case 1: return x - 3;
    case 2: return x * 5;
    case 3: return x ^ 0xFF;
    case 4: return x >> 1;
    case 5: return x << 2;
    case 6: return ~x;
    case 7: return x + 0x1000;
    default: return 0;
  }
}

static void test_indirect(void) {
  uint32_t x = 1;
  for (uint32_t i = 0; i < 1000; i++) x = ops[i % 4](x) + i;
  uint32_t y = 1;
  for (uint32_t i = 0; i < 1000; i++) {
    switch (i % 4) {
      case 0: y = y + 11; break;
      case 1: y = y * 3; break;
      case 2: y = y ^ 0xA5A5; break;
      case 3: y = y << 7 | y >> 25; break;
    }
    y += i;
  }
  check_eq("call through function-pointer table", y, x);

  uint32_t d = 7, want = 7;
  for (uint32_t i = 0; i < 100; i++) d = dispatch(i % 9, d);
  for (uint32_t i = 0; i < 100; i++) {
    uint32_t op = i % 9;
    want = op == 0   ? want + 1
           : op == 1 ? want - 3
           : op == 2 ? want * 5
           : op == 3 ? want ^ 0xFF
           : op == 4 ? want >> 1
           : op == 5 ? want << 2
           : op == 6 ? ~want
           : op == 7 ? want + 0x1000
                     : 0;
  }
  check_eq("switch dispatch", want, d);

  static const uint32_t targets[6] = {0x100, 0x201, 2 << 8, 9, -4u, 5 ^ 0x5555};
  for (uint32_t i = 0; i < 6; i++) {
    check_eq("jmp *table(,%eax,4)", targets[i], jump_mem(i));
    check_eq("jmp *%ecx", targets[i], jump_reg(i));
    check_eq("call *table(,%eax,4)", targets[i] + 1, call_mem(i));
    check_eq("call *%edx", targets[i] + 1, call_reg(i));
  }
  check_group("call: indirect calls and jumps");
}

static void test_returns(void) {
  uint64_t r = ret_imm16();
  check_eq("ret $12 result", 321, (uint32_t)r);
  check_eq("ret $12 esp", 0, (uint32_t)(r >> 32));
  check_eq("return address moved by callee", 1, skip_return());
  check_eq("push + ret as jump", 7, push_ret_jump());
  check_eq("call/pop eip", 0, get_eip_delta());
  check_group("call: ret imm16 and return addresses");
}

static void test_stack(void) {
  uint32_t pp[8];
  push_pop_esp(pp);
  // See push_pop_esp: push [esp+4] reads before ESP moves; pop [esp+4]
  // writes after, over the 0x11111111 slot; push esp pushes the old ESP;
  // pop esp loads ESP; pushw moves ESP by 2; push imm8 sign-extends.
  static const uint32_t pp_want[8] = {0x11111111, 0x22222222, 0x33333333, 0,
                                      -64u,       2,          0x1234,     0xFFFFFFFE};
  check_array("push/pop esp", pp, pp_want, 8);

  uint32_t el[14];
  enter_leave(el);
  // enter $16,$0: EBP = ESP - 4, ESP = EBP - 16; leave undoes it.
  // enter $4,$1: pushes EBP, then the new frame pointer, then 4 bytes.
  // enter $8,$3: pushes EBP, the two outer frame pointers at [EBP-4] and
  // [EBP-8] (0xD2D2D2D2, 0xD1D1D1D1), the new frame pointer, then 8 bytes.
  // clang-format off
  static const uint32_t el_want[14] = {
      -4u, -20u, 0xEBEBEBEB, 0, 0xEBEBEBEB,
      -12u, -4u,
      -4u, -24u, 0xD2D2D2D2, 0xD1D1D1D1, -4u, 8, 0};
  // clang-format on
  check_array("enter/leave", el, el_want, 14);

  uint32_t pa[16];
  pusha_popa(pa);
  // pusha stores EDI, ESI, EBP, ESP (before pusha), EBX, EDX, ECX, EAX from
  // the lowest address up; popa loads the edited slots 0x10..0x17 back in
  // that order and skips the ESP slot.
  // clang-format off
  static const uint32_t pa_want[16] = {
      0xD7, 0x56, 0xB5, 0, 0xB4, 0xD3, 0xC2, 0xA1,
      0x17, 0x16, 0x15, 0x14, 0, 0x12, 0x11, 0x10};
  // clang-format on
  check_array("pusha/popa", pa, pa_want, 16);
  check_group("call: push/pop, enter/leave, pusha/popa");
}

static void test_flags(void) {
  static const uint32_t patterns[] = {0, F_ARITH, F_ARITH | DF, CF | ZF | DF, PF | AF | SF | OF};
  for (unsigned i = 0; i < ARRAY_SIZE(patterns); i++) {
    uint32_t f = patterns[i];
    uint32_t got = popf_pushf(f | 2);
    check_eq("popf/pushf arithmetic flags and DF", f, got & (F_ARITH | DF));
    check_eq("pushf reserved bit 1", 2, got & 2);
    // popf_lahf: AH = SF:ZF:0:AF:0:PF:1:CF, bit 0 = OF, bit 1 = DF.
    uint32_t seen = popf_lahf(f | 2);
    uint32_t want = (f & (SF | ZF | AF | PF | CF)) << 8 | 0x200 | !!(f & OF) | !!(f & DF) << 1;
    check_eq("flags seen after popf", want, seen);
  }
  check_group("call: pushf/popf");
}

int main(void) {
  test_recursion();
  test_indirect();
  test_returns();
  test_stack();
  test_flags();
  return check_finish();
}
