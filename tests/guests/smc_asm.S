// Code that smc.c rewrites while it runs. All functions are cdecl.

  .text

// uint32_t smc_get(void): returns the immediate at smc_get_imm, which
// smc.c patches between calls.
  .globl smc_get, smc_get_imm
smc_get:
  .byte 0xB8               // mov $imm32, %eax
smc_get_imm:
  .long 0x11111111
  ret

// uint32_t smc_next(uint32_t v): stores v into the immediate of the very
// next instruction, which must then run with it, and returns that.
  .globl smc_next
smc_next:
  mov 4(%esp), %ecx
  mov %ecx, 1f + 1
1:
  mov $0, %eax
  ret

// uint32_t smc_opcode(uint32_t v): turns the `inc %eax` a few instructions
// ahead into `dec %eax` (0x40 -> 0x48) and back, within one straight-line
// block; returns v - 1 + 1 - 1: the first rewrite must be seen.
  .globl smc_opcode
smc_opcode:
  mov 4(%esp), %eax
  movb $0x48, 1f
  nop
  nop
1:
  inc %eax                 // executes as dec
  movb $0x40, 2f
2:
  dec %eax                 // executes as inc
  movb $0x48, 3f
3:
  inc %eax                 // executes as dec
  movb $0x40, 1b           // restore the original bytes for the next call
  movb $0x48, 2b
  movb $0x40, 3b
  ret

// uint32_t smc_loop(uint32_t n): each iteration patches the immediate of
// the add in its own loop body (same page, same block) with the counter;
// returns n + (n - 1) + ... + 1.
  .globl smc_loop
smc_loop:
  mov 4(%esp), %ecx
  xor %edx, %edx
1:
  mov %ecx, 2f + 2
2:
  addl $0x7FFFFFFF, %edx   // 81 C2 imm32: the immediate is at +2
  dec %ecx
  jnz 1b
  mov %edx, %eax
  ret

// uint32_t smc_loop_call(uint32_t n): the same sum, but each iteration
// patches smc_get (same page, another block) and calls it.
  .globl smc_loop_call
smc_loop_call:
  push %ebx
  mov 8(%esp), %ecx
  xor %ebx, %ebx
1:
  mov %ecx, smc_get_imm
  call smc_get
  add %eax, %ebx
  dec %ecx
  jnz 1b
  mov %ebx, %eax
  pop %ebx
  ret

  .section .note.GNU-stack, "", @progbits
