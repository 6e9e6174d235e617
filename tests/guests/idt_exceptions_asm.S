// The instructions that raise exceptions and software interrupts for
// idt_exceptions.c. Each trigger stores its ESP in trap_esp just before the
// instruction at its *_insn label, so the handler can check where the
// processor put the frame; *_after labels the next instruction.

  .data
  .globl trap_esp, flags_after, regs_after
trap_esp: .long 0
flags_after: .long 0
regs_after: .long 0, 0, 0, 0, 0, 0  // ebx, ecx, edx, esi, edi, ebp after the int
bound_pair: .long 0, 10  // lower and upper bound, signed, inclusive

  .text

// uint32_t trigger_de(void): divl %ecx with ECX = 0 and EDX:EAX =
// 0x11111111:0x12345678; returns EAX.
  .globl trigger_de, de_insn, de_after
trigger_de:
  mov $0x12345678, %eax
  mov $0x11111111, %edx
  xor %ecx, %ecx
  mov %esp, trap_esp
de_insn:
  divl %ecx
de_after:
  ret

// void trigger_ud(void)
  .globl trigger_ud, ud_insn, ud_after
trigger_ud:
  mov %esp, trap_esp
ud_insn:
  ud2
ud_after:
  ret

// void trigger_bp(void)
  .globl trigger_bp, bp_insn, bp_after
trigger_bp:
  mov %esp, trap_esp
bp_insn:
  int3
bp_after:
  ret

// void trigger_into(uint32_t value): adds 1 to `value` (OF=1 exactly for
// 0x7fffffff), then into.
  .globl trigger_into, of_insn, of_after
trigger_into:
  mov 4(%esp), %eax
  add $1, %eax
  mov %esp, trap_esp
of_insn:
  into
of_after:
  ret

// void trigger_bound(int32_t index): bound against [0, 10].
  .globl trigger_bound, br_insn, br_after
trigger_bound:
  mov 4(%esp), %eax
  mov %esp, trap_esp
br_insn:
  bound %eax, bound_pair
br_after:
  ret

// uint32_t trigger_load_ds(uint32_t selector): mov to DS; returns DS after.
  .globl trigger_load_ds, ds_insn, ds_after
trigger_load_ds:
  mov 4(%esp), %eax
  mov %esp, trap_esp
ds_insn:
  mov %eax, %ds
ds_after:
  mov %ds, %eax
  ret

// uint32_t trigger_load_ss(uint32_t selector): mov to SS; returns SS after.
  .globl trigger_load_ss, ss_insn, ss_after
trigger_load_ss:
  mov 4(%esp), %eax
  mov %esp, trap_esp
ss_insn:
  mov %eax, %ss
ss_after:
  mov %ss, %eax
  ret

// void trigger_int82(void): int through the gate idt_exceptions.c clears.
  .globl trigger_int82, int82_insn, int82_after
trigger_int82:
  mov %esp, trap_esp
int82_insn:
  int $0x82
int82_after:
  ret

// uint32_t trigger_int80(uint32_t eflags, uint32_t eax) and trigger_int81:
// load EFLAGS and EAX, set EBX..EBP to kIntRegs (idt_exceptions.c), int;
// then store EFLAGS in flags_after and EBX..EBP in regs_after, set EFLAGS
// to 0x2 (IF=0) and return EAX.
.macro int_trigger vector
  .globl trigger_int\vector, int\vector\()_insn, int\vector\()_after
trigger_int\vector:
  push %ebp
  push %ebx
  push %esi
  push %edi
  pushl 20(%esp)
  popf
  mov 24(%esp), %eax
  mov $0xB0000000, %ebx
  mov $0xC0000000, %ecx
  mov $0xD0000000, %edx
  mov $0x50000000, %esi
  mov $0xD1000000, %edi
  mov $0xB1000000, %ebp
  mov %esp, trap_esp
int\vector\()_insn:
  int $0x\vector
int\vector\()_after:
  pushf
  popl flags_after
  pushl $0x2
  popf
  mov %ebx, regs_after
  mov %ecx, regs_after + 4
  mov %edx, regs_after + 8
  mov %esi, regs_after + 12
  mov %edi, regs_after + 16
  mov %ebp, regs_after + 20
  pop %edi
  pop %esi
  pop %ebx
  pop %ebp
  ret
.endm
  int_trigger 80
  int_trigger 81

// void nested_int3(void): int3 from inside an interrupt handler.
  .globl nested_int3, nested_int3_insn, nested_int3_after
nested_int3:
  mov %esp, trap_esp
nested_int3_insn:
  int3
nested_int3_after:
  ret

  .section .note.GNU-stack, "", @progbits
