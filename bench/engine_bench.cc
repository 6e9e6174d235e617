// Microbenchmarks of the translator and the translation cache. Guest-level
// ones run real guests through bt::Machine and time Run() only.
#include "decoder/decoder.h"
#include "tests/support/assembled_guest.h"
#include "translator/code_cache.h"
#include "translator/trampolines.h"
#include "translator/translator.h"

#include <bt/machine.h>

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdio>
#include <memory>

namespace bt::bench {
namespace {

namespace x86 = asmjit::x86;
using testing::AssembleGuest;
using testing::EmitExit;

// Runs `image` with ECX = `iterations` and returns the seconds Run() took;
// aborts the benchmark if the guest does not exit cleanly.
double TimeGuest(benchmark::State& state, const std::vector<std::uint8_t>& image,
                 std::uint32_t iterations, TranslatorOptions options) {
  MachineConfig config;
  config.ram_bytes = 32u << 20;
  config.boot.kernel_image = image;
  config.translator = options;
  auto machine = Machine::Create(config);
  if (!machine) {
    state.SkipWithError(machine.error().c_str());
    return 0;
  }
  Registers registers = (*machine)->GetRegisters();
  registers.ecx = iterations;
  (*machine)->SetRegisters(registers);
  const auto start = std::chrono::steady_clock::now();
  const StopInfo stop = (*machine)->Run();
  const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
  if (stop.reason != StopReason::kDebugExit) state.SkipWithError(stop.message.c_str());
  return elapsed.count();
}

// A ring of `kBlocks` units, each one instruction and a direct jump, walked
// ECX times: the cost of going from one unit to the next. Blocks are laid
// out in reverse so every jump goes backwards: a forward jump within a page
// would be followed into the same unit.
constexpr int kBlocks = 64;

std::vector<std::uint8_t> BlockRing() {
  return AssembleGuest([](x86::Assembler& a) {
    asmjit::Label blocks[kBlocks + 1];
    for (auto& label : blocks) label = a.newLabel();
    asmjit::Label start = a.newLabel();
    a.jmp(start);
    a.bind(blocks[kBlocks]);
    a.dec(x86::ecx);
    a.jnz(blocks[0]);
    EmitExit(a);
    for (int i = kBlocks - 1; i >= 0; --i) {
      a.bind(blocks[i]);
      a.add(x86::eax, i);
      a.jmp(blocks[i + 1]);
    }
    a.bind(start);
    a.jmp(blocks[0]);
  });
}

void BM_UnitTransition(benchmark::State& state) {
  const auto image = BlockRing();
  TranslatorOptions options;
  options.chaining = state.range(0) != 0;
  const std::uint32_t iterations = options.chaining ? 200000 : 20000;
  for (auto _ : state) {
    state.SetIterationTime(TimeGuest(state, image, iterations, options));
  }
  state.SetItemsProcessed(state.iterations() * iterations * (kBlocks + 1));
  state.SetLabel(options.chaining ? "chained" : "unchained (dispatcher every unit)");
}
BENCHMARK(BM_UnitTransition)->Arg(1)->Arg(0)->UseManualTime()->Unit(benchmark::kMillisecond);

// call/ret pairs: the return goes through the inline lookup table.
void BM_CallReturn(benchmark::State& state) {
  const auto image = AssembleGuest([](x86::Assembler& a) {
    asmjit::Label loop = a.newLabel(), function = a.newLabel();
    a.mov(x86::esp, 0x90000);
    a.bind(loop);
    a.call(function);
    a.dec(x86::ecx);
    a.jnz(loop);
    EmitExit(a);
    a.bind(function);
    a.add(x86::eax, 1);
    a.ret();
  });
  const std::uint32_t iterations = 2000000;
  for (auto _ : state) {
    state.SetIterationTime(TimeGuest(state, image, iterations, TranslatorOptions{}));
  }
  state.SetItemsProcessed(state.iterations() * iterations);
}
BENCHMARK(BM_CallReturn)->UseManualTime()->Unit(benchmark::kMillisecond);

// A loop that rewrites an immediate in its own code every iteration: each
// write faults, invalidates the page's units and retranslates them.
void BM_SmcInvalidation(benchmark::State& state) {
  const auto image = AssembleGuest([](x86::Assembler& a) {
    asmjit::Label loop = a.newLabel(), patched = a.newLabel();
    a.bind(loop);
    a.mov(x86::byte_ptr(patched, 1), x86::cl);
    a.bind(patched);
    a.mov(x86::eax, 0);
    a.dec(x86::ecx);
    a.jnz(loop);
    EmitExit(a);
  });
  const std::uint32_t iterations = 2000;
  for (auto _ : state) {
    state.SetIterationTime(TimeGuest(state, image, iterations, TranslatorOptions{}));
  }
  state.SetItemsProcessed(state.iterations() * iterations);
}
BENCHMARK(BM_SmcInvalidation)->UseManualTime()->Unit(benchmark::kMillisecond);

// Translator-level benchmarks over a synthetic code page: typical integer
// code with memory operands, a conditional branch every eight instructions.
class SyntheticCode final : public translator::CodeSource {
 public:
  static constexpr std::uint32_t kBase = 0x100000;
  static constexpr std::uint32_t kPages = 16;

