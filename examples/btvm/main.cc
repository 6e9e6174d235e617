// btvm: boots a Multiboot kernel or a Linux bzImage (or the bundled demo
// guest) on a libbt Machine, with the guest's serial output on stdout. The
// exit status tells how the guest stopped; `btvm --help` lists the statuses.
#include "serial_console.h"

#include <bt/machine.h>

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

namespace {

constexpr std::uint64_t kKiB = 1024;
constexpr std::uint64_t kMiB = kKiB * 1024;
constexpr std::uint64_t kGiB = kMiB * 1024;

// The engine's own limits for guest RAM (mmu::PhysicalMemory), checked here
// too so that they are reported as argument errors: page-sized steps, and the
// top gigabyte of the 32-bit physical space is left to device MMIO.
constexpr std::uint64_t kMinRam = 1 * kMiB;
constexpr std::uint64_t kMaxRam = 3 * kGiB;
constexpr std::uint64_t kPageSize = 4 * kKiB;
// libbt's own minimum; staying well below 2 GiB keeps every unit in the
// cache within a rel32 jump of every other one.
constexpr std::uint64_t kMinCache = 256 * kKiB;
constexpr std::uint64_t kMaxCache = 1 * kGiB;
// A unit never crosses a guest page, so it cannot hold more than 4096
// instructions anyway.
constexpr unsigned kMaxUnit = 4096;
constexpr double kMaxTimeLimitSeconds = 1e6;

constexpr int kStatusHalted = 0;
constexpr int kStatusError = 2;
constexpr int kStatusGuestException = 3;
constexpr int kStatusUnsupported = 4;
constexpr int kStatusTripleFault = 5;
constexpr int kStatusTimeLimit = 6;
constexpr int kStatusReset = 7;
constexpr int kStatusInterrupted = 130;  // 128 + SIGINT, as a shell reports it

struct Options {
  std::string kernel_path;
  std::string initrd_path;
  std::string command_line;
  std::uint64_t ram_bytes = bt::MachineConfig{}.ram_bytes;
  bool print_stats = false;
  unsigned max_unit = bt::TranslatorOptions{}.max_unit_instructions;
  bool chaining = bt::TranslatorOptions{}.chaining;
  bool stop_on_exception = false;
  std::uint64_t cache_bytes = bt::TranslatorOptions{}.cache_bytes;
  double time_limit_seconds = 0;  // 0: no limit
  bool help = false;
};

#ifdef BTVM_HAVE_DEMO
// The demo guest's ELF image, placed in the binary by demo_image.S.
extern "C" const std::uint8_t btvm_demo_image[];
extern "C" const std::uint8_t btvm_demo_image_end[];
#endif

// "64M" for sizes that are a whole number of the unit, bytes otherwise.
std::string FormatSize(std::uint64_t bytes) {
  if (bytes != 0 && bytes % kGiB == 0) return std::to_string(bytes / kGiB) + "G";
  if (bytes != 0 && bytes % kMiB == 0) return std::to_string(bytes / kMiB) + "M";
  if (bytes != 0 && bytes % kKiB == 0) return std::to_string(bytes / kKiB) + "K";
  return std::to_string(bytes);
}

void PrintUsage() {
  const Options defaults;
  std::printf(
      "Usage: btvm [--kernel FILE] [--initrd FILE] [--append CMDLINE] [--mem SIZE]\n"
      "            [--stats] [--max-unit N] [--no-chain] [--cache-size SIZE]\n"
      "            [--time-limit SECONDS] [--stop-on-exception] [--help]\n"
      "\n"
      "Runs a 32-bit x86 Multiboot v1 kernel or Linux bzImage under libbt's binary\n"
      "translator.\n"
      "Without --kernel it boots the demo guest built into btvm. The guest's\n"
      "serial output (COM1 and port 0xE9) goes to stdout, and stdin to COM1's input.\n"
      "When stdin and stdout are a terminal, it is put in raw mode: keys go to the\n"
      "guest as typed (Ctrl-C included). Ctrl-A x quits, Ctrl-A Ctrl-A sends Ctrl-A,\n"
      "Ctrl-A h lists these keys. Otherwise what stdin reads is sent as it comes\n"
      "(printf 'uname -a\\n' | btvm ...), except that a terminal stdin is left\n"
      "alone when stdout is redirected.\n"
      "\n"
      "Options (also accepted as --option=value):\n"
      "  --kernel FILE         kernel to boot: Multiboot v1 (ELF32 or a.out kludge) or\n"
      "                        an i386 Linux bzImage (boot protocol 2.10 or later)\n"
      "  --initrd FILE         initial RAM disk for a Linux kernel\n"
      "  --append CMDLINE      kernel command line\n"
      "  --mem SIZE            guest RAM, %s to %s in 4K steps (default %s)\n"
      "  --stats               print translation statistics to stderr after the run\n"
      "  --max-unit N          at most N guest instructions per translation unit,\n"
      "                        1 to %u (default %u)\n"
      "  --no-chain            never link translation units to each other\n"
      "  --cache-size SIZE     translation cache, %s to %s (default %s)\n"
      "  --time-limit SECONDS  stop the guest after SECONDS of running (fractions allowed)\n"
      "  --stop-on-exception   stop at the first guest exception (0-31, int3 and into\n"
      "                        included) instead of delivering it through the IDT\n"
      "  -h, --help            print this help and exit\n"
      "SIZE is a byte count with an optional K, M or G suffix (powers of 1024).\n"
      "\n"
      "Exit status:\n"
      "  0     the guest halted (hlt with interrupts disabled)\n"
      "  2v+1  the guest wrote v to the debug-exit port 0xF4, as QEMU's isa-debug-exit\n"
      "        device exits (low 8 bits). v=1 and v=2 give 3 and 5 as well: the\n"
      "        statuses below print a line on stderr, a debug exit does not\n"
      "  2     bad arguments, a kernel that cannot be loaded, or a host error\n"
      "  3     a guest exception stopped the run (--stop-on-exception; vector and eip\n"
      "        on stderr)\n"
      "  4     an instruction libbt cannot run yet (bytes and eip on stderr)\n"
      "  5     triple fault: an exception could not be delivered (the chain of\n"
      "        exceptions on stderr); a real CPU would reset\n"
      "  6     the --time-limit ran out\n"
      "  7     the guest reset the machine (a reboot: keyboard controller, port 0x92\n"
      "        or 0xCF9)\n"
      "  130   stopped by SIGINT (Ctrl-C outside raw mode) or Ctrl-A x; a second\n"
      "        SIGINT exits at once\n"
      "  128+n killed by signal n (SIGTERM, SIGHUP, SIGQUIT), terminal restored\n",
      FormatSize(kMinRam).c_str(), FormatSize(kMaxRam).c_str(),
      FormatSize(defaults.ram_bytes).c_str(), kMaxUnit, defaults.max_unit,
      FormatSize(kMinCache).c_str(), FormatSize(kMaxCache).c_str(),
      FormatSize(defaults.cache_bytes).c_str());
}

// Digits with an optional K/M/G suffix (binary units).
bt::Result<std::uint64_t> ParseSize(std::string_view option, std::string_view text,
                                    std::uint64_t min, std::uint64_t max) {
  std::uint64_t value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  std::string_view suffix(end, text.data() + text.size() - end);
  std::uint64_t unit = 0;
  if (suffix.empty()) unit = 1;
  if (suffix == "K" || suffix == "k") unit = kKiB;
  if (suffix == "M" || suffix == "m") unit = kMiB;
  if (suffix == "G" || suffix == "g") unit = kGiB;
  std::string prefix = std::string(option) + " '" + std::string(text) + "'";
  if (error == std::errc::invalid_argument || unit == 0) {
    return bt::Error{prefix + " is not a size like 512K, 64M, 1G or a byte count"};
  }
  if (error == std::errc::result_out_of_range || value > max / unit) {
    return bt::Error{prefix + " is larger than " + FormatSize(max)};
  }
  if (value * unit < min) return bt::Error{prefix + " is smaller than " + FormatSize(min)};
  return value * unit;
}

// Sets the option `name` that takes a value.
bt::Result<void> SetOption(Options& options, std::string_view name, std::string_view text) {
  std::string quoted = "'" + std::string(text) + "'";
  if (name == "--kernel") {
    if (text.empty()) return bt::Error{"--kernel needs a file name"};
    options.kernel_path = text;
  } else if (name == "--initrd") {
    if (text.empty()) return bt::Error{"--initrd needs a file name"};
    options.initrd_path = text;
  } else if (name == "--append") {
    options.command_line = text;
  } else if (name == "--mem") {
    auto size = ParseSize(name, text, kMinRam, kMaxRam);
    if (!size) return bt::Error{size.error()};
    if (*size % kPageSize != 0) return bt::Error{"--mem " + quoted + " is not a multiple of 4K"};
    options.ram_bytes = *size;
  } else if (name == "--cache-size") {
    auto size = ParseSize(name, text, kMinCache, kMaxCache);
    if (!size) return bt::Error{size.error()};
    options.cache_bytes = *size;
  } else if (name == "--max-unit") {
    unsigned n = 0;
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), n);
    if (error != std::errc{} || end != text.data() + text.size() || n < 1 || n > kMaxUnit) {
      return bt::Error{"--max-unit needs a whole number from 1 to " + std::to_string(kMaxUnit) +
                       ", not " + quoted};
    }
    options.max_unit = n;
  } else {  // --time-limit
    double seconds = 0;
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), seconds);
    if (error != std::errc{} || end != text.data() + text.size() || !std::isfinite(seconds) ||
        seconds <= 0 || seconds > kMaxTimeLimitSeconds) {
      return bt::Error{"--time-limit needs a number of seconds above 0 and at most " +
                       std::to_string(static_cast<long>(kMaxTimeLimitSeconds)) + ", not " + quoted};
    }
    options.time_limit_seconds = seconds;
  }
  return {};
}

