// Assembly half of call_ret: control transfers and stack instructions whose
// exact form matters. All functions are cdecl and called from call_ret.c,
// which holds the expected values.

  .text

// uint32_t recurse_sum(uint32_t n): 1 + 2 + ... + n, one call level per term.
  .globl recurse_sum
recurse_sum:
  mov 4(%esp), %eax
  call 1f
  ret
1:
  test %eax, %eax
  jz 2f
  push %eax
  dec %eax
  call 1b
  pop %ecx
  add %ecx, %eax
2:
  ret

// uint32_t jump_mem(uint32_t i) and jump_reg(uint32_t i), i in 0..5: a jump
// table through memory (jmp *table(,%eax,4)) and through a register.
  .globl jump_mem, jump_reg
jump_mem:
  mov 4(%esp), %eax
  jmp *jump_targets(,%eax,4)
jump_reg:
  mov 4(%esp), %eax
  mov jump_targets(,%eax,4), %ecx
  jmp *%ecx
target0:
  mov $0x100, %eax
  ret
target1:
  lea 0x200(%eax), %eax
  ret
target2:
  shl $8, %eax
  ret
target3:
  imul $3, %eax, %eax
  ret
target4:
  neg %eax
  ret
target5:
  xor $0x5555, %eax
  ret

// uint32_t call_mem(uint32_t i) and call_reg(uint32_t i), i in 0..5: the
// same targets reached with call *table(,%eax,4) and call *%edx; adds 1
// after the call returns.
  .globl call_mem, call_reg
call_mem:
  mov 4(%esp), %eax
  call *jump_targets(,%eax,4)
  inc %eax
  ret
call_reg:
  mov 4(%esp), %eax
  mov jump_targets(,%eax,4), %edx
  call *%edx
  inc %eax
  ret

// uint64_t ret_imm16(void): low half = the sum a callee computes from three
// stack arguments it pops with ret $12; high half = ESP after the call minus
// ESP before the pushes (0 when ret imm16 works).
  .globl ret_imm16
ret_imm16:
  push %ebx
  mov %esp, %ebx
  push $1
  push $20
  push $300
  call sum3_ret12
  mov %esp, %edx
  sub %ebx, %edx
  mov %ebx, %esp
  pop %ebx
  ret
sum3_ret12:
  mov 4(%esp), %eax
  add 8(%esp), %eax
  add 12(%esp), %eax
  ret $12

// uint32_t skip_return(void): a callee moves its return address past the
// 5-byte mov after the call, so the result is 1, not 0xBAE.
  .globl skip_return
skip_return:
  xor %eax, %eax
  call 1f
  mov $0xBAD, %eax
  inc %eax
  ret
1:
  addl $5, (%esp)
  ret

// uint32_t push_ret_jump(void): push + ret used as a jump; returns 7.
  .globl push_ret_jump
push_ret_jump:
  push $1f
  ret
1:
  mov $7, %eax
  ret

// uint32_t get_eip_delta(void): the call/pop idiom of PIC code; returns the
// popped address minus the label's link-time address, 0.
  .globl get_eip_delta
get_eip_delta:
  call 1f
1:
  pop %eax
  sub $1b, %eax
  ret

// void push_pop_esp(uint32_t out[8]): push and pop with ESP-relative memory
// operands and ESP itself as the operand. See call_ret.c for the values.
  .globl push_pop_esp
push_pop_esp:
  push %ebx
  push %esi
  mov 12(%esp), %esi
  mov %esp, %ebx
  push $0x11111111
  push $0x22222222
  pushl 4(%esp)            // the address is computed before ESP moves
  popl 0(%esi)
  push $0x33333333
  popl 4(%esp)             // the address is computed after ESP moves
  popl 4(%esi)
  popl 8(%esi)
  push %esp                // pushes ESP from before the push
  pop %eax
  sub %ebx, %eax
  mov %eax, 12(%esi)
  lea -64(%esp), %eax
  push %eax
  pop %esp                 // ESP = the popped value
  mov %esp, %eax
  sub %ebx, %eax
  mov %eax, 16(%esi)
  mov %ebx, %esp
  pushw $0x1234            // 16-bit push: ESP moves by 2
  mov %ebx, %eax
  sub %esp, %eax
  mov %eax, 20(%esi)
  popw %ax
  movzwl %ax, %eax
  mov %eax, 24(%esi)
  push $-2                 // imm8, sign-extended
  pushl (%esp)
  popl 28(%esi)
  mov %ebx, %esp
  pop %esi
  pop %ebx
  ret

// void enter_leave(uint32_t out[14]): enter with nesting levels 0, 1 and 3
// and the matching leave. EBP and ESP are recorded relative to ESP at the
// first enter; for level 3, EBP first points 8 bytes into enter_display so
// that enter copies its two outer frame pointers.
  .globl enter_leave
