// The ring-0 and ring-3 code of rings.c that C cannot express: entering and
// leaving ring 3, the sysenter entry point, and ring-3
// routines whose instructions must fault at known addresses.

#define KERNEL_CS 0x08
#define KERNEL_DS 0x10
#define USER_CS 0x1B
#define USER_DS 0x23
#define SYS_EXIT 0

// expect_gp table, name, instruction: emits the instruction and appends
// {its address, the address after it, name} to `table`, whose entries the
// #GP handler resumes after.
.macro expect_gp table, name, insn:vararg
  .pushsection .rodata.names, "a"
102:
  .asciz "\name"
  .popsection
  .pushsection .rodata.\table, "a"
  .long 100f, 101f, 102b
  .popsection
100:
  \insn
101:
.endm

.macro table_start table
  .pushsection .rodata.\table, "a"
  .balign 4
  .globl \table
\table:
  .popsection
.endm

.macro table_end table
  .pushsection .rodata.\table, "a"
  .globl \table\()_end
\table\()_end:
  .popsection
.endm

  .data
kernel_esp: .long 0
dummy_table: .word 0
  .long 0
  .globl sysenter_seen, call_gate_seen
sysenter_seen: .long 0, 0, 0  // CS, SS, ESP at the sysenter entry point
call_gate_seen: .long 0, 0, 0, 0, 0  // CS, SS, ESP, the caller's CS and SS

  .text

// uint32_t enter_user(uint32_t eip, uint32_t esp, uint32_t eflags): runs
// ring-3 code at eip on the stack at esp, with the data segments and SS the
// user data selector, until it makes the exit system call; returns the
// value it passed.
  .globl enter_user
enter_user:
  push %ebp
  push %ebx
  push %esi
  push %edi
  pushf
  mov %esp, kernel_esp
  mov 24(%esp), %eax
  mov 28(%esp), %ecx
  mov 32(%esp), %edx
  mov $USER_DS, %bx
  mov %bx, %ds
  mov %bx, %es
  mov %bx, %fs
  mov %bx, %gs
  push $USER_DS
  push %ecx
  push %edx
  push $USER_CS
  push %eax
  iret

// void leave_user(uint32_t value): from a ring-0 handler of a ring-3 event,
// returns `value` from enter_user. The handler's frame is dropped: the next
// entry from ring 3 starts over at the TSS's ESP0.
  .globl leave_user
leave_user:
  mov 4(%esp), %eax
  mov $KERNEL_DS, %cx
  mov %cx, %ds
  mov %cx, %es
  mov %cx, %fs
  mov %cx, %gs
  mov kernel_esp, %esp
  popf
  pop %edi
  pop %esi
  pop %ebx
  pop %ebp
  ret

// uint32_t user_syscall(uint32_t number, uint32_t a, uint32_t b): int 0x80
// with EAX = number, EBX = a, ECX = b; returns EAX.
  .globl user_syscall
user_syscall:
  push %ebx
  mov 8(%esp), %eax
  mov 12(%esp), %ebx
  mov 16(%esp), %ecx
  int $0x80
  pop %ebx
  ret

// void user_exit(uint32_t value)
  .globl user_exit
user_exit:
  mov 4(%esp), %ebx
  mov $SYS_EXIT, %eax
  int $0x80
  ud2

// uint32_t user_sysenter(uint32_t value): the fast system call, which
// returns value * 2 + 1 (sysenter_entry). ECX and EDX carry the return
// ESP and EIP for sysexit.
  .globl user_sysenter
user_sysenter:
  push %ebx
  mov 8(%esp), %ebx
  mov %esp, %ecx
  mov $1f, %edx
  sysenter
1:
  pop %ebx
  ret

// Entered by sysenter with IF clear; sti's shadow covers sysexit, so an
// interrupt comes only once back in ring 3 (as Linux does).
  .globl sysenter_entry
sysenter_entry:
  mov %cs, sysenter_seen
  mov %ss, sysenter_seen + 4
  mov %esp, sysenter_seen + 8
  lea 1(%ebx, %ebx), %eax
  sti
  sysexit