  SyntheticCode() {
    asmjit::CodeHolder code;
    code.init(asmjit::Environment(asmjit::Arch::kX86), kBase);
    x86::Assembler a(&code);
    int n = 0;
    while (code.codeSize() < kPages * 4096 - 64) {
      asmjit::Label next = a.newLabel();
      a.mov(x86::eax, x86::dword_ptr(x86::esi, 4 * (n % 32)));
      a.add(x86::eax, x86::ebx);
      a.lea(x86::edx, x86::ptr(x86::eax, x86::ecx, 2, 12));
      a.mov(x86::dword_ptr(x86::esp, 8), x86::edx);
      a.imul(x86::ecx, x86::edx, 3);
      a.movzx(x86::edi, x86::byte_ptr(x86::ebx, x86::ecx));
      a.cmp(x86::edi, n & 0xFF);
      a.jne(next);
      a.bind(next);
      ++n;
    }
    code.flatten();
    bytes_.resize(kPages * 4096, 0x90);
    code.copyFlattenedData(bytes_.data(), code.codeSize());
  }

  const std::uint8_t* CodePage(std::uint32_t page_base, std::uint32_t* physical_page) override {
    if (page_base < kBase || page_base >= kBase + kPages * 4096) return nullptr;
    *physical_page = (page_base - kBase) / 4096;
    return bytes_.data() + (page_base - kBase);
  }
  translator::Adaptation AdaptationAt(std::uint32_t) override { return {}; }

 private:
  std::vector<std::uint8_t> bytes_;
};

struct TranslatorFixture {
  TranslatorFixture() {
    cache = std::move(translator::CodeCache::Create(64u << 20, SyntheticCode::kPages).value());
    trampolines = translator::BuildTrampolines(*cache).value();
    translator = std::make_unique<translator::Translator>(decoder, *cache, trampolines,
                                                          translator::Translator::Options{});
  }
  // Translates every unit of the synthetic code once; returns the unit starts.
  std::vector<std::uint32_t> TranslateAll() {
    std::vector<std::uint32_t> starts;
    std::uint32_t eip = SyntheticCode::kBase;
    while (eip < SyntheticCode::kBase + SyntheticCode::kPages * 4096 - 64) {
      translator::TranslationUnit* unit = nullptr;
      if (translator->Translate({eip, 0, eip / 4096}, false, source, &unit) !=
          translator::Translator::Status::kOk) {
        break;
      }
      starts.push_back(eip);
      eip += unit->guest_bytes;
    }
    return starts;
  }

  decoder::Decoder decoder;
  SyntheticCode source;
  std::unique_ptr<translator::CodeCache> cache;
  translator::Trampolines trampolines;
  std::unique_ptr<translator::Translator> translator;
};

void BM_TranslationThroughput(benchmark::State& state) {
  TranslatorFixture fixture;
  std::uint64_t instructions = 0;
  for (auto _ : state) {
    const std::uint64_t before = fixture.translator->counters().instructions;
    benchmark::DoNotOptimize(fixture.TranslateAll());
    instructions += fixture.translator->counters().instructions - before;
    state.PauseTiming();
    fixture.cache->Flush();
    state.ResumeTiming();
  }
  state.counters["guest_instructions/s"] =
      benchmark::Counter(static_cast<double>(instructions), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_TranslationThroughput)->Unit(benchmark::kMillisecond);

void BM_CacheLookupHit(benchmark::State& state) {
  TranslatorFixture fixture;
  const std::vector<std::uint32_t> starts = fixture.TranslateAll();
  std::size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(fixture.cache->Lookup({starts[i], 0, starts[i] / 4096}));
    i = (i + 7) % starts.size();
  }
  state.SetLabel(std::to_string(starts.size()) + " units cached");
}
BENCHMARK(BM_CacheLookupHit);

}  // namespace
}  // namespace bt::bench

BENCHMARK_MAIN();