bool TakesValue(std::string_view name) {
  return name == "--kernel" || name == "--initrd" || name == "--append" || name == "--mem" ||
         name == "--max-unit" || name == "--cache-size" || name == "--time-limit";
}

bt::Result<Options> ParseArguments(std::span<char* const> args) {
  Options options;
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string_view arg = args[i];
    std::string_view name = arg;
    std::string_view value;
    bool has_inline_value = false;
    if (auto equals = arg.find('='); arg.starts_with("--") && equals != std::string_view::npos) {
      name = arg.substr(0, equals);
      value = arg.substr(equals + 1);
      has_inline_value = true;
    }

    if (TakesValue(name)) {
      if (!has_inline_value) {
        if (i + 1 == args.size()) {
          return bt::Error{"option " + std::string(name) + " needs a value"};
        }
        value = args[++i];
      }
      if (auto set = SetOption(options, name, value); !set) return bt::Error{set.error()};
      continue;
    }
    if (name == "-h" || name == "--help") {
      options.help = true;
    } else if (name == "--stats") {
      options.print_stats = true;
    } else if (name == "--no-chain") {
      options.chaining = false;
    } else if (name == "--stop-on-exception") {
      options.stop_on_exception = true;
    } else if (arg.starts_with("-")) {
      return bt::Error{"unknown option " + std::string(name)};
    } else {
      return bt::Error{"unexpected argument '" + std::string(arg) + "'"};
    }
    if (has_inline_value) return bt::Error{"option " + std::string(name) + " takes no value"};
  }
  return options;
}