// uint32_t user_call_gate(uint32_t value): a far call through the call gate
// at CALL_GATE, which copies one parameter to the ring-0 stack; returns
// value * 3 (call_gate_entry).
#define CALL_GATE 0x33
  .globl user_call_gate
user_call_gate:
  pushl 4(%esp)
  lcall $CALL_GATE, $0
  ret

// Ring 0 through the call gate: [esp] holds the return EIP and CS, the
// parameter, and the caller's ESP and SS. retf 4 drops the parameter from
// both stacks.
  .globl call_gate_entry
call_gate_entry:
  mov %cs, call_gate_seen
  mov %ss, call_gate_seen + 4
  mov %esp, call_gate_seen + 8
  mov 4(%esp), %eax
  mov %eax, call_gate_seen + 12
  mov 16(%esp), %eax
  mov %eax, call_gate_seen + 16
  mov 8(%esp), %eax
  lea (%eax, %eax, 2), %eax
  lret $4

// Ring 3, IOPL 0: each instruction only CPL 0 may run, and cli/sti. With
// CR4.TSD set by the kernel, rdtsc too.
  table_start privileged_table
  .globl user_privileged
user_privileged:
  expect_gp privileged_table, hlt, hlt
  expect_gp privileged_table, cli, cli
  expect_gp privileged_table, sti, sti
  expect_gp privileged_table, lgdt, lgdt dummy_table
  expect_gp privileged_table, lidt, lidt dummy_table
  expect_gp privileged_table, lldt, lldt %ax
  expect_gp privileged_table, ltr, ltr %ax
  expect_gp privileged_table, "mov to cr0", mov %eax, %cr0
  expect_gp privileged_table, "mov from cr0", mov %cr0, %eax
  expect_gp privileged_table, "mov from cr3", mov %cr3, %eax
  expect_gp privileged_table, "mov to cr4", mov %eax, %cr4
  expect_gp privileged_table, "mov from dr7", mov %dr7, %eax
  expect_gp privileged_table, "mov to dr7", mov %eax, %dr7
  expect_gp privileged_table, clts, clts
  expect_gp privileged_table, lmsw, lmsw %ax
  expect_gp privileged_table, invlpg, invlpg dummy_table
  expect_gp privileged_table, invd, invd
  expect_gp privileged_table, wbinvd, wbinvd
  expect_gp privileged_table, rdmsr, rdmsr
  expect_gp privileged_table, wrmsr, wrmsr
  expect_gp privileged_table, sysexit, sysexit
  expect_gp privileged_table, "rdtsc with CR4.TSD", rdtsc
  push $0
  call user_exit
  table_end privileged_table

// Ring 3, IOPL 0: ports through the TSS's I/O permission bitmap, which
// allows 0x3FF (the UART's scratch register) of 0x3F8-0x3FF and covers
// ports 0-0x3FF. Exits with what the scratch register read back.
  table_start io_table
  .globl user_io
user_io:
  mov $0x3FF, %dx
  mov $0x5A, %al
  out %al, %dx
  xor %eax, %eax
  in %dx, %al
  mov %eax, %esi
  mov $0x3FE, %dx
  expect_gp io_table, "in from a denied port", in %dx, %al
  expect_gp io_table, "out to a denied port", out %al, %dx
  expect_gp io_table, "in of a word half denied", in %dx, %ax
  mov $0x3FC, %dx
  expect_gp io_table, "out of a dword with three bytes denied", out %eax, %dx
  mov $0x400, %dx
  expect_gp io_table, "in past the TSS limit", in %dx, %al
  push %esi
  call user_exit
  table_end io_table

// Ring 3, IOPL 3: cli, sti and a port the bitmap denies all work. Exits
// with EFLAGS after cli.
  .globl user_iopl3
user_iopl3:
  cli
  pushf
  pop %esi
  sti
  mov $0x3FE, %dx
  in %dx, %al
  push %esi
  call user_exit

// Ring 3, IOPL 0, IF set: popf of IOPL 3 and IF clear changes neither, and
// does not fault. Exits with EFLAGS after it.
  .globl user_popf
user_popf:
  push $0x3002
  popf
  pushf
  call user_exit

  .section .note.GNU-stack, "", @progbits
