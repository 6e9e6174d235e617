// The tasks of task_switch.c: each starts at its entry point with the
// registers its TSS holds, and resumes after its iret or jmp the next time
// it runs; and the instruction whose #GP becomes a double fault.

#define MAIN_TSS 0x18

  .text

  .globl called_task_entry
called_task_entry:
  call called_task_body
  iret
  jmp called_task_entry

  .globl jumped_task_entry
jumped_task_entry:
  call jumped_task_body
  ljmp $MAIN_TSS, $0
  jmp jumped_task_entry

// The processor pushed the error code on this task's stack.
  .globl double_fault_task_entry
double_fault_task_entry:
  pop %eax
  push %esp
  push %eax
  call double_fault_body
  add $8, %esp
  iret
  jmp double_fault_task_entry

// Loads DS with a selector past the GDT limit: #GP, whose gate the caller
// made not present. The #DF task resumes this task at double_fault_after.
  .globl provoke_double_fault, double_fault_insn, double_fault_after
provoke_double_fault:
  mov $0xFFF8, %eax
double_fault_insn:
  mov %ax, %ds
double_fault_after:
  ret

  .section .note.GNU-stack, "", @progbits
