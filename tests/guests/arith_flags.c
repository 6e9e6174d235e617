// Integer arithmetic and flags, checked against the host CPU.
//
// Each case is a snippet of code that run_case() calls with EAX, EBX, ECX,
// EDX and EFLAGS loaded from the case's inputs and ESI, EDI, EBP pointing
// into a scratch area for memory operands. The outputs are EAX..EDX and the
// EFLAGS bits in the case's mask: the flags the SDM defines for the snippet
// (undefined ones differ between Intel, AMD and QEMU). DF is always checked.
//
// The expected outputs in arith_flags_expected.h come from the host CPU:
// the native build of this file (bt_guest_native, target arith_flags_native)
// runs the same snippets and prints the table,
//   arith_flags_native --generate > arith_flags_expected.h
// and, run without arguments, checks the host against the table the way the
// guest does (ctest guest.arith_flags.native). The 16-bit address-size cases
// touch memory below 64 KiB, which Linux does not map, so they run in the
// guest only and their expected values are worked out by hand below.
#include "guest.h"

#if BT_GUEST_NATIVE
#include <stdio.h>
#include <string.h>
#endif

enum {
  F_ALL = F_ARITH,
  F_LOGIC = F_ALL & ~AF,    // logic ops and shifts by 1: AF undefined
  F_SHIFT = F_LOGIC & ~OF,  // shifts by more than 1: OF undefined too
  F_ROT = F_ALL & ~OF,      // rotates by more than 1: OF undefined
  F_MUL = CF | OF,
  F_NONE = 0,
};

