#include "compare.h"

#include <Zydis/Zydis.h>

#include <cstdio>
#include <cstring>

namespace bt::conformance {
namespace {

// FXSAVE layout (SDM Vol. 1, table 10-2).
constexpr unsigned kFcw = 0, kFsw = 2, kFtw = 4, kMxcsr = 24, kMxcsrMask = 28;
constexpr unsigned kStRegisters = 32, kXmmRegisters = 160;
constexpr unsigned kSignificandAndExponent = 10;  // of each 16-byte ST slot

const char* const kRegisterNames[8] = {"eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi"};

void Append(std::string& out, const char* format, auto... args) {
  char line[256];
  std::snprintf(line, sizeof(line), format, args...);
  out += line;
}

std::uint32_t Load(const std::uint8_t* bytes, unsigned size) {
  std::uint32_t value = 0;
  std::memcpy(&value, bytes, size);
  return value;
}

bool CarriesErrorCode(std::uint32_t vector) {
  return vector == 8 || (vector >= 10 && vector <= 14) || vector == 17;
}

// A #PF's error code less what differs by set-up alone: snippets run at
// CPL 3 natively and at CPL 0 in libbt (U/S), and the host has NX enabled,
// which makes it report instruction fetches (I/D), while libbt's paging
// here has not.
std::uint32_t ComparableErrorCode(const conf_result& result) {
  return result.vector == 14 ? result.error_code & ~0x14u : result.error_code;
}

std::string Ending(const conf_result& r) {
  std::string out;
  switch (r.outcome) {
    case CONF_EXCEPTION:
      Append(out, "vector %u at eip=%08x", r.vector, r.cpu.eip);
      if (CarriesErrorCode(r.vector)) Append(out, " error=%x", r.error_code);
      if (r.vector == 14) Append(out, " cr2=%08x", r.fault_address);
      return out;
    case CONF_TIMEOUT: return "timeout";
    default: return std::string("runner error: ") + r.message;
  }
}

void DescribeCpu(std::string& out, const conf_cpu& cpu) {
  for (unsigned i = 0; i < 8; ++i)
    Append(out, "%s=%08x%s", kRegisterNames[i], cpu.gpr[i], i == 3 ? "\n    " : " ");
  Append(out, "eflags=%08x\n    fcw=%04x fsw=%04x ftw=%02x mxcsr=%08x\n", cpu.eflags,
         Load(cpu.fxsave + kFcw, 2), Load(cpu.fxsave + kFsw, 2), cpu.fxsave[kFtw],
         Load(cpu.fxsave + kMxcsr, 4));
}

// At an exception inside the code, the flags undefined at that instruction;
// otherwise those undefined at the end.
std::uint32_t UndefinedFlags(const TestCase& test, const conf_result& native) {
  if (native.outcome == CONF_EXCEPTION) {
    for (const auto& [eip, undefined] : test.undefined_flags_at) {
      if (eip == native.cpu.eip) return undefined;
    }
  }
  return test.undefined_flags;
}

void DescribeStateDifferences(std::string& out, const TestCase& test, const conf_result& native,
                              const conf_result& libbt) {
  for (unsigned i = 0; i < 8; ++i) {
    if (native.cpu.gpr[i] != libbt.cpu.gpr[i]) {
      Append(out, "  %s: native %08x, libbt %08x\n", kRegisterNames[i], native.cpu.gpr[i],
             libbt.cpu.gpr[i]);
    }
  }
  const std::uint32_t flags = kComparedFlags & ~UndefinedFlags(test, native);
  if ((native.cpu.eflags ^ libbt.cpu.eflags) & flags) {
    Append(out, "  eflags: native %08x, libbt %08x (compared bits %08x)\n", native.cpu.eflags,
           libbt.cpu.eflags, flags);
  }
  struct Field {
    const char* name;
    unsigned offset, size;
  };
  for (const Field& field : {Field{"fcw", kFcw, 2}, Field{"fsw", kFsw, 2}, Field{"ftw", kFtw, 1},
                             Field{"mxcsr", kMxcsr, 4}, Field{"mxcsr_mask", kMxcsrMask, 4}}) {
    const std::uint32_t a = Load(native.cpu.fxsave + field.offset, field.size);
    const std::uint32_t b = Load(libbt.cpu.fxsave + field.offset, field.size);
    if (a != b) Append(out, "  %s: native %x, libbt %x\n", field.name, a, b);
  }
  for (unsigned i = 0; i < 8; ++i) {
    const std::uint8_t* a = native.cpu.fxsave + kStRegisters + 16 * i;
    const std::uint8_t* b = libbt.cpu.fxsave + kStRegisters + 16 * i;
    if (std::memcmp(a, b, kSignificandAndExponent) != 0) {
      Append(out, "  st/mm slot %u: native %04x:%016llx, libbt %04x:%016llx\n", i, Load(a + 8, 2),
             static_cast<unsigned long long>(Load(a, 4) | std::uint64_t{Load(a + 4, 4)} << 32),
             Load(b + 8, 2),
             static_cast<unsigned long long>(Load(b, 4) | std::uint64_t{Load(b + 4, 4)} << 32));
    }
  }
  for (unsigned i = 0; i < 8; ++i) {
    const std::uint8_t* a = native.cpu.fxsave + kXmmRegisters + 16 * i;
    const std::uint8_t* b = libbt.cpu.fxsave + kXmmRegisters + 16 * i;
    if (std::memcmp(a, b, 16) != 0) {
      Append(out, "  xmm%u: native %08x%08x%08x%08x, libbt %08x%08x%08x%08x\n", i, Load(a + 12, 4),
             Load(a + 8, 4), Load(a + 4, 4), Load(a, 4), Load(b + 12, 4), Load(b + 8, 4),
             Load(b + 4, 4), Load(b, 4));
    }
  }
  unsigned shown = 0;
  for (unsigned i = 0; i < CONF_DATA_BYTES && shown < 8; ++i) {
    if (native.data[i] != libbt.data[i]) {
      Append(out, "  memory %08x: native %02x, libbt %02x (initially %02x)\n",
             CONF_DATA_ADDRESS + i, native.data[i], libbt.data[i], test.data[i]);
      ++shown;
    }
  }
}

}  // namespace

std::string Listing(const TestCase& test) {
  ZydisDecoder decoder;
  ZydisDecoderInit(&decoder, ZYDIS_MACHINE_MODE_LEGACY_32, ZYDIS_STACK_WIDTH_32);
  ZydisFormatter formatter;
  ZydisFormatterInit(&formatter, ZYDIS_FORMATTER_STYLE_INTEL);
  std::string out;
  std::size_t offset = 0;
  while (offset < test.code.size()) {
    ZydisDecodedInstruction insn;
    ZydisDecodedOperand operands[ZYDIS_MAX_OPERAND_COUNT];
    const std::uint32_t eip = CONF_CODE_ADDRESS + static_cast<std::uint32_t>(offset);
    Append(out, "    %08x  ", eip);
    if (ZYAN_FAILED(ZydisDecoderDecodeFull(&decoder, test.code.data() + offset,
                                           test.code.size() - offset, &insn, operands))) {
      Append(out, "%02x  (bad)\n", test.code[offset]);
      ++offset;
      continue;
    }
    std::string bytes;
    for (unsigned i = 0; i < insn.length; ++i) Append(bytes, "%02x ", test.code[offset + i]);
    char text[128];
    if (ZYAN_FAILED(ZydisFormatterFormatInstruction(&formatter, &insn, operands,
                                                    insn.operand_count_visible, text, sizeof(text),
                                                    eip, nullptr))) {
      std::snprintf(text, sizeof(text), "(unformattable)");
    }
    Append(out, "%-30s %s\n", bytes.c_str(), text);
    offset += insn.length;
  }
  return out;
}

std::string Compare(const TestCase& test, const conf_result& native, const conf_result& libbt) {
  std::string differences;
  if (native.outcome != libbt.outcome ||
      (native.outcome == CONF_EXCEPTION &&
       (native.vector != libbt.vector || native.cpu.eip != libbt.cpu.eip ||
        (CarriesErrorCode(native.vector) &&
         ComparableErrorCode(native) != ComparableErrorCode(libbt)) ||
        (native.vector == 14 && native.fault_address != libbt.fault_address)))) {
    differences += "  ending: native " + Ending(native) + ", libbt " + Ending(libbt) + "\n";
  }
  if (native.outcome == CONF_RUNNER_ERROR || libbt.outcome == CONF_RUNNER_ERROR) {
    if (differences.empty() && native.outcome == CONF_RUNNER_ERROR) {
      differences += "  both runners failed: " + Ending(native) + "\n";
    }
  } else {
    DescribeStateDifferences(differences, test, native, libbt);
  }
  if (differences.empty()) return {};
  std::string report = "mismatch in " + test.instruction_class + " / " + test.form + "\n";
  report += "  code:\n" + Listing(test);
  if (test.fs_base || test.gs_base) {
    Append(report, "  fs base %08x, gs base %08x\n", test.fs_base, test.gs_base);
  }
  report += "  initial:\n    ";
  DescribeCpu(report, test.initial);
  report += "  native final (" + Ending(native) + "):\n    ";
  DescribeCpu(report, native.cpu);
  report += "  libbt final (" + Ending(libbt) + "):\n    ";
  DescribeCpu(report, libbt.cpu);
  report += "  differences:\n" + differences;
  return report;
}

}  // namespace bt::conformance
