// ins and outs against the PC's own devices (SDM Vol. 2A INS, Vol. 2B OUTS,
// REP), and FS and GS with bases and limits:
//   - rep outsb of a line to COM1's transmit register, and of one through
//     an FS with a base and a limit;
//   - rep outsb and rep insb on the UART's scratch register, forwards and
//     backwards (DF), where the last byte written is what every read sees;
//   - CMOS RAM written and read back through the index and data ports, with
//     outsb and insb stepping through one array;
//   - PCI configuration mechanism #1 with outsd to 0xCF8 and insd from
//     0xCFC, insw from its upper half, an address taken from an expand-down
//     GS, and rep insd with DF set;
//   - FS and GS with bases and limits (expand-up, expand-down, a base with a
//     4 GiB limit, reloaded in a loop) for ModRM operands, lods, movs and
//     xlat, and a null FS and GS loaded but not used;
// each checking ESI, EDI and ECX after it.
//
// Not here: faults. QEMU's TCG checks no data segment limits (see
// segments.c), so tests/unit/segment_limits_test.cc and port_string_test.cc
// check #GP and #SS past limits, through null segments and #PF part-way.
#include "guest.h"

enum {
  kCom1 = 0x3F8,
  kScratch = 0x3FF,
  kCmosIndex = 0x70,
  kCmosData = 0x71,
  kPciAddress = 0xCF8,
  kPciData = 0xCFC,
  kPciEnable = 0x80000000u,
  // Selectors of the GDT below.
  kLimitedFs = 0x18,  // base fs_area, limit 0xFFF
  kDownGs = 0x20,     // base gs_area + 0x1000, expand-down above 0xFFF
  kBasedFs = 0x28,    // base fs_area, limit 4 GiB
  kFlatData = 0x10,
};

static uint8_t fs_area[0x1000] __attribute__((aligned(4096)));
static uint32_t gs_area[0x400] __attribute__((aligned(4096)));
static uint64_t gdt[6] __attribute__((aligned(8)));

// Where a string instruction left ESI, EDI and ECX.
struct registers {
  uint32_t esi, edi, ecx;
};

// `insn` (a string instruction, with its prefixes) with DX = `port`, ESI =
// `source`, EDI = `destination` and ECX = `count`, DF set if `down`.
#define STRING_IO(insn, port, source, destination, count, down)                                 \
  ({                                                                                            \
    struct registers r_ = {(source), (destination), (count)};                                   \
    if (down) {                                                                                 \
      __asm__ volatile("std\n\t" insn "\n\tcld"                                                 \
                       : "+S"(r_.esi), "+D"(r_.edi), "+c"(r_.ecx)                               \
                       : "d"(port)                                                              \
                       : "memory");                                                             \
    } else {                                                                                    \
      __asm__ volatile(insn : "+S"(r_.esi), "+D"(r_.edi), "+c"(r_.ecx) : "d"(port) : "memory"); \
    }                                                                                           \
    r_;                                                                                         \
  })

static void load_fs(uint16_t selector) { __asm__ volatile("mov %0, %%fs" : : "r"(selector)); }
static void load_gs(uint16_t selector) { __asm__ volatile("mov %0, %%gs" : : "r"(selector)); }

static void setup(void) {
  gdt[1] = guest_descriptor(0, 0xFFFFF, 0x9A, 0xC0);
  gdt[2] = guest_descriptor(0, 0xFFFFF, 0x92, 0xC0);
  gdt[3] = guest_descriptor(guest_addr(fs_area), 0xFFF, 0x92, 0x40);
  gdt[4] = guest_descriptor(guest_addr(gs_area) + 0x1000, 0xFFF, 0x96, 0x40);
  gdt[5] = guest_descriptor(guest_addr(fs_area), 0xFFFFF, 0x92, 0xC0);
  guest_load_gdt_table(gdt, sizeof(gdt));
}

static void test_com1(void) {
  static const char line[] = "rep outsb to COM1\n";
  const uint32_t length = sizeof(line) - 1;
  struct registers r = STRING_IO("rep outsb", kCom1, guest_addr(line), 0, length, 0);
  check_eq("ESI", guest_addr(line) + length, r.esi);
  check_eq("ECX", 0, r.ecx);
  // The same through FS, with a base and a limit.
  static const char through_fs[] = "rep outsb fs: to COM1\n";
  memcpy(fs_area + 0xF00, through_fs, sizeof(through_fs) - 1);
  load_fs(kLimitedFs);
  r = STRING_IO("rep outsb %%fs:(%%esi), (%%dx)", kCom1, 0xF00, 0, sizeof(through_fs) - 1, 0);
  load_fs(kFlatData);
  check_eq("ESI through FS", 0xF00 + sizeof(through_fs) - 1, r.esi);
  check_eq("ECX through FS", 0, r.ecx);
  check_group("com1");
}

