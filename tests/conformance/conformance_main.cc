// bt_conformance: differential testing of libbt against the host CPU.
//
//   bt_conformance forms   every enumerated instruction form, edge-value operands
//   bt_conformance random  random programs, until an instruction or time budget
#include "compare.h"
#include "differential.h"
#include "forms.h"
#include "random_program.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

namespace bt::conformance {
namespace {

constexpr const char* kUsage = R"(usage: bt_conformance forms|random [options]

Runs 32-bit code snippets natively (through bt_native_runner) and inside libbt
under each translator setting, and reports every difference in the end state.

  forms                  every enumerated instruction form with edge-value operands,
                         plus every ModRM/SIB addressing form
  random                 random programs with forward branches

options:
  --runner PATH          the native runner (default: the one built with this tool)
  --settings A,B         libbt settings to test: a translation-unit cap, with a
                         'p' suffix to run the guest with paging (default: 1,64p)
  --seed N               random seed (default: 1)
  --cases N              forms: cases per form (default: 24)
  --class NAME           forms: only this instruction class
  --markdown FILE        forms: write the coverage table to FILE
  --instructions N       random: stop after N instructions compared (default: 1000000)
  --seconds N            random: stop after N seconds (default: no limit)
  --length N             random: instructions per program (default: 48)
  --max-reports N        print at most N mismatch reports (default: 20)
exit status: 0 no mismatch, 1 mismatches found, 2 usage or set-up error
)";

struct Options {
  std::string command;
  std::string runner = BT_NATIVE_RUNNER_PATH;
  std::vector<Setting> settings = kDefaultSettings;
  std::uint64_t seed = 1;
  unsigned cases = 24;
  std::string only_class;
  std::string markdown;
  std::uint64_t instructions = 1000000;
  double seconds = 0;
  unsigned length = 48;
  unsigned max_reports = 20;
};

bool ParseOptions(int argc, char** argv, Options& options) {
  if (argc < 2) return false;
  options.command = argv[1];
  if (options.command != "forms" && options.command != "random") return false;
  for (int i = 2; i < argc; ++i) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) {
      std::fprintf(stderr, "bt_conformance: %s needs a value\n", flag.c_str());
      return false;
    }
    const std::string value = argv[++i];
    char* end = nullptr;
    const unsigned long long number = std::strtoull(value.c_str(), &end, 0);
    const bool numeric = end && *end == '\0' && !value.empty();
    if (flag == "--runner") {
      options.runner = value;
    } else if (flag == "--settings") {
      options.settings.clear();
      for (std::size_t at = 0; at < value.size();) {
        std::size_t comma = value.find(',', at);
        if (comma == std::string::npos) comma = value.size();
        const std::string item = value.substr(at, comma - at);
        char* rest = nullptr;
        const auto cap = static_cast<unsigned>(std::strtoul(item.c_str(), &rest, 0));
        const std::string suffix = rest ? rest : "";
        if (cap == 0 || (suffix != "" && suffix != "p")) {
          std::fprintf(stderr, "bt_conformance: bad --settings '%s'\n", value.c_str());
          return false;
        }
        options.settings.push_back({cap, suffix == "p"});
        at = comma + 1;
      }
    } else if (flag == "--class") {
      options.only_class = value;
    } else if (flag == "--markdown") {
      options.markdown = value;
    } else if (!numeric) {
      std::fprintf(stderr, "bt_conformance: unknown option %s or bad number '%s'\n", flag.c_str(),
                   value.c_str());
      return false;
    } else if (flag == "--seed") {
      options.seed = number;
    } else if (flag == "--cases") {
      options.cases = static_cast<unsigned>(number);
    } else if (flag == "--instructions") {
      options.instructions = number;
    } else if (flag == "--seconds") {
      options.seconds = static_cast<double>(number);
    } else if (flag == "--length") {
      options.length = static_cast<unsigned>(number);
    } else if (flag == "--max-reports") {
      options.max_reports = static_cast<unsigned>(number);
    } else {
      std::fprintf(stderr, "bt_conformance: unknown option %s\n", flag.c_str());
      return false;
    }
  }
  return true;
}

struct Tally {
  std::uint64_t tests = 0, instructions = 0, mismatches = 0, reported = 0;
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point last_progress = start;

  double Seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
};

