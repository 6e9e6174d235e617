/* The wire format between the conformance driver (x86-64 C++) and the native
 * runner (a -m32 C program), and the guest memory layout both runners give a
 * snippet. Plain C with fixed-size fields so that both ABIs lay it out the
 * same way. */
#ifndef BT_CONFORMANCE_ABI_H
#define BT_CONFORMANCE_ABI_H

#include <stdint.h>

/* The snippet starts at CONF_CODE_ADDRESS; the rest of the two code pages is
 * filled with int3, so running off the end or jumping anywhere else in them
 * ends the run with vector 3. */
#define CONF_CODE_ADDRESS 0x00400000u
#define CONF_CODE_BYTES 0x2000u
/* Memory operands and the stack live in these pages. */
#define CONF_DATA_ADDRESS 0x00500000u
#define CONF_DATA_BYTES 0x4000u
#define CONF_INT3 0xCCu

enum conf_register { CONF_EAX, CONF_ECX, CONF_EDX, CONF_EBX, CONF_ESP, CONF_EBP, CONF_ESI, CONF_EDI };

struct conf_cpu {
  uint32_t gpr[8]; /* CONF_EAX .. CONF_EDI */
  uint32_t eip;
  uint32_t eflags; /* arithmetic flags and DF are honoured on entry; IF is 1 */
  uint8_t fxsave[512]; /* FXSAVE image: x87, MMX, SSE and MXCSR */
};

struct conf_request {
  struct conf_cpu cpu; /* eip is ignored: runs start at CONF_CODE_ADDRESS */
  uint32_t fs_base;    /* non-zero: FS holds a flat-limit data segment with this base */
  uint32_t gs_base;    /* likewise for GS; zero leaves the register alone */
  uint32_t code_bytes;
  uint32_t timeout_ms;
  uint8_t code[CONF_CODE_BYTES];
  uint8_t data[CONF_DATA_BYTES];
};

enum conf_outcome {
  CONF_EXCEPTION = 0, /* ended by an exception; int3 (vector 3) is the normal end */
  CONF_TIMEOUT = 1,
  CONF_RUNNER_ERROR = 2, /* the runner could not run the snippet; see `message` */
};

struct conf_result {
  uint32_t outcome;
  uint32_t vector;        /* SDM exception vector */
  uint32_t error_code;    /* for vectors that push one */
  uint32_t fault_address; /* CR2 of a #PF */
  struct conf_cpu cpu;    /* at the exception: eip as the handler would see it */
  uint8_t data[CONF_DATA_BYTES];
  char message[128];
};

#endif
