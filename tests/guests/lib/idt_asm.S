// Entry stubs for all 256 vectors (see idt.h). Stub n starts at
// guest_idt_stubs + 16 * n, pushes a dummy error code unless the processor
// pushed one, pushes n and joins guest_trap_common, which saves the
// registers, calls guest_trap_dispatch(frame) and returns with iret.

#define STUB_SIZE 16

  .text
  .balign STUB_SIZE
  .globl guest_idt_stubs
guest_idt_stubs:
  .set vector, 0
  .rept 256
1:
  // Exceptions with an error code (SDM Vol. 3A 6.15, table 6-1): #DF, #TS,
  // #NP, #SS, #GP, #PF, #AC, #CP, #VC, #SX.
  .if !(vector == 8 || (vector >= 10 && vector <= 14) || vector == 17 || \
        vector == 21 || vector == 29 || vector == 30)
  pushl $0
  .endif
  pushl $vector
  jmp guest_trap_common
  .org 1b + STUB_SIZE, 0xCC  // fails to assemble if the stub is longer
  .set vector, vector + 1
  .endr

// Interrupts stay as the gate left them. The direction flag is cleared for
// the C handler; iret restores the interrupted one.
guest_trap_common:
  pusha
  cld
  push %esp
  call guest_trap_dispatch
  add $4, %esp
  popa
  add $8, %esp  // vector and error code
  iret

  .section .note.GNU-stack, "", @progbits