// Runs one test; false on a set-up failure. Counts and prints mismatches.
bool RunOne(DifferentialTester& tester, const TestCase& test, const Options& options, Tally& tally,
            bool& passed) {
  auto reports = tester.Run(test);
  if (!reports) {
    std::fprintf(stderr, "bt_conformance: %s\n", reports.error().c_str());
    return false;
  }
  ++tally.tests;
  tally.instructions += test.instruction_count;
  passed = reports->empty();
  for (const std::string& report : *reports) {
    ++tally.mismatches;
    if (tally.reported++ < options.max_reports) std::printf("%s\n", report.c_str());
  }
  const auto now = std::chrono::steady_clock::now();
  if (now - tally.last_progress > std::chrono::seconds(5)) {
    tally.last_progress = now;
    std::fprintf(stderr, "  %llu tests, %llu instructions, %.0f instructions/s, %llu mismatches\n",
                 static_cast<unsigned long long>(tally.tests),
                 static_cast<unsigned long long>(tally.instructions),
                 static_cast<double>(tally.instructions) / tally.Seconds(),
                 static_cast<unsigned long long>(tally.mismatches));
  }
  return true;
}

struct Coverage {
  unsigned forms = 0, forms_passing = 0;
  std::uint64_t cases = 0, cases_passing = 0;
};

void WriteMarkdown(const Options& options, const std::map<std::string, Coverage>& coverage,
                   const std::map<std::string, std::vector<std::string>>& failing) {
  std::FILE* out = std::fopen(options.markdown.c_str(), "w");
  if (!out) {
    std::fprintf(stderr, "bt_conformance: cannot write %s\n", options.markdown.c_str());
    return;
  }
  std::fprintf(out,
               "# CPU conformance coverage\n\n"
               "Generated by `scripts/conformance_report.sh` (`bt_conformance forms "
               "--cases %u --seed %llu --markdown ...`): every instruction form libbt's\n"
               "CPUID advertises at CPL3, each run natively on the host CPU and inside libbt\n"
               "with these settings:",
               options.cases, static_cast<unsigned long long>(options.seed));
  for (std::size_t i = 0; i < options.settings.size(); ++i) {
    std::fprintf(out, "%s %s", i ? ";" : "", options.settings[i].Name().c_str());
  }
  std::fprintf(out,
               ", with edge-value operands. A form passes when every case agrees in\n"
               "registers, EFLAGS (less the flags the SDM leaves undefined), x87/SSE state,\n"
               "memory and the exception raised.\n\n"
               "| instruction class | forms | forms passing | cases | cases passing |\n"
               "|---|---:|---:|---:|---:|\n");
  Coverage total;
  for (const auto& [name, c] : coverage) {
    std::fprintf(out, "| %s | %u | %u | %llu | %llu |\n", name.c_str(), c.forms, c.forms_passing,
                 static_cast<unsigned long long>(c.cases),
                 static_cast<unsigned long long>(c.cases_passing));
    total.forms += c.forms;
    total.forms_passing += c.forms_passing;
    total.cases += c.cases;
    total.cases_passing += c.cases_passing;
  }
  std::fprintf(out, "| **total** | %u | %u | %llu | %llu |\n\n", total.forms, total.forms_passing,
               static_cast<unsigned long long>(total.cases),
               static_cast<unsigned long long>(total.cases_passing));
  if (!failing.empty()) {
    std::fprintf(out, "## Failing forms\n\n");
    for (const auto& [name, forms] : failing) {
      for (const std::string& form : forms)
        std::fprintf(out, "- %s: `%s`\n", name.c_str(), form.c_str());
    }
    std::fprintf(out, "\n");
  }
  std::fputs(
      "## What is compared\n\n"
      "The eight general registers, EIP, EFLAGS (CF PF AF ZF SF IF DF OF AC ID, less\n"
      "the flags the SDM leaves undefined at the point where the run ended), the\n"
      "FXSAVE image (FCW, FSW, abridged FTW, MXCSR, ST0-7/MM0-7, XMM0-7), the 16 KiB\n"
      "of data pages and the exception that ended the run (vector, EIP, error code).\n"
      "The x87 last-instruction and last-operand pointers (FIP, FCS, FOP, FDP, FDS)\n"
      "are not compared: they hold where the code ran, which is host code under\n"
      "libbt and differs from run to run.\n\n"
      "## Running it\n\n"
      "- `build/tests/conformance/bt_conformance forms` - this table's cases "
      "(`--class NAME` for one row).\n"
      "- `build/tests/conformance/bt_conformance random --instructions 10000000 --seed N` - "
      "random programs with forward branches, under the same settings.\n"
      "- libFuzzer, for hours: `CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja "
      "-DCMAKE_BUILD_TYPE=Release -DBT_FUZZ=ON && ninja -C build-fuzz bt_fuzz && mkdir -p "
      "fuzz-corpus && build-fuzz/tests/conformance/bt_fuzz -max_total_time=36000 fuzz-corpus`; "
      "a mismatch aborts with the report and leaves the input as `crash-*`.\n\n"
      "## Page faults\n\n"
      "With paging (the `p` settings), only the pages the native runner maps are\n"
      "present in libbt, so a snippet that strays off them takes #PF in both. The\n"
      "enumerated forms stay on them; `conformance.regressions` compares page faults\n"
      "directly: split accesses faulting on their second page, rep string\n"
      "instructions faulting part-way (ECX/ESI/EDI progress), a push below the\n"
      "stack's page, a call to an unmapped page and an FS base wrapping at 4 GiB\n"
      "(vector, EIP, CR2 and the error code less U/S and I/D, which differ by\n"
      "set-up: CPL3 and NX natively). The snippets run at CPL0 in libbt and at\n"
      "CPL3 natively, which is why the CPL-dependent classes below are left out.\n\n",
      out);
  std::fprintf(out, "## Left out, and why\n\n");
  for (const ExcludedClass& excluded : ExcludedClasses()) {
    std::fprintf(out, "- **%s**: %s\n", excluded.name.c_str(), excluded.reason.c_str());
  }
  std::fclose(out);
}

