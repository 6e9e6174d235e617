// Multiboot v1 header and entry point shared by every guest.
// The loader enters _start in 32-bit protected mode with flat segments,
// paging and interrupts off; nothing else about the machine is assumed.

#define MB_MAGIC 0x1BADB002
#define MB_FLAGS 0x00000002  // bit 1: ask for memory info; ELF, no a.out kludge
#define DEBUG_EXIT_PORT 0xF4

  .section .multiboot, "a"
  .balign 4
  .long MB_MAGIC, MB_FLAGS, -(MB_MAGIC + MB_FLAGS)

  .section .bss
  .balign 16
  .skip 262144  // 256 KiB: call_ret recurses 10000 calls deep
stack_top:

  .text
  .globl _start
_start:
  // Zero .bss ourselves instead of trusting the loader. A plain loop keeps
  // string instructions out of the boot path: only string_ops tests them.
  mov $__bss_start, %edi
  mov $__bss_end, %ecx
1:
  cmp %ecx, %edi
  jae 2f
  movl $0, (%edi)
  add $4, %edi
  jmp 1b
2:
  mov $stack_top, %esp
  xor %ebp, %ebp
  push $0
  popf
  call main
  push %eax
  call guest_exit

  .globl guest_exit
guest_exit:
  mov 4(%esp), %eax
  mov $DEBUG_EXIT_PORT, %dx
  outl %eax, %dx
3:
  cli
  hlt
  jmp 3b

  .section .note.GNU-stack, "", @progbits
