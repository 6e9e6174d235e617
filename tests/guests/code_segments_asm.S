// The code of code_segments.c that runs in code segments with a base:
// everything from based_begin on is assembled as usual but run at offsets
// from it, so addresses in it are written as `label - based_begin`, and
// memory operands reach flat data through DS.

#define FLAT_CS 0x08
#define BASED_CS 0x18
#define OFFSET(label) ((label) - based_begin)

  .data
  .globl based_results
based_results: .fill 16, 4, 0

  .text

// void enter_based(void): a far jmp to based_entry in BASED_CS, which far
// returns here.
  .globl enter_based
enter_based:
  push %ebx
  push %esi
  pushl $FLAT_CS
  pushl $1f
  ljmp $BASED_CS, $OFFSET(based_entry)
1:
  pop %esi
  pop %ebx
  ret

// void enter_at(uint32_t offset, uint32_t selector): a far call to
// selector:offset (the far pointer its arguments make), which far returns.
  .globl enter_at
enter_at:
  lcall *4(%esp)
  ret

  .p2align 4
  .globl based_begin, based_ud, based_after_ud
based_begin:
based_entry:
  call 1f
1:
  pop %eax                            // its own offset
  mov %eax, based_results
  call based_sub                      // returns the offset it pushed
2:
  mov %eax, based_results + 4
  movl $OFFSET(2b), based_results + 8
  mov $1, %ecx
  jmp *%cs:OFFSET(jump_table)(,%ecx,4)
3:
  movl $0xA0, based_results + 12
  jmp 5f
4:
  movl $0xA1, based_results + 12
5:
  mov $OFFSET(based_sub), %eax
  call *%eax                          // through a register
6:
  mov %eax, based_results + 16
  mov %cs:OFFSET(cs_word), %eax       // cs: reads at CS.base + offset
  mov %eax, based_results + 20
  mov $10, %ecx
  xor %edx, %edx
7:
  add %ecx, %edx
  loop 7b
  mov %edx, based_results + 24
based_ud:
  ud2
based_after_ud:
  movl $OFFSET(based_ud), based_results + 28
  lret

based_sub:
  mov (%esp), %eax
  ret

cs_word: .long 0xC0DE5E65
jump_table: .long OFFSET(3b), OFFSET(4b)

// The last byte of a segment whose limit is limited_last.
  .globl limited_last
limited_last:
  lret

  .section .note.GNU-stack, "", @progbits
