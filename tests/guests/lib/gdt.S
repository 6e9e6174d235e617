// guest_load_flat_gdt() and guest_load_gdt(): see guest.h.

  .section .rodata
  .balign 8
gdt:
  .quad 0                   // null descriptor
  .quad 0x00CF9A000000FFFF  // 0x08: code, base 0, limit 4 GiB, DPL 0, 32-bit
  .quad 0x00CF92000000FFFF  // 0x10: data, base 0, limit 4 GiB, DPL 0, writable
gdt_end:
gdtr:
  .word gdt_end - gdt - 1
  .long gdt

  .text
  .globl guest_load_flat_gdt
guest_load_flat_gdt:
  push $gdtr
  call guest_load_gdt
  add $4, %esp
  ret

  .globl guest_load_gdt
guest_load_gdt:
  mov 4(%esp), %eax
  lgdt (%eax)
  ljmp $0x08, $1f
1:
  mov $0x10, %ax
  mov %ax, %ds
  mov %ax, %es
  mov %ax, %fs
  mov %ax, %gs
  mov %ax, %ss
  ret

  .section .note.GNU-stack, "", @progbits
