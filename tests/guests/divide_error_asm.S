// The faulting division and the interrupt entry points for divide_error.c.

  .text

// void trigger_de(void): divides by zero at de_div_insn with every other
// register set to a known value (see kRegs in divide_error.c). Returns only
// if the division did not fault.
  .globl trigger_de, de_div_insn
trigger_de:
  push %ebp
  push %ebx
  push %esi
  push %edi
  mov $0x12345678, %eax
  mov $0x11111111, %edx
  xor %ecx, %ecx
  mov $0x22222222, %ebx
  mov $0x33333333, %esi
  mov $0x44444444, %edi
  mov $0x55555555, %ebp
de_div_insn:
  divl %ecx
  pop %edi
  pop %esi
  pop %ebx
  pop %ebp
  ret

// Vector 0 (interrupt gate): hands the saved registers and the exception
// frame to de_handler(), which does not return.
  .globl de_entry
de_entry:
  pusha
  push %esp
  call de_handler

// Every other vector below 32.
  .globl unexpected_entry
unexpected_entry:
  push %esp
  call unexpected_handler

  .section .note.GNU-stack, "", @progbits
