// The instructions system_regs.c checks where their EIP matters: each
// *_insn label marks one that may fault, and the handler either resumes at
// the matching *_after label or fixes CR0 and restarts it. Also the
// sysenter entry point.

  .data
  .balign 16
  .globl fpu_area, fpu_result, sysenter_seen
fpu_area: .fill 512, 1, 0  // fxsave image
fpu_result: .long 0
fpu_double: .double 1234.75
sysenter_seen: .long 0, 0, 0, 0  // CS, SS, ESP, EFLAGS at the entry point
sysenter_saved_esp: .long 0

  .text

// uint64_t msr_read(uint32_t msr): 0 if rdmsr faults.
  .globl msr_read, msr_read_insn, msr_read_after
msr_read:
  mov 4(%esp), %ecx
  xor %eax, %eax
  xor %edx, %edx
msr_read_insn:
  rdmsr
msr_read_after:
  ret

// void msr_write(uint32_t msr, uint64_t value)
  .globl msr_write, msr_write_insn, msr_write_after
msr_write:
  mov 4(%esp), %ecx
  mov 8(%esp), %eax
  mov 12(%esp), %edx
msr_write_insn:
  wrmsr
msr_write_after:
  ret

// void do_ltr(uint32_t selector), void do_lldt(uint32_t selector)
  .globl do_ltr, ltr_insn, ltr_after, do_lldt, lldt_insn, lldt_after
do_ltr:
  mov 4(%esp), %eax
ltr_insn:
  ltr %ax
ltr_after:
  ret
do_lldt:
  mov 4(%esp), %eax
lldt_insn:
  lldt %ax
lldt_after:
  ret

// void do_sysenter(uint32_t eflags): sysenter with EFLAGS = eflags. The
// entry point records CS, SS, ESP and EFLAGS in sysenter_seen, and returns
// on the caller's stack (SS is SYSENTER_CS + 8, the caller's flat data
// selector) with EFLAGS = 0x2.
  .globl do_sysenter, sysenter_entry
do_sysenter:
  pushl 4(%esp)
  popf
  mov %esp, sysenter_saved_esp
  sysenter
sysenter_entry:
  pushf
  popl sysenter_seen + 12
  mov %esp, sysenter_seen + 8
  xor %eax, %eax
  mov %cs, %ax
  mov %eax, sysenter_seen
  mov %ss, %ax
  mov %eax, sysenter_seen + 4
  mov sysenter_saved_esp, %esp
  pushl $0x2
  popf
  ret

// void try_sysenter(void), void try_sysexit(void): for IA32_SYSENTER_CS = 0,
// where both must raise #GP(0).
  .globl try_sysenter, sysenter_insn, sysenter_after, try_sysexit, sysexit_insn, sysexit_after
try_sysenter:
sysenter_insn:
  sysenter
sysenter_after:
  ret
try_sysexit:
sysexit_insn:
  sysexit
sysexit_after:
  ret

// x87, MMX and SSE instructions, one per function, for the CR0.TS/EM/MP
// checks. fpu_fld1 leaves 1.0f in fpu_result, fpu_cvt 1234 and fpu_stmxcsr
// MXCSR.
  .globl fpu_fld1, fld1_insn, fpu_movd, movd_insn, fpu_xorps, xorps_insn
  .globl fpu_wait, wait_insn, fpu_cvt, cvt_insn, fpu_stmxcsr, stmxcsr_insn
  .globl fpu_fxsave, fxsave_insn
fpu_fld1:
fld1_insn:
  fld1
  fstps fpu_result
  ret
fpu_movd:
  mov $0x1234, %eax
movd_insn:
  movd %eax, %mm0
  emms
  ret
fpu_xorps:
xorps_insn:
  xorps %xmm0, %xmm0
  ret
fpu_wait:
wait_insn:
  fwait
  ret
fpu_cvt:
cvt_insn:
  cvttsd2si fpu_double, %eax
  mov %eax, fpu_result
  ret
fpu_stmxcsr:
stmxcsr_insn:
  stmxcsr fpu_result
  ret
fpu_fxsave:
fxsave_insn:
  fxsave fpu_area
  ret

  .section .note.GNU-stack, "", @progbits
