// A switch-dispatch bytecode interpreter (a register VM) running a hashing
// loop: indirect jumps through the switch's jump table dominate.
#include "compute.h"

enum op { kLoadImm, kAdd, kAddImm, kSub, kMulImm, kXor, kShrImm, kJnz, kHalt };

struct insn {
  uint8_t op, dst, src;
  int32_t imm;
};

enum { kIterations = 40000000 };

// r0 = iterations, r1 = hash, r2 = LCG state, r3 = scratch, r4 = 1.
static const struct insn program[] = {
    {kLoadImm, 0, 0, kIterations},
    {kLoadImm, 1, 0, 0},
    {kLoadImm, 2, 0, 1},
    {kLoadImm, 4, 0, 1},
    {kMulImm, 2, 2, 1103515245},  // 4: loop
    {kAddImm, 2, 2, 12345},
    {kAdd, 3, 2, 0},
    {kShrImm, 3, 3, 16},
    {kXor, 1, 3, 0},
    {kAdd, 1, 0, 0},
    {kSub, 0, 4, 0},
    {kJnz, 0, 0, 4},
    {kHalt, 0, 0, 0},
};

static uint32_t run(const struct insn *code) {
  uint32_t r[8] = {0};
  for (const struct insn *pc = code;; pc++) {
    switch (pc->op) {
      case kLoadImm: r[pc->dst] = (uint32_t)pc->imm; break;
      case kAdd: r[pc->dst] += r[pc->src]; break;
      case kAddImm: r[pc->dst] = r[pc->src] + (uint32_t)pc->imm; break;
      case kSub: r[pc->dst] -= r[pc->src]; break;
      case kMulImm: r[pc->dst] = r[pc->src] * (uint32_t)pc->imm; break;
      case kXor: r[pc->dst] ^= r[pc->src]; break;
      case kShrImm: r[pc->dst] = r[pc->src] >> pc->imm; break;
      case kJnz:
        if (r[pc->dst]) pc = code + pc->imm - 1;
        break;
      case kHalt: return r[1];
    }
  }
}

uint32_t interpreter(void) {
  // Through a volatile pointer so the program is not specialized at compile
  // time.
  static const struct insn *volatile code = program;
  return run(code);
}