static void test_scratch(void) {
  static const uint8_t bytes[4] = {0x11, 0x22, 0x33, 0x44};
  uint8_t seen[4] = {0};
  struct registers r = STRING_IO("rep outsb", kScratch, guest_addr(bytes), 0, 4, 0);
  check_eq("ESI after rep outsb", guest_addr(bytes + 4), r.esi);
  check_eq("scratch after rep outsb", 0x44, guest_inb(kScratch));
  r = STRING_IO("rep insb", kScratch, 0, guest_addr(seen), 3, 0);
  check_eq("EDI after rep insb", guest_addr(seen + 3), r.edi);
  check_eq("ECX after rep insb", 0, r.ecx);
  for (unsigned i = 0; i < 3; i++) check_eq("rep insb", 0x44, seen[i]);
  check_eq("rep insb stops at ECX", 0, seen[3]);
  // Backwards: the last byte sent is the first of the array.
  r = STRING_IO("rep outsb", kScratch, guest_addr(bytes + 3), 0, 4, 1);
  check_eq("ESI after std; rep outsb", guest_addr(bytes) - 1, r.esi);
  check_eq("scratch after std; rep outsb", 0x11, guest_inb(kScratch));
  r = STRING_IO("insb", kScratch, 0, guest_addr(seen + 3), 0, 1);
  check_eq("EDI after std; insb", guest_addr(seen + 2), r.edi);
  check_eq("std; insb", 0x11, seen[3]);
  guest_printf("scratch register: %02x %02x %02x %02x\n", seen[0], seen[1], seen[2], seen[3]);
  check_group("uart scratch register");
}

static void test_cmos(void) {
  static const char text[] = "ins+outs";
  uint8_t pairs[16], indices[8], back[8];
  for (unsigned i = 0; i < 8; i++) {
    pairs[2 * i] = indices[i] = (uint8_t)(0x60 + i);
    pairs[2 * i + 1] = (uint8_t)text[i];
  }
  // Index, then data: one ESI through the pairs.
  uint32_t esi = guest_addr(pairs);
  for (unsigned i = 0; i < 8; i++) {
    esi = STRING_IO("outsb", kCmosIndex, esi, 0, 0, 0).esi;
    esi = STRING_IO("outsb", kCmosData, esi, 0, 0, 0).esi;
  }
  check_eq("ESI after the pairs", guest_addr(pairs + 16), esi);
  uint32_t edi = guest_addr(back);
  esi = guest_addr(indices);
  for (unsigned i = 0; i < 8; i++) {
    esi = STRING_IO("outsb", kCmosIndex, esi, 0, 0, 0).esi;
    edi = STRING_IO("insb", kCmosData, 0, edi, 0, 0).edi;
  }
  check_eq("EDI after the reads", guest_addr(back + 8), edi);
  guest_printf("cmos 60-67:");
  for (unsigned i = 0; i < 8; i++) {
    check_eq("cmos byte", (uint8_t)text[i], back[i]);
    guest_printf(" %c", back[i]);
  }
  guest_putc('\n');
  // The index stays: every read of a rep insb sees the same byte.
  uint8_t repeated[4] = {0};
  STRING_IO("rep insb", kCmosData, 0, guest_addr(repeated), 4, 0);
  for (unsigned i = 0; i < 4; i++) check_eq("rep insb of 0x67", 's', repeated[i]);
  check_group("cmos");
}

static uint32_t pci_address(unsigned device, unsigned reg) {
  return kPciEnable | device << 11 | reg;
}