int RunForms(DifferentialTester& tester, const Options& options) {
  std::mt19937_64 rng(options.seed);
  Tally tally;
  std::map<std::string, Coverage> coverage;
  std::map<std::string, std::vector<std::string>> failing;
  auto run_group = [&](const std::vector<TestCase>& cases) {
    if (cases.empty()) return true;
    bool all_passed = true;
    Coverage& c = coverage[cases.front().instruction_class];
    for (const TestCase& test : cases) {
      bool passed = false;
      if (!RunOne(tester, test, options, tally, passed)) return false;
      ++c.cases;
      c.cases_passing += passed;
      all_passed &= passed;
    }
    ++c.forms;
    c.forms_passing += all_passed;
    if (!all_passed) failing[cases.front().instruction_class].push_back(cases.front().form);
    return true;
  };
  for (const InstructionForm& form : EnumerateForms()) {
    if (!options.only_class.empty() && form.instruction_class != options.only_class) continue;
    if (!run_group(GenerateCases(form, rng, options.cases))) return 2;
  }
  if (options.only_class.empty() || options.only_class == "addressing") {
    std::map<std::string, std::vector<TestCase>> by_form;
    for (TestCase& test : GenerateAddressingCases(rng))
      by_form[test.form].push_back(std::move(test));
    for (const auto& [form, cases] : by_form) {
      if (!run_group(cases)) return 2;
    }
  }
  Coverage total;
  for (const auto& [name, c] : coverage) {
    std::printf("%-24s %5u forms, %5u passing; %7llu cases, %7llu passing\n", name.c_str(), c.forms,
                c.forms_passing, static_cast<unsigned long long>(c.cases),
                static_cast<unsigned long long>(c.cases_passing));
    total.forms += c.forms;
    total.forms_passing += c.forms_passing;
  }
  std::printf("total: %u forms, %u passing; %llu tests (x%zu settings), %llu mismatches, %.1f s\n",
              total.forms, total.forms_passing, static_cast<unsigned long long>(tally.tests),
              options.settings.size(), static_cast<unsigned long long>(tally.mismatches),
              tally.Seconds());
  if (!options.markdown.empty()) WriteMarkdown(options, coverage, failing);
  return tally.mismatches ? 1 : 0;
}

int RunRandom(DifferentialTester& tester, const Options& options) {
  ProgramGenerator generator(options.seed);
  Tally tally;
  while (tally.instructions < options.instructions &&
         (options.seconds == 0 || tally.Seconds() < options.seconds)) {
    bool passed = false;
    if (!RunOne(tester, generator.Generate(options.length), options, tally, passed)) return 2;
  }
  const double seconds = tally.Seconds();
  std::printf(
      "random: %llu programs, %llu instructions compared under %zu settings in %.1f s "
      "(%.0f instructions/s per setting), %llu mismatches\n",
      static_cast<unsigned long long>(tally.tests),
      static_cast<unsigned long long>(tally.instructions), options.settings.size(), seconds,
      static_cast<double>(tally.instructions) / seconds,
      static_cast<unsigned long long>(tally.mismatches));
  return tally.mismatches ? 1 : 0;
}

}  // namespace
}  // namespace bt::conformance

int main(int argc, char** argv) {
  using namespace bt::conformance;
  Options options;
  if (argc >= 2 && (std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0)) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (!ParseOptions(argc, argv, options)) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  auto tester = DifferentialTester::Create(options.runner, options.settings);
  if (!tester) {
    std::fprintf(stderr, "bt_conformance: %s\n", tester.error().c_str());
    return 2;
  }
  return options.command == "forms" ? RunForms(**tester, options) : RunRandom(**tester, options);
}