enter_leave:
  push %ebp
  push %ebx
  push %esi
  mov 16(%esp), %esi
  mov %esp, %ebx
  mov $0xEBEBEBEB, %ebp
  enter $16, $0
  mov %ebp, %eax
  sub %ebx, %eax
  mov %eax, 0(%esi)        // -4
  mov %esp, %eax
  sub %ebx, %eax
  mov %eax, 4(%esi)        // -20
  mov (%ebp), %eax
  mov %eax, 8(%esi)        // 0xEBEBEBEB
  leave
  mov %esp, %eax
  sub %ebx, %eax
  mov %eax, 12(%esi)       // 0
  mov %ebp, 16(%esi)       // 0xEBEBEBEB

  enter $4, $1
  mov %esp, %eax
  sub %ebx, %eax
  mov %eax, 20(%esi)       // -12
  mov -4(%ebp), %eax
  sub %ebx, %eax
  mov %eax, 24(%esi)       // -4: the new frame pointer
  leave

  mov $enter_display + 8, %ebp
  enter $8, $3
  mov %ebp, %eax
  sub %ebx, %eax
  mov %eax, 28(%esi)       // -4
  mov %esp, %eax
  sub %ebx, %eax
  mov %eax, 32(%esi)       // -24
  mov -4(%ebp), %eax
  mov %eax, 36(%esi)       // 0xD2D2D2D2
  mov -8(%ebp), %eax
  mov %eax, 40(%esi)       // 0xD1D1D1D1
  mov -12(%ebp), %eax
  sub %ebx, %eax
  mov %eax, 44(%esi)       // -4
  leave
  mov %ebp, %eax
  sub $enter_display, %eax
  mov %eax, 48(%esi)       // 8
  mov %esp, %eax
  sub %ebx, %eax
  mov %eax, 52(%esi)       // 0
  pop %esi
  pop %ebx
  pop %ebp
  ret

// void pusha_popa(uint32_t out[16]): out[0..7] = the image pusha stores
// (EDI at the lowest address; its ESP slot relative to ESP before pusha);
// out[8..15] = EAX..EDI after popa of an edited image (ESP relative to its
// value before pusha: popa skips the ESP slot).
  .globl pusha_popa
pusha_popa:
  push %ebp
  push %ebx
  push %esi
  push %edi
  mov 20(%esp), %eax
  mov %eax, pusha_out
  mov %esp, pusha_esp
  mov $0xA1, %eax
  mov $0xC2, %ecx
  mov $0xD3, %edx
  mov $0xB4, %ebx
  mov $0xB5, %ebp
  mov $0x56, %esi
  mov $0xD7, %edi
  pusha
  mov pusha_out, %edi
  xor %ecx, %ecx
1:
  mov (%esp,%ecx,4), %eax
  mov %eax, (%edi,%ecx,4)
  inc %ecx
  cmp $8, %ecx
  jne 1b
  mov pusha_esp, %eax
  sub %eax, 12(%edi)
  xor %ecx, %ecx
2:
  lea 0x10(%ecx), %eax
  mov %eax, (%esp,%ecx,4)
  inc %ecx
  cmp $8, %ecx
  jne 2b
  popa
  mov %eax, pusha_regs + 0
  mov %ecx, pusha_regs + 4
  mov %edx, pusha_regs + 8
  mov %ebx, pusha_regs + 12
  mov %esp, pusha_regs + 16
  mov %ebp, pusha_regs + 20
  mov %esi, pusha_regs + 24
  mov %edi, pusha_regs + 28
  mov pusha_out, %edi
  xor %ecx, %ecx
3:
  mov pusha_regs(,%ecx,4), %eax
  mov %eax, 32(%edi,%ecx,4)
  inc %ecx
  cmp $8, %ecx
  jne 3b
  mov pusha_esp, %eax
  sub %eax, 48(%edi)
  mov pusha_esp, %esp
  pop %edi
  pop %esi
  pop %ebx
  pop %ebp
  ret

// uint32_t popf_pushf(uint32_t flags): EFLAGS after popf of `flags`, read
// back with pushf. DF is cleared before returning to C.
  .globl popf_pushf
popf_pushf:
  pushl 4(%esp)
  popf
  pushf
  pop %eax
  cld
  ret

// uint32_t popf_lahf(uint32_t flags): the flags as instructions after popf
// see them: lahf into bits 15:8, seto into bit 0, DF (via a movsb that
// steps ESI) into bit 1.
  .globl popf_lahf
popf_lahf:
  push %esi
  push %edi
  pushl 12(%esp)
  popf
  lahf
  seto %al
  mov $popf_byte, %esi
  mov $popf_byte, %edi
  movsb
  cld
  cmp $popf_byte, %esi
  setb %cl
  shl $1, %cl
  or %cl, %al
  movzwl %ax, %eax
  pop %edi
  pop %esi
  ret

  .section .rodata
  .balign 4
jump_targets:
  .long target0, target1, target2, target3, target4, target5

  .data
  .balign 4
enter_display:
  .long 0xD1D1D1D1, 0xD2D2D2D2, 0
popf_byte:
  .byte 0

  .bss
  .balign 4
pusha_out:
  .skip 4
pusha_esp:
  .skip 4
pusha_regs:
  .skip 32

  .section .note.GNU-stack, "", @progbits