// clang-format off
// X(name, code, eax, ebx, ecx, edx, eflags_in, flags_mask); G(group title).
// Inputs with every flag set (F_ALL) check that a snippet leaves flags alone.
#define CASES(X, G) \
  G("arith: add/adc flags") \
  X(add8_of, "addb %bl, %al", 0x1234567F, 0x01, 0, 0, 0, F_ALL) \
  X(add8_cf, "addb %bl, %al", 0x123456FF, 0x01, 0, 0, 0, F_ALL) \
  X(add16_of, "addw %bx, %ax", 0x12347FFF, 0x0001, 0, 0, 0, F_ALL) \
  X(add16_cf, "addw %bx, %ax", 0x1234FFFF, 0x0001, 0, 0, 0, F_ALL) \
  X(add32_of, "addl %ebx, %eax", 0x7FFFFFFF, 1, 0, 0, 0, F_ALL) \
  X(add32_cf, "addl %ebx, %eax", 0xFFFFFFFF, 1, 0, 0, 0, F_ALL) \
  X(add32_imm8, "addl $-1, %eax", 1, 0, 0, 0, 0, F_ALL) \
  X(add32_imm32, "addl $0x12345678, %ecx", 0, 0, 0xEDCBA988, 0, 0, F_ALL) \
  X(add8_high, "addb %ah, %bh", 0x8000, 0x8000, 0, 0, 0, F_ALL) \
  X(add8_ch_dh, "addb %dh, %ch", 0, 0, 0x3A00, 0x0800, 0, F_ALL) \
  X(add32_esp, "push %ebx; addl %eax, (%esp); pop %eax", \
    0x89ABCDEF, 0x76543211, 0, 0, 0, F_ALL) \
  X(add32_esp_disp, "lea -16(%esp), %esp; movl %ebx, 8(%esp);" \
    "addl 8(%esp), %eax; lea 16(%esp), %esp", 0xC0000000, 0x40000000, 0, \
    0, 0, F_ALL) \
  X(add16_ebp, "movl %ebx, 8(%ebp); addw 8(%ebp), %ax", 0x11118000, \
    0x22228000, 0, 0, 0, F_ALL) \
  X(add32_abs, "movl %ebx, arith_scratch+512; addl arith_scratch+512, %eax", \
    0x0FFFFFFF, 0x00000001, 0, 0, 0, F_ALL) \
  X(add8_mem_dst, "movb %bl, (%esi); addb %al, (%esi); movzbl (%esi), %eax", \
    0x88, 0x88, 0, 0, 0, F_ALL) \
  X(adc32_cf_in, "adcl %ebx, %eax", 0xFFFFFFFF, 0, 0, 0, CF, F_ALL) \
  X(adc8_cf_in, "adcb %bl, %al", 0x7F, 0, 0, 0, CF, F_ALL) \
  X(adc16_chain, "addw %bx, %ax; adcw %dx, %cx", 0xFFFF, 0x0002, 0x7FFF, \
    0x0000, 0, F_ALL) \
  X(adc32_chain, "addl %ebx, %eax; adcl %ecx, %edx", 0x80000000, \
    0x80000000, 0x00000001, 0x7FFFFFFF, 0, F_ALL) \
  X(adc32_ebp_disp32, "movl %ebx, 0x100(%ebp); adcl 0x100(%ebp), %eax", \
    0x7FFFFFFE, 1, 0, 0, CF, F_ALL) \
  G("arith: sub/sbb/cmp/neg flags") \
  X(sub8_borrow, "subb %bl, %al", 0, 1, 0, 0, 0, F_ALL) \
  X(sub16_of, "subw %bx, %ax", 0x8000, 1, 0, 0, 0, F_ALL) \
  X(sub32_zero, "subl %ebx, %eax", 0x12345678, 0x12345678, 0, 0, 0, F_ALL) \
  X(sub32_of, "subl %ebx, %eax", 0x80000000, 1, 0, 0, 0, F_ALL) \
  X(sub8_high, "subb %bh, %ah", 0x1000, 0x2000, 0, 0, 0, F_ALL) \
  X(cmp32_mem, "movl %ebx, (%edi); cmpl %eax, (%edi)", 5, 3, 0, 0, 0, \
    F_ALL) \
  X(cmp8_imm, "cmpb $0x80, %al", 0x7F, 0, 0, 0, 0, F_ALL) \
  X(sbb32_cf_in, "sbbl %ebx, %eax", 0, 0, 0, 0, CF, F_ALL) \
  X(sbb8_of, "sbbb %bl, %al", 0x80, 0, 0, 0, CF, F_ALL) \
  X(sbb32_chain, "subl %ebx, %eax; sbbl %ecx, %edx", 0, 1, 0, 0x80000000, \
    0, F_ALL) \
  X(sbb32_self, "sbbl %eax, %eax", 0x1234, 0, 0, 0, CF, F_ALL) \
  X(neg32_zero, "negl %eax", 0, 0, 0, 0, CF, F_ALL) \
  X(neg32_min, "negl %eax", 0x80000000, 0, 0, 0, 0, F_ALL) \
  X(neg8_one, "negb %bl", 0, 0x01, 0, 0, 0, F_ALL) \
  X(neg16_mem, "movw %ax, (%esi); negw (%esi); movl (%esi), %eax", \
    0x12340010, 0, 0, 0, 0, F_ALL) \
  G("arith: inc/dec flags") \
  X(inc32_of, "incl %eax", 0x7FFFFFFF, 0, 0, 0, CF, F_ALL) \
  X(inc8_wrap, "incb %al", 0xFF, 0, 0, 0, CF, F_ALL) \
  X(inc16_mem, "movw %bx, (%esi); incw (%esi); movzwl (%esi), %eax", 0, \
    0x7FFF, 0, 0, 0, F_ALL) \
  X(inc8_high, "incb %ch", 0, 0, 0x0F00, 0, 0, F_ALL) \
  X(dec32_of, "decl %eax", 0x80000000, 0, 0, 0, CF, F_ALL) \
  X(dec8_wrap, "decb %al", 0, 0, 0, 0, 0, F_ALL) \
  X(dec16_zero, "decw %dx", 0, 0, 0, 0xFFFF0001, CF, F_ALL) \
  X(dec8_high, "decb %dh", 0, 0, 0, 0x8000, 0, F_ALL) \
  G("arith: mul/imul") \
  X(mul8_of, "mulb %bl", 0x80, 2, 0, 0, 0, F_MUL) \
  X(mul8_fits, "mulb %bl", 3, 4, 0, 0, 0, F_MUL) \
  X(mul16, "mulw %bx", 0xFFFF, 0xFFFF, 0, 0x12345678, 0, F_MUL) \
  X(mul32, "mull %ebx", 0xFFFFFFFF, 0xFFFFFFFF, 0, 0, 0, F_MUL) \
  X(mul32_mem, "movl %ebx, (%esi); mull (%esi)", 0x10000, 0x10000, 0, 0, \
    0, F_MUL) \
  X(imul8_1op, "imulb %bl", 0x80, 0xFF, 0, 0, 0, F_MUL) \
  X(imul16_1op, "imulw %bx", 0xFFFE, 0x0003, 0, 0, 0, F_MUL) \
  X(imul32_1op, "imull %ebx", 0xFFFFFFFE, 3, 0, 0, 0, F_MUL) \
  X(imul32_2op_of, "imull %ebx, %eax", 0x10000, 0x10000, 0, 0, 0, F_MUL) \
  X(imul16_2op, "imulw %bx, %ax", 0x00FF, 0x0080, 0, 0, 0, F_MUL) \
  X(imul32_3op_imm8, "imull $-3, %ebx, %eax", 0, 0x15, 0, 0, 0, F_MUL) \
  X(imul32_3op_imm32, "imull $0x12345, %ebx, %ecx", 0, 0x54321, 0, 0, 0, \
    F_MUL) \
  X(imul16_3op_mem, "movw %bx, (%esi); imulw $100, (%esi), %ax", 0, 400, 0, \
    0, 0, F_MUL) \
  G("arith: div/idiv") \
  X(div8, "divb %bl", 1000, 7, 0, 0, 0, F_NONE) \
  X(div16, "divw %bx", 0x0000, 3, 0, 0x0001, 0, F_NONE) \
  X(div32, "divl %ebx", 0x23456789, 0x10000, 0, 0x1, 0, F_NONE) \
  X(div32_mem, "movl %ebx, 4(%edi); divl 4(%edi)", 0xFFFFFFFF, 0xFFFFFFFF, \
    0, 0xFFFFFFFE, 0, F_NONE) \
  X(idiv8, "idivb %bl", 0xFE0C, 7, 0, 0, 0, F_NONE) \
  X(idiv16, "idivw %bx", 0x8000, 0xFFF0, 0, 0xFFFF, 0, F_NONE) \
  X(idiv32, "cltd; idivl %ebx", 0xFFFFFFF9, 2, 0, 0, 0, F_NONE) \
  X(idiv32_neg_divisor, "cltd; idivl %ebx", 100, 0xFFFFFFF9, 0, 0, 0, \
    F_NONE) \
  G("arith: logic flags") \
  X(and32_zero, "andl %ebx, %eax", 0xF0F0F0F0, 0x0F0F0F0F, 0, 0, F_ALL, \
    F_LOGIC) \
  X(and8_high, "andb %ah, %bl", 0x8100, 0x83, 0, 0, CF | OF, F_LOGIC) \
  X(and16_imm, "andw $0x8001, %cx", 0, 0, 0xFFFF8003, 0, 0, F_LOGIC) \
  X(or32_sign, "orl %ebx, %eax", 0x80000000, 0x00000001, 0, 0, 0, F_LOGIC) \
  X(or8_mem, "movb %al, 3(%esi); orb %bl, 3(%esi); movzbl 3(%esi), %edx", \
    0x40, 0x01, 0, 0, F_ALL, F_LOGIC) \
  X(xor32_self, "xorl %eax, %eax", 0x12345678, 0, 0, 0, F_ALL, F_LOGIC) \
  X(xor16, "xorw %bx, %ax", 0xFFFF1234, 0x00001235, 0, 0, 0, F_LOGIC) \
  X(xor8_high, "xorb %ch, %dh", 0, 0, 0x5500, 0xAA00, 0, F_LOGIC) \
  X(test32, "testl %ebx, %eax", 0x80000001, 0x80000000, 0, 0, F_ALL, \
    F_LOGIC) \
  X(not32, "notl %eax", 0x0F0F0F0F, 0, 0, 0, F_ALL, F_ALL) \
  X(not8_high, "notb %ah", 0x1234, 0, 0, 0, 0, F_ALL) \
  X(not16_mem, "movl %eax, (%esi); notw 2(%esi); movl (%esi), %eax", \
    0x12345678, 0, 0, 0, CF | ZF, F_ALL) \
  G("arith: shift flags") \
  X(shl32_1, "shll $1, %eax", 0xC0000001, 0, 0, 0, 0, F_LOGIC) \
  X(shl32_cl, "shll %cl, %eax", 0x1F000000, 0, 4, 0, 0, F_SHIFT) \
  X(shl8_high_cl, "shlb %cl, %ah", 0x1300, 0, 3, 0, 0, F_SHIFT) \
  X(shl16_imm, "shlw $5, %bx", 0, 0xFFFF0C01, 0, 0, 0, F_SHIFT) \
  X(shl32_count0, "shll %cl, %eax", 0x80000000, 0, 0, 0, F_ALL, F_ALL) \
  X(shl32_count32, "shll %cl, %eax", 0x80000000, 0, 32, 0, 0, F_ALL) \
  X(shr32_1, "shrl $1, %eax", 0x80000001, 0, 0, 0, 0, F_LOGIC) \
  X(shr8_high_1, "shrb $1, %bh", 0, 0x0100, 0, 0, 0, F_LOGIC) \
  X(shr16_cl, "shrw %cl, %dx", 0, 0, 15, 0x8000, 0, F_SHIFT) \
  X(sar32_1, "sarl $1, %eax", 0x80000001, 0, 0, 0, 0, F_LOGIC) \
  X(sar8_cl, "sarb %cl, %al", 0x81, 0, 7, 0, 0, F_SHIFT) \
  X(sar8_cl_wide, "sarb %cl, %al", 0x81, 0, 12, 0, 0, F_SHIFT & ~CF) \
  X(sar16_mem, "movw %bx, (%esi); sarw $3, (%esi); movzwl (%esi), %eax", \
    0, 0x8008, 0, 0, 0, F_SHIFT) \
  G("arith: rotate flags") \
  X(rol32_1, "roll $1, %eax", 0x80000000, 0, 0, 0, 0, F_ALL) \
  X(rol32_cl, "roll %cl, %eax", 0x12345678, 0, 8, 0, F_ALL, F_ROT) \
  X(rol8_high, "rolb $4, %ah", 0x8100, 0, 0, 0, 0, F_ROT) \
  X(rol16_cl17, "rolw %cl, %bx", 0, 0x8001, 17, 0, 0, F_ROT) \
  X(rol8_by8, "rolb $8, %al", 0x81, 0, 0, 0, 0, F_ROT) \
  X(ror32_1, "rorl $1, %eax", 0x00000001, 0, 0, 0, 0, F_ALL) \
  X(ror16_cl, "rorw %cl, %dx", 0, 0, 3, 0x0007, F_ALL, F_ROT) \
  X(ror8_mem, "movb %bl, (%esi); rorb $3, (%esi); movzbl (%esi), %eax", 0, \
    0x0F, 0, 0, 0, F_ROT) \
  X(rcl32_1, "rcll $1, %eax", 0x40000000, 0, 0, 0, CF, F_ALL) \
  X(rcl8_cl, "rclb %cl, %bl", 0, 0x81, 5, 0, CF, F_ROT) \
  X(rcl16_3, "rclw $3, %dx", 0, 0, 0, 0xE001, 0, F_ROT) \
  X(rcr32_1, "rcrl $1, %eax", 0x00000001, 0, 0, 0, CF, F_ALL) \
  X(rcr8_high_cl, "rcrb %cl, %bh", 0, 0x0300, 4, 0, CF, F_ROT) \
  X(rcr16_mem, "movw %bx, (%esi); rcrw $1, (%esi); movzwl (%esi), %eax", \
    0, 0x8001, 0, 0, 0, F_ALL) \
  G("arith: shld/shrd flags") \
  X(shld32_imm, "shldl $4, %ebx, %eax", 0x01234567, 0x89ABCDEF, 0, 0, 0, \
    F_SHIFT) \
  X(shld32_cl1, "shldl %cl, %ebx, %eax", 0x40000000, 0x80000000, 1, 0, 0, \
    F_LOGIC) \
  X(shld16_cl, "shldw %cl, %bx, %ax", 0x1234, 0xABCD, 8, 0, 0, F_SHIFT) \
  X(shrd32_imm, "shrdl $12, %ebx, %eax", 0x01234567, 0x89ABCDEF, 0, 0, 0, \
    F_SHIFT) \
  X(shrd16_cl1, "shrdw %cl, %bx, %ax", 0x0001, 0x0000, 1, 0, 0, F_LOGIC) \
  X(shrd32_mem, "movl %eax, (%esi); shrdl %cl, %ebx, (%esi); movl (%esi), " \
    "%eax", 0xFFFF0000, 0x0000FFFF, 16, 0, 0, F_SHIFT) \
  X(shld32_count0, "shldl %cl, %ebx, %eax", 0x1, 0x2, 0, 0, F_ALL, F_ALL) \
  G("arith: bit test and scan") \
  X(bt32_reg, "btl %ebx, %eax", 0x00000100, 8, 0, 0, 0, CF) \
  X(bt32_reg_mod, "btl %ebx, %eax", 0x00000100, 40, 0, 0, CF, CF) \
  X(bt16_imm, "btw $3, %ax", 0x0007, 0, 0, 0, CF, CF) \
  X(bts32_reg, "btsl %ebx, %eax", 0, 31, 0, 0, 0, CF) \
  X(btr32_imm, "btrl $4, %ecx", 0, 0, 0xFFFFFFFF, 0, 0, CF) \
  X(btc16_reg, "btcw %bx, %dx", 0, 15, 0, 0x12348000, 0, CF) \
  X(bt_mem_far, "movl $0, (%esi); movl $0x100, 4(%esi); btl %ebx, (%esi)", \
    0, 40, 0, 0, 0, CF) \
  X(bts_mem_neg, "movl $0, 4(%esi); btsl %ebx, 8(%esi); movl 4(%esi), %eax", \
    0, 0xFFFFFFFF, 0, 0, 0, CF) \
  X(btr_mem_neg, "movl $-1, (%esi); btrl %ebx, 8(%esi); movl (%esi), %eax", \
    0, 0xFFFFFFC1, 0, 0, 0, CF) \
  X(btc_mem_imm_mod, "movl %eax, (%esi); btcl $33, (%esi); movl (%esi), " \
    "%eax", 0x3, 0, 0, 0, 0, CF) \
  X(bsf32, "bsfl %ebx, %eax", 0, 0x000000F0, 0, 0, 0, ZF) \
  X(bsf16, "bsfw %bx, %cx", 0, 0x8000, 0xFFFFFFFF, 0, 0, ZF) \
  X(bsf32_zero, "bsfl %ebx, %ecx; movl $0, %ecx", 0, 0, 0, 0, 0, ZF) \
  X(bsr32, "bsrl %ebx, %eax", 0, 0x80000001, 0, 0, 0, ZF) \
  X(bsr16_mem, "movw %bx, (%esi); bsrw (%esi), %ax", 0xFFFFFFFF, 0x0101, 0, \
    0, 0, ZF) \
  X(bswap_eax, "bswap %eax", 0x12345678, 0, 0, 0, F_ALL, F_ALL) \
  X(bswap_ebx_edx, "bswap %ebx; bswap %edx", 0, 0x01020304, 0, 0xAABBCCDD, \
    0, F_ALL) \
  G("arith: setcc/cmovcc") \
  X(setcc_a_lt_b, SETCC_0_7, 1, 2, 0, 0, 0, F_ALL) \
  X(setcc_a_lt_b_2, SETCC_8_15, 1, 2, 0, 0, 0, F_ALL) \
  X(setcc_signed, SETCC_0_7, 0x80000000, 1, 0, 0, 0, F_ALL) \
  X(setcc_signed_2, SETCC_8_15, 0x80000000, 1, 0, 0, 0, F_ALL) \
  X(setcc_equal, SETCC_0_7, 5, 5, 0, 0, 0, F_ALL) \
  X(setcc_equal_2, SETCC_8_15, 5, 5, 0, 0, 0, F_ALL) \
  X(setcc_minus1_vs_1, SETCC_0_7, 0xFFFFFFFF, 1, 0, 0, 0, F_ALL) \
  X(setcc_minus1_vs_1_2, SETCC_8_15, 0xFFFFFFFF, 1, 0, 0, 0, F_ALL) \
  X(setc_mem, "movl $-1, (%esi); setc (%esi); movl (%esi), %eax", 0, 0, 0, \
    0, CF, F_ALL) \
  X(cmovg_taken, CMOV("cmovgl %edx, %eax"), 3, 2, 0x11, 0x22, 0, F_ALL) \
  X(cmovg_not, CMOV("cmovgl %edx, %eax"), 2, 3, 0x11, 0x22, 0, F_ALL) \
  X(cmovb, CMOV("cmovbl %edx, %eax"), 2, 0xFFFFFFFF, 0x11, 0x22, 0, F_ALL) \
  X(cmovz_not, CMOV("cmovzl %edx, %eax"), 2, 1, 0x11, 0x22, 0, F_ALL) \
  X(cmovs, CMOV("cmovsl %edx, %eax"), 0, 1, 0x11, 0x22, 0, F_ALL) \
  X(cmovo, CMOV("cmovol %edx, %eax"), 0x80000000, 1, 0x11, 0x22, 0, F_ALL) \
  X(cmovp16_not, "cmpl %ebx, %eax; movl %ecx, %eax; cmovpw %dx, %ax", 1, 0, \
    0x11111111, 0x22222222, 0, F_ALL) \
  X(cmovle16, "cmpl %ebx, %eax; movl %ecx, %eax; cmovlew %dx, %ax", 1, 1, \
    0x11111111, 0x22222222, 0, F_ALL) \
  X(cmovae_mem, "movl %edx, (%esi); cmpl %ebx, %eax; movl %ecx, %eax;" \
    "cmovael (%esi), %eax", 7, 7, 0x11, 0x22, 0, F_ALL) \
  G("arith: xadd/cmpxchg") \
  X(xadd32, "xaddl %ebx, %eax", 0xFFFFFFFF, 2, 0, 0, 0, F_ALL) \
  X(xadd8_high, "xaddb %ah, %bl", 0x7F00, 0x01, 0, 0, 0, F_ALL) \
  X(xadd16_mem, "movw %ax, (%esi); xaddw %bx, (%esi); movzwl (%esi), %eax", \
    0x8000, 0x8000, 0, 0, 0, F_ALL) \
  X(lock_xadd32_mem, "movl %eax, (%esi); lock xaddl %ebx, (%esi);" \
    "movl (%esi), %eax", 10, 20, 0, 0, 0, F_ALL) \
  X(cmpxchg32_eq, "movl %eax, (%esi); cmpxchgl %ebx, (%esi);" \
    "movl (%esi), %ecx", 0x1234, 0x5678, 0, 0, 0, F_ALL) \
  X(cmpxchg32_ne, "movl %ecx, (%esi); cmpxchgl %ebx, (%esi);" \
    "movl (%esi), %ecx", 0x1234, 0x5678, 0x9ABC, 0, 0, F_ALL) \
  X(cmpxchg8_reg, "cmpxchgb %bl, %cl", 0x42, 0x99, 0x42, 0, 0, F_ALL) \
  X(cmpxchg16_ne, "cmpxchgw %bx, %cx", 0xFFFF0001, 0x99, 0x7002, 0, 0, \
    F_ALL) \
  X(cmpxchg8b_eq, "movl $0x11111111, (%esi); movl $0x22222222, 4(%esi);" \
    "cmpxchg8b (%esi); movl (%esi), %ebx; movl 4(%esi), %ecx", 0x11111111, \
    0x33333333, 0x44444444, 0x22222222, CF | SF, F_ALL) \
  X(cmpxchg8b_ne, "movl $0x11111111, (%esi); movl $0x22222222, 4(%esi);" \
    "lock cmpxchg8b (%esi); movl (%esi), %ebx; movl 4(%esi), %ecx", 0, \
    0x33333333, 0x44444444, 0x22222222, F_ALL, F_ALL) \
  G("arith: lahf/sahf") \
  X(lahf_all, "lahf", 0, 0, 0, 0, F_ALL, F_ALL) \
  X(lahf_some, "lahf", 0xFFFFFFFF, 0, 0, 0, CF | ZF, F_ALL) \
  X(sahf_set, "sahf", 0xD500, 0, 0, 0, 0, F_ALL) \
  X(sahf_clear, "sahf", 0x0000, 0, 0, 0, F_ALL, F_ALL) \
  G("arith: sign and zero extension") \
  X(cbw, "cbtw", 0x12345680, 0, 0, 0, 0, F_ALL) \
  X(cwde, "cwtl", 0x12348000, 0, 0, 0, 0, F_ALL) \
  X(cwd, "cwtd", 0x8000, 0, 0, 0x12345678, 0, F_ALL) \
  X(cdq_neg, "cltd", 0x80000000, 0, 0, 0, 0, F_ALL) \
  X(cdq_pos, "cltd", 0x7FFFFFFF, 0, 0, 0xFFFFFFFF, 0, F_ALL) \
  X(movzx8_high, "movzbl %bh, %eax", 0xFFFFFFFF, 0x8000, 0, 0, 0, F_ALL) \
  X(movsx8_high, "movsbl %ah, %ecx", 0x8000, 0, 0, 0, 0, F_ALL) \
  X(movsx8_16, "movsbw %al, %dx", 0x80, 0, 0, 0x12345678, 0, F_ALL) \
  X(movzx8_16, "movzbw %bl, %cx", 0, 0xFF, 0xFFFFFFFF, 0, 0, F_ALL) \
  X(movzx16_mem, "movl %ebx, (%esi); movzwl 2(%esi), %eax", 0, 0x8001FFFF, \
    0, 0, 0, F_ALL) \
  X(movsx16_mem, "movl %ebx, (%esi); movswl 2(%esi), %eax", 0, 0x8001FFFF, \
    0, 0, 0, F_ALL) \
  G("arith: 16-bit address size lea") \
  X(lea16_wrap, "movl %ecx, %esi; leal 0x20(%bx,%si), %eax", 0, 0xFFF0, \
    0x12340010, 0, 0, F_ALL) \
  X(lea16_bp_di, "movl %ebx, %ebp; movl %ecx, %edi; leal -1(%bp,%di), %eax", \
    0, 0x12340000, 0x56780000, 0, 0, F_ALL)

