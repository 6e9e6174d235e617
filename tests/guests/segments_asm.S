// The code of segments.c that runs with based segments: every access kind
// through DS, ES and SS with bases, results stored through FS, which stays
// flat. Selectors as segments.c sets up its GDT.

#define FLAT_DS 0x10
#define BASED_DS 0x18
#define BASED_ES 0x20
#define BASED_SS 0x28
#define DOWN_DS 0x30
#define SS_TOP 0x800  // ESP in the based stack segment

// STORE n, reg: results[n] = reg, through FS.
.macro STORE n, reg
  mov \reg, %fs:results + 4 * \n
.endm

  .data
  .globl results, segment_load_selector
results: .fill 64, 4, 0
saved_esp: .long 0
cs_value: .long 0xC5C5C5C5
segment_load_selector: .long 0

  .text

// The start of a function that runs with the based DS, ES and SS (ESP
// SS_TOP), and its end, which restores them.
.macro BASED
  push %ebp
  push %ebx
  push %esi
  push %edi
  mov %esp, saved_esp
  mov $BASED_DS, %eax
  mov %eax, %ds
  mov $BASED_ES, %eax
  mov %eax, %es
  mov $BASED_SS, %eax
  mov %eax, %ss
  mov $SS_TOP, %esp
.endm

.macro FLAT
  mov $FLAT_DS, %eax
  mov %eax, %ss
  mov %fs:saved_esp, %esp
  mov %eax, %ds
  mov %eax, %es
  pop %edi
  pop %esi
  pop %ebx
  pop %ebp
  ret
.endm

// void based_operands(void): ModRM, moffs, defaults and overrides.
  .globl based_operands
based_operands:
  BASED
  mov 0x10, %eax                // moffs, DS
  STORE 0, %eax
  mov $0x20, %ebx
  mov (%ebx), %eax              // DS
  STORE 1, %eax
  mov $0x30, %ebp
  mov 4(%ebp), %eax             // SS by default
  STORE 2, %eax
  mov %es:(%ebx), %eax
  STORE 3, %eax
  mov %ss:(%ebx), %eax
  STORE 4, %eax
  mov %ds:4(%ebp), %eax
  STORE 5, %eax
  mov %cs:cs_value, %eax        // CS is flat
  STORE 6, %eax
  movl $0xAAAA5555, 0x40        // a store through DS
  addl $1, 0x44                 // read-modify-write
  mov %ss:0x14, %eax            // moffs with an override
  STORE 7, %eax
  mov $0x60, %esi
  mov $0x8, %edi
  addr16 mov (%bx,%si), %eax    // 16-bit addressing: DS
  STORE 8, %eax
  addr16 mov (%bp,%di), %eax    // SS
  STORE 9, %eax
  lea 4(%ebx), %eax             // an address, no base
  STORE 10, %eax
  mov $0x50, %ebx
  mov $3, %eax
  xlat                          // AL = DS:[EBX + AL]
  STORE 11, %eax
  mov $0, %eax
  mov 0x5(%esp), %ah            // a high-byte register next to ESP
  STORE 12, %eax
  FLAT

// void based_stack(void): push, pop, call, ret, pusha, popa, enter, leave
// and push/pop of a segment register through the based SS.
  .globl based_stack
based_stack:
  BASED
  push $0x12345678
  mov (%esp), %eax
  STORE 13, %eax
  pop %eax
  mov $0x20, %ebx
  pushl (%ebx)                  // DS to SS
  popl 0x48                     // SS to DS
  call 1f
1:
  pop %eax                      // the return address
  sub $1b, %eax
  STORE 14, %eax
  call read_return
3:
  sub $3b, %eax
  STORE 15, %eax
  mov $0x55, %eax
  mov $0x66, %esi
  mov $0x77, %edi
  pusha
  mov %esp, %ecx
  STORE 16, %ecx
  mov (%esp), %ecx              // the pushed EDI
  STORE 17, %ecx
  xor %eax, %eax
  xor %esi, %esi
  popa
  STORE 18, %eax
  STORE 19, %esi
  mov $0x700, %ebp
  enter $0x10, $0
  STORE 20, %ebp
  STORE 21, %esp
  mov (%ebp), %eax              // the pushed EBP
  STORE 22, %eax
  leave
  STORE 23, %ebp
  STORE 24, %esp
  push %ds
  pop %eax
  STORE 25, %eax
  push $BASED_ES
  pop %ds                       // DS now has ES's base
  mov 0x10, %eax
  STORE 26, %eax
  pushf
  popf
  FLAT