// Turns SIGINT into Machine::RequestStop(). SIGINT is blocked in every thread
// and taken by sigwait() on a thread of its own, because RequestStop() is
// documented as thread-safe, not as async-signal-safe. SIGTERM, SIGHUP and
// SIGQUIT end btvm at once, but only after the terminal is out of raw mode.
class InterruptWatcher {
 public:
  // Must run before any other thread exists, so that all of them (the
  // engine's included) inherit the blocked mask and none takes SIGINT itself.
  static void BlockInterrupts() {
    sigset_t set = InterruptSet();
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
  }

  explicit InterruptWatcher(bt::Machine& machine)
      : machine_(machine), thread_([this] { Watch(); }) {}

  ~InterruptWatcher() {
    done_ = true;
    pthread_kill(thread_.native_handle(), SIGINT);
    thread_.join();
  }

  InterruptWatcher(const InterruptWatcher&) = delete;
  InterruptWatcher& operator=(const InterruptWatcher&) = delete;

 private:
  static sigset_t InterruptSet() {
    sigset_t set;
    sigemptyset(&set);
    for (int signal_number : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) sigaddset(&set, signal_number);
    return set;
  }

  void Watch() {
    sigset_t set = InterruptSet();
    bool stop_requested = false;
    for (;;) {
      int signal_number = 0;
      if (sigwait(&set, &signal_number) != 0 || done_) return;
      if (signal_number != SIGINT) {
        btvm::SerialConsole::RestoreTerminal();
        _exit(128 + signal_number);
      }
      // A guest that does not stop after the first Ctrl-C must not trap the
      // user: the second one ends the process.
      if (stop_requested) {
        btvm::SerialConsole::RestoreTerminal();
        static constexpr char kMessage[] = "btvm: interrupted again, exiting\n";
        (void)!write(STDERR_FILENO, kMessage, sizeof kMessage - 1);
        _exit(kStatusInterrupted);
      }
      stop_requested = true;
      machine_.RequestStop();
    }
  }

  bt::Machine& machine_;
  std::atomic<bool> done_{false};
  std::thread thread_;
};