// Eight conditions of the comparison EAX - EBX into AL AH BL BH CL CH DL DH.
#define SETCC_0_7 \
  "cmpl %ebx, %eax; seto %al; setno %ah; setb %bl; setae %bh; sete %cl;" \
  "setne %ch; setbe %dl; seta %dh"
#define SETCC_8_15 \
  "cmpl %ebx, %eax; sets %al; setns %ah; setp %bl; setnp %bh; setl %cl;" \
  "setge %ch; setle %dl; setg %dh"
// EAX = cond(EAX - EBX) ? EDX : ECX.
#define CMOV(insn) "cmpl %ebx, %eax; movl %ecx, %eax;" insn

// clang-format on

struct regs {
  uint32_t eax, ebx, ecx, edx, eflags;
};

__attribute__((used)) uint8_t arith_scratch[1024];

// run_case(snippet, regs): runs `snippet` with the registers and flags of
// *regs and stores what it leaves back into *regs.
void run_case(void (*snippet)(void), struct regs *r);
__asm__(
    ".pushsection .text\n"
    "run_case:\n"
    "  push %ebp; push %ebx; push %esi; push %edi\n"
    "  mov 20(%esp), %eax\n"
    "  mov 24(%esp), %edx\n"
    "  push %edx\n"
    "  push %eax\n"
    "  pushl 16(%edx)\n"
    "  popf\n"
    "  mov $arith_scratch, %esi\n"
    "  lea 64(%esi), %edi\n"
    "  lea 128(%esi), %ebp\n"
    "  mov 0(%edx), %eax\n"
    "  mov 4(%edx), %ebx\n"
    "  mov 8(%edx), %ecx\n"
    "  mov 12(%edx), %edx\n"
    "  call *(%esp)\n"
    "  pushf\n"
    "  push %edx\n"
    "  mov 12(%esp), %edx\n"  // stack: edx, eflags, snippet, regs
    "  popl 12(%edx)\n"
    "  popl 16(%edx)\n"
    "  mov %eax, 0(%edx)\n"
    "  mov %ebx, 4(%edx)\n"
    "  mov %ecx, 8(%edx)\n"
    "  add $8, %esp\n"
    "  pop %edi; pop %esi; pop %ebx; pop %ebp\n"
    "  ret\n"
    ".popsection\n");