// The return address, through SS.
read_return:
  mov (%esp), %eax
  ret

// void based_strings(void): movs, stos, lods, cmps, scas, forwards and
// backwards, with DS, ES and overrides.
  .globl based_strings
based_strings:
  BASED
  cld
  mov $0x100, %esi
  mov $0x200, %edi
  mov $4, %ecx
  rep movsl                     // DS:0x100.. to ES:0x200..
  STORE 27, %esi
  STORE 28, %edi
  mov $0xA5A5A5A5, %eax
  mov $2, %ecx
  rep stosl                     // ES:0x210, 0x214
  mov $0x300, %esi
  lodsl                         // DS:0x300
  STORE 29, %eax
  ss lodsl                      // SS:0x304
  STORE 30, %eax
  es lodsl                      // ES:0x308
  STORE 31, %eax
  mov $0x200, %esi
  mov $0x200, %edi
  cmpsl                         // DS:0x200 against ES:0x200 (a copy of DS:0x100)
  setne %al
  movzbl %al, %eax
  STORE 32, %eax
  mov $0xF8, %esi
  mov $0x1F8, %edi
  mov $8, %ecx
  repne cmpsl                   // until DS:ESI matches ES:EDI: the copy at 0x200
  STORE 33, %ecx
  mov %es:0x400, %eax
  mov $0x3F0, %edi
  mov $16, %ecx
  repne scasl                   // finds ES:0x400
  STORE 34, %edi
  STORE 35, %ecx
  std
  mov $0x50C, %esi
  mov $0x60C, %edi
  mov $2, %ecx
  rep movsl                     // backwards
  cld
  STORE 36, %esi
  STORE 37, %edi
  FLAT

// void expand_down(void): DS expand-down above 0xFFF with B set, based 4
// KiB into ds_area: offsets from the top of 4 GiB wrap to below the base.
  .globl expand_down
expand_down:
  mov $DOWN_DS, %eax
  mov %eax, %ds
  mov 0x1000, %eax
  STORE 38, %eax
  mov 0xFFFFF000, %eax          // wraps to the base - 0x1000
  STORE 39, %eax
  mov 0xFFFFFFFC, %eax
  STORE 40, %eax
  mov $FLAT_DS, %eax
  mov %eax, %ds
  ret

// void reload_loop(uint32_t count): reloads DS, ES and GS with the flat
// selector `count` times, reading through DS each time, then once with the
// based one; returns the sum of what it read.
  .globl reload_loop
reload_loop:
  push %ebx
  mov 8(%esp), %ecx
  xor %edx, %edx
1:
  mov $FLAT_DS, %eax
  mov %eax, %ds
  mov %eax, %es
  mov %eax, %gs
  add cs_value, %edx
  dec %ecx
  jnz 1b
  mov $BASED_DS, %eax
  mov %eax, %ds
  add 0x10, %edx
  mov $FLAT_DS, %eax
  mov %eax, %ds
  mov %edx, %eax
  pop %ebx
  ret

// uint32_t load_ds(void), load_ss(void): load segment_load_selector into
// DS or SS, where a fault's handler resumes at the *_after label; return the
// register's selector afterwards (DS flat again).
  .globl load_ds, load_ds_after, load_ss, load_ss_after
load_ds:
  mov segment_load_selector, %eax
  mov %eax, %ds
load_ds_after:
  mov %ds, %eax
  push %ecx
  mov $FLAT_DS, %ecx
  mov %ecx, %ds
  pop %ecx
  ret

load_ss:
  mov segment_load_selector, %eax
  mov %eax, %ss
load_ss_after:
  mov %ss, %eax
  mov $FLAT_DS, %ecx
  mov %ecx, %ss
  ret

  .section .note.GNU-stack, "", @progbits