// Reports how the guest stopped on stderr and returns btvm's exit status.
int ExitStatus(const bt::StopInfo& stop, const Options& options, bool quit_from_console) {
  auto print_message = [&] {
    if (!stop.message.empty()) std::fprintf(stderr, "btvm: %s\n", stop.message.c_str());
  };
  switch (stop.reason) {
    case bt::StopReason::kDebugExit:
      // QEMU's isa-debug-exit convention, so a guest exits alike under both.
      return static_cast<int>(((stop.exit_value << 1) | 1) & 0xFF);
    case bt::StopReason::kHalted: return kStatusHalted;
    case bt::StopReason::kGuestException:
      std::fprintf(stderr, "btvm: guest exception vector %u at eip=0x%08x\n",
                   static_cast<unsigned>(stop.vector), stop.eip);
      print_message();
      return kStatusGuestException;
    case bt::StopReason::kUnsupportedInstruction: {
      std::string bytes;
      std::size_t length =
          std::min<std::size_t>(stop.instruction_length, stop.instruction_bytes.size());
      for (std::size_t i = 0; i < length; ++i) {
        char hex[3];
        std::snprintf(hex, sizeof hex, "%02x", stop.instruction_bytes[i]);
        if (!bytes.empty()) bytes += ' ';
        bytes += hex;
      }
      if (bytes.empty()) bytes = "(unknown bytes)";
      std::fprintf(stderr, "btvm: unsupported instruction %s at eip=0x%08x\n", bytes.c_str(),
                   stop.eip);
      print_message();
      return kStatusUnsupported;
    }
    case bt::StopReason::kTripleFault:
      std::fprintf(stderr, "btvm: guest triple fault at eip=0x%08x\n", stop.eip);
      print_message();
      return kStatusTripleFault;
    case bt::StopReason::kReset:
      std::fprintf(stderr, "btvm: the guest reset the machine (reboot)\n");
      return kStatusReset;
    case bt::StopReason::kBudgetExhausted:
      std::fprintf(stderr, "btvm: time limit of %g s reached at eip=0x%08x\n",
                   options.time_limit_seconds, stop.eip);
      return kStatusTimeLimit;
    case bt::StopReason::kStopRequested:
      std::fprintf(stderr, "btvm: %s at eip=0x%08x\n",
                   quit_from_console ? "quit with Ctrl-A x" : "interrupted", stop.eip);
      return kStatusInterrupted;
    case bt::StopReason::kHostError: break;
  }
  std::fprintf(stderr, "btvm: host error: %s\n",
               stop.message.empty() ? "(no details)" : stop.message.c_str());
  return kStatusError;
}

int Run(const Options& options) {
  bt::MachineConfig config;
  config.ram_bytes = options.ram_bytes;
  config.boot.command_line = options.command_line;
  config.boot.initrd_path = options.initrd_path;
  config.translator.cache_bytes = options.cache_bytes;
  config.translator.max_unit_instructions = options.max_unit;
  config.translator.chaining = options.chaining;
  if (options.stop_on_exception) config.intercepted_exceptions = ~0u;
  config.serial_output = [](std::string_view bytes) {
    std::fwrite(bytes.data(), 1, bytes.size(), stdout);
    std::fflush(stdout);
  };
  if (!options.kernel_path.empty()) {
    config.boot.kernel_path = options.kernel_path;
  } else {
#ifdef BTVM_HAVE_DEMO
    config.boot.kernel_image.assign(btvm_demo_image, btvm_demo_image_end);
#else
    std::fprintf(stderr, "btvm: no --kernel given, and this btvm was built without the demo\n");
    return kStatusError;
#endif
  }

  auto machine = bt::Machine::Create(std::move(config));
  if (!machine) {
    std::fprintf(stderr, "btvm: %s\n", machine.error().c_str());
    return kStatusError;
  }
  bt::RunLimits limits;
  limits.time_budget = std::chrono::duration_cast<std::chrono::nanoseconds>(
      std::chrono::duration<double>(options.time_limit_seconds));

  bt::StopInfo stop;
  bool quit_from_console = false;
  {
    InterruptWatcher watcher(**machine);
    btvm::SerialConsole console(**machine);
    stop = (*machine)->Run(limits);
    quit_from_console = console.quit_requested();
  }
  int status = ExitStatus(stop, options, quit_from_console);
  if (options.print_stats) std::fputs((*machine)->GetStats().Format().c_str(), stderr);
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  InterruptWatcher::BlockInterrupts();
  // argc is 0 when btvm is exec'd with an empty argv.
  auto options = ParseArguments(std::span<char* const>(argv, argc).subspan(argc > 0 ? 1 : 0));
  if (!options) {
    std::fprintf(stderr, "btvm: %s\nTry 'btvm --help' for usage.\n", options.error().c_str());
    return kStatusError;
  }
  if (options->help) {
    PrintUsage();
    return 0;
  }
  return Run(*options);
}
