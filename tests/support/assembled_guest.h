// Tiny Multiboot guests assembled at run time for tests and benchmarks: 32-bit
// code emitted with asmjit, wrapped in a Multiboot a.out-kludge header so
// bt::Machine boots it like any kernel.
#pragma once

#include <asmjit/x86.h>
#include <cstdint>
#include <cstring>
#include <functional>
#include <vector>

namespace bt::testing {

inline constexpr std::uint32_t kLoadAddress = 0x100000;
inline constexpr std::uint32_t kHeaderBytes = 32;
inline constexpr std::uint16_t kDebugExitPort = 0xF4;

// `body` emits the guest program; it starts at the entry point with ECX
// holding whatever the benchmark set.
inline std::vector<std::uint8_t> AssembleGuest(
    const std::function<void(asmjit::x86::Assembler&)>& body) {
  asmjit::CodeHolder code;
  code.init(asmjit::Environment(asmjit::Arch::kX86), kLoadAddress + kHeaderBytes);
  asmjit::x86::Assembler a(&code);
  body(a);
  code.flatten();
  code.resolveUnresolvedLinks();
  code.relocateToBase(kLoadAddress + kHeaderBytes);
  std::vector<std::uint8_t> image(kHeaderBytes + code.codeSize());
  const std::uint32_t magic = 0x1BADB002, flags = 0x00010000;
  const std::uint32_t header[8] = {
      magic, flags, 0u - magic - flags,         kLoadAddress, kLoadAddress,
      0,     0,     kLoadAddress + kHeaderBytes};
  std::memcpy(image.data(), header, sizeof(header));
  code.copyFlattenedData(image.data() + kHeaderBytes, code.codeSize());
  return image;
}

// Guest address of the next instruction `a` emits into an AssembleGuest body.
inline std::uint32_t Here(const asmjit::x86::Assembler& a) {
  return kLoadAddress + kHeaderBytes + static_cast<std::uint32_t>(a.offset());
}

// Pads an AssembleGuest body with int3 up to the next page boundary
// (asmjit's align stops at 64 bytes).
inline void PadToPage(asmjit::x86::Assembler& a) {
  while (Here(a) % 4096 != 0) a.int3();
}

// Turns on 32-bit paging with 4 MiB pages (CR4.PSE) and the page directory
// at guest-physical `directory`, which the test writes. Clobbers EAX.
inline void EmitEnablePaging(asmjit::x86::Assembler& a, std::uint32_t directory) {
  namespace x86 = asmjit::x86;
  a.mov(x86::eax, directory);
  a.mov(x86::cr3, x86::eax);
  a.mov(x86::eax, x86::cr4);
  a.or_(x86::eax, 0x10);
  a.mov(x86::cr4, x86::eax);
  a.mov(x86::eax, x86::cr0);
  a.or_(x86::eax, 0x80000000u);
  a.mov(x86::cr0, x86::eax);
}

// Sets CR4.OSFXSR and OSXMMEXCPT, without which SSE instructions are #UD,
// as an OS does before it uses SSE. Clobbers EAX.
inline void EmitEnableSse(asmjit::x86::Assembler& a) {
  namespace x86 = asmjit::x86;
  a.mov(x86::eax, x86::cr4);
  a.or_(x86::eax, 0x600);
  a.mov(x86::cr4, x86::eax);
}

// Ends the guest: writes 0 to the debug-exit port.
inline void EmitExit(asmjit::x86::Assembler& a) {
  a.xor_(asmjit::x86::eax, asmjit::x86::eax);
  a.out(asmjit::imm(kDebugExitPort), asmjit::x86::eax);
}

}  // namespace bt::testing
