// Entry into a snippet and the way back, for native_runner.c; the globals
// named here are defined and described there.

  .text

// void enter_snippet(void): loads the snippet's x87/SSE state, EFLAGS, FS,
// GS and general registers and jumps to it. It returns through leave_snippet
// once the signal handler has captured the snippet's end state.
  .globl enter_snippet
enter_snippet:
  push %ebp
  push %ebx
  push %esi
  push %edi
  mov %esp, host_esp
  fxrstor snippet_entry_fxsave
  pushl snippet_entry_eflags
  popf
  // From here on nothing may change EFLAGS: mov does not. The runner's GS
  // (glibc's TLS) is gone until leave_snippet restores it.
  mov snippet_entry_fs, %fs
  mov snippet_entry_gs, %gs
  // snippet_entry_gpr is in CONF_EAX..CONF_EDI order; ESP goes last.
  mov snippet_entry_gpr + 0, %eax
  mov snippet_entry_gpr + 4, %ecx
  mov snippet_entry_gpr + 8, %edx
  mov snippet_entry_gpr + 12, %ebx
  mov snippet_entry_gpr + 20, %ebp
  mov snippet_entry_gpr + 24, %esi
  mov snippet_entry_gpr + 28, %edi
  mov snippet_entry_gpr + 16, %esp
  jmp *snippet_code_address

// void leave_snippet(void), called by the signal handler once it has taken
// the snippet's end state: returns from enter_snippet with the runner's FS,
// GS and stack. The kernel gives a handler DS, ES and SS, a clear DF and the
// FPU in its initial state, so those need nothing.
  .globl leave_snippet
leave_snippet:
  mov host_fs, %fs
  mov host_gs, %gs
  mov host_esp, %esp
  pop %edi
  pop %esi
  pop %ebx
  pop %ebp
  ret

  .section .note.GNU-stack, "", @progbits