static void test_pci(void) {
  const uint32_t addresses[2] = {pci_address(0, 0), pci_address(1, 0)};
  uint32_t ids[2] = {0};
  uint32_t esi = guest_addr(addresses), edi = guest_addr(ids);
  for (unsigned device = 0; device < 2; device++) {
    esi = STRING_IO("outsl", kPciAddress, esi, 0, 0, 0).esi;
    edi = STRING_IO("insl", kPciData, 0, edi, 0, 0).edi;
    guest_printf("pci 00:%02x.0 %04x:%04x\n", device, ids[device] & 0xFFFF, ids[device] >> 16);
  }
  check_eq("ESI after outsd", guest_addr(addresses + 2), esi);
  check_eq("EDI after insd", guest_addr(ids + 2), edi);
  check_eq("00:00.0", 0x12378086, ids[0]);
  check_eq("00:01.0", 0x70008086, ids[1]);
  // The device ID alone, from the data port's upper half.
  uint16_t device_id = 0;
  STRING_IO("insw", kPciData + 2, 0, guest_addr(&device_id), 0, 0);
  check_eq("insw from 0xCFE", 0x7000, device_id);
  // The address from an expand-down GS: offset 0xFFFFF000 is its base
  // - 0x1000, the start of gs_area.
  gs_area[0] = pci_address(0, 0);
  load_gs(kDownGs);
  struct registers r = STRING_IO("outsl %%gs:(%%esi), (%%dx)", kPciAddress, 0xFFFFF000, 0, 0, 0);
  load_gs(kFlatData);
  check_eq("ESI after outsd gs:", 0xFFFFF004, r.esi);
  uint32_t twice[3] = {0};
  r = STRING_IO("rep insl", kPciData, 0, guest_addr(twice + 2), 2, 1);
  check_eq("EDI after std; rep insd", guest_addr(twice), r.edi);
  check_eq("std; rep insd", 0x12378086, twice[2]);
  check_eq("std; rep insd", 0x12378086, twice[1]);
  check_eq("std; rep insd stops at ECX", 0, twice[0]);
  check_group("pci");
}

static void test_fs_gs(void) {
  for (unsigned i = 0; i < 0x1000; i++) fs_area[i] = (uint8_t)i;
  for (unsigned i = 0; i < 0x400; i++) gs_area[i] = 0x6000000 + 4 * i;
  uint32_t value = 0;
  load_fs(kLimitedFs);
  __asm__ volatile("mov %%fs:0xFFC, %0" : "=r"(value));
  check_eq("fs:[0xffc]", 0xFFFEFDFC, value);
  uint32_t esi = 0x10;
  __asm__ volatile("lodsl %%fs:(%%esi), %%eax" : "=a"(value), "+S"(esi));
  check_eq("lodsd fs:", 0x13121110, value);
  uint32_t copy[2] = {0};
  uint32_t edi = guest_addr(copy), ecx = 2;
  esi = 0x20;
  __asm__ volatile("rep movsl %%fs:(%%esi), %%es:(%%edi)"
                   : "+S"(esi), "+D"(edi), "+c"(ecx)
                   :
                   : "memory");
  check_eq("rep movsd from fs:", 0x23222120, copy[0]);
  check_eq("rep movsd from fs:", 0x27262524, copy[1]);
  check_eq("ESI after rep movsd", 0x28, esi);
  load_gs(kDownGs);
  __asm__ volatile("mov %%gs:0xFFFFFFFC, %0" : "=r"(value));
  check_eq("gs:[0xfffffffc], expand-down", 0x6000000 + 0xFFC, value);
  __asm__ volatile("mov %%gs:0xFFFFF008, %0" : "=r"(value));
  check_eq("gs:[0xfffff008], below the base", 0x6000008, value);
  uint32_t table = 0xFFFFF000, al = 0x0C;
  __asm__ volatile("xlat %%gs:(%%ebx)" : "+a"(al) : "b"(table));
  check_eq("xlat gs:", 0x0C, al & 0xFF);
  // A base with a 4 GiB limit, as per-CPU data and TLS have it, reloaded.
  uint32_t sum = 0;
  for (unsigned i = 0; i < 100; i++) {
    load_fs(i & 1 ? kBasedFs : kFlatData);
    __asm__ volatile("movzbl %%fs:(%1), %0"
                     : "=r"(value)
                     : "r"(i & 1 ? 0x40u : guest_addr(fs_area) + 0x41));
    sum += value;
  }
  check_eq("fs: reloaded", 50 * 0x40 + 50 * 0x41, sum);
  // Null selectors load; only an access through them would fault.
  load_fs(0);
  load_gs(3);
  uint16_t fs = 0xFFFF, gs = 0xFFFF;
  __asm__ volatile("mov %%fs, %0; mov %%gs, %1" : "=r"(fs), "=r"(gs));
  guest_printf("null fs %04x gs %04x\n", fs, gs);
  load_fs(kFlatData);
  load_gs(kFlatData);
  check_group("fs and gs");
}

int main(void) {
  setup();
  test_com1();
  test_scratch();
  test_cmos();
  test_pci();
  test_fs_gs();
  return check_finish();
}