#define SNIPPET(name, code, ...)                          \
  void snippet_##name(void);                              \
  __asm__(".pushsection .text\nsnippet_" #name ":\n" code \
          "\nret\n"                                       \
          ".popsection\n");
#define NO_GROUP(title)
CASES(SNIPPET, NO_GROUP)

struct arith_case {
  const char *name;  // or, with snippet == 0, the title of a group
  void (*snippet)(void);
  struct regs in;
  uint32_t flags_mask;
};

#define CASE_ENTRY(name, code, a, b, c, d, flags, mask) \
  {#name, snippet_##name, {a, b, c, d, flags}, (mask) | DF},
#define GROUP_ENTRY(title) {title, 0, {0, 0, 0, 0, 0}, 0},
static const struct arith_case cases[] = {CASES(CASE_ENTRY, GROUP_ENTRY)};

#define CASE_COUNT(...) +1
#define NO_COUNT(title)
static const struct regs expected[CASES(CASE_COUNT, NO_COUNT)] = {
#include "arith_flags_expected.h"
};

static struct regs run(void (*snippet)(void), const struct regs *in) {
  struct regs r = *in;
  memset(arith_scratch, 0xCC, sizeof(arith_scratch));
  run_case(snippet, &r);
  return r;
}

static struct regs run_masked(const struct arith_case *c) {
  struct regs r = run(c->snippet, &c->in);
  r.eflags &= c->flags_mask;
  return r;
}

static void check_cases(void) {
  static const char *const names[] = {"eax", "ebx", "ecx", "edx", "eflags"};
  const char *group = 0;
  const struct regs *want = expected;
  for (const struct arith_case *c = cases; c != cases + ARRAY_SIZE(cases); c++) {
    if (!c->snippet) {
      if (group) check_group(group);
      group = c->name;
      continue;
    }
    struct regs got = run_masked(c);
    const uint32_t *w = &want->eax, *g = &got.eax;
    for (int i = 0; i < 5; i++) {
      if (w[i] != g[i]) {
        check_fail("%s %s expected %08x got %08x", c->name, names[i], w[i], g[i]);
      }
    }
    want++;
  }
  check_group(group);
}

#if BT_GUEST_NATIVE
static void print_expected(void) {
  printf(
      "// Generated by `arith_flags_native --generate` (see arith_flags.c)"
      "\n// from the host CPU: eax, ebx, ecx, edx, masked eflags.\n");
  for (const struct arith_case *c = cases; c != cases + ARRAY_SIZE(cases); c++) {
    if (!c->snippet) continue;
    struct regs r = run_masked(c);
    printf("{0x%08x, 0x%08x, 0x%08x, 0x%08x, 0x%04x},  // %s\n", r.eax, r.ebx, r.ecx, r.edx,
           r.eflags, c->name);
  }
}

int main(int argc, char **argv) {
  if (argc == 2 && !strcmp(argv[1], "--generate")) {
    print_expected();
    return 0;
  }
  check_cases();
  return check_finish();
}
#else
// clang-format off
// 16-bit address size (0x67 prefix) forms, guest only. Each reads or writes
// kLow, where every dword holds 0xA5000000 plus its own address, so a load's
// expected value names the address it should have come from.
// X(name, code, expected eax)
#define ADDR16_CASES(X) \
  X(bx_si_disp8, "movw $0x7F00, %bx; movw $0x00F0, %si;" \
    "movl 0x10(%bx,%si), %eax", 0xA5008000) \
  X(bx_si_wrap, "movw $0xFFF0, %bx; movw $0x8010, %si;" \
    "movl 0x10(%bx,%si), %eax", 0xA5008010) \
  X(bp_di_disp16, "movw $0x4000, %bp; movw $0x3F00, %di;" \
    "movl 0x104(%bp,%di), %eax", 0xA5008004) \
  X(bp_si_neg, "movw $0x8100, %bp; movw $0x0010, %si;" \
    "movl -0x108(%bp,%si), %eax", 0xA5008008) \
  X(si, "movw $0x8008, %si; movl (%si), %eax", 0xA5008008) \
  X(di_disp8, "movw $0x8010, %di; movl -4(%di), %eax", 0xA500800C) \
  X(bx, "movw $0x8020, %bx; movl (%bx), %eax", 0xA5008020) \
  X(bp, "movw $0x8028, %bp; movl (%bp), %eax", 0xA5008028) \
  X(moffs16, "addr16 movl 0x8024, %eax", 0xA5008024) \
  X(disp16, "addr16 movl 0x8030, %ecx; movl %ecx, %eax", 0xA5008030) \
  X(add_mem_dst, "movl $0x7FFFFFFF, 0x8040; movw $0x8000, %bx;" \
    "movw $0x0040, %di; addl $1, (%bx,%di); movl 0x8040, %eax", 0x80000000) \
  X(store_wrap, "movw $0xC000, %bx; movw $0xC044, %si;" \
    "movl $0x600DF00D, (%bx,%si); movl 0x8044, %eax", 0x600DF00D) \
  X(byte_high, "movw $0x8050, %si; movb 1(%si), %ah; movzbl %ah, %eax", \
    0x80)
// clang-format on

#define ADDR16_SNIPPET(name, code, ...) SNIPPET(addr16_##name, code)
ADDR16_CASES(ADDR16_SNIPPET)

enum { kLow = 0x8000, kLowDwords = 64 };

static void check_addr16_cases(void) {
  static const struct regs zero;
  volatile uint32_t *low = (volatile uint32_t *)kLow;
#define ADDR16_CHECK(name, code, want)                                      \
  for (int i = 0; i < kLowDwords; i++) low[i] = 0xA5000000u + kLow + 4 * i; \
  check_eq("addr16 " #name, want, run(snippet_addr16_##name, &zero).eax);
  ADDR16_CASES(ADDR16_CHECK)
  check_group("arith: 16-bit address size operands");
}

int main(void) {
  guest_load_flat_gdt();  // kLow may hold the loader's GDT
  check_cases();
  check_addr16_cases();
  return check_finish();
}
#endif
