#include "random_program.h"

#include <algorithm>
#include <cassert>
#include <map>
#include <numeric>
#include <optional>
#include <random>
#include <string_view>

namespace bt::conformance {
namespace {

enum : int { kEax, kEcx, kEdx, kEbx, kEsp, kEbp, kEsi, kEdi };
// EBX holds the data base and ESP the balanced stack: no instruction writes them.
constexpr std::uint8_t kReserved = 1u << kEbx | 1u << kEsp;
// Memory operands live below this, the stack above it.
constexpr std::uint32_t kProgramDataEnd = kDataEnd - 0x400;
// The largest unit; the code pages keep at least one int3 after the program.
constexpr std::size_t kMaxUnitBytes = 128;
constexpr std::size_t kCodeLimit = CONF_CODE_BYTES - 1;

class OwnedPrngSource final : public RandomSource {
 public:
  explicit OwnedPrngSource(std::uint64_t seed) : rng_(seed) {}
  std::uint64_t Below(std::uint64_t bound) override { return bound ? rng_() % bound : rng_(); }

 private:
  std::mt19937_64 rng_;
};

// A fuzzer's bytes as decisions: each takes as many bytes as its bound
// needs, so that the fuzzer's mutations map to nearby programs.
class ChoiceSource final : public RandomSource {
 public:
  explicit ChoiceSource(std::span<const std::uint8_t> choices)
      : choices_(choices.begin(), choices.end()), fallback_(Fnv1a(choices)) {}

  std::uint64_t Below(std::uint64_t bound) override {
    unsigned bytes = 8;
    if (bound) {
      bytes = 0;
      for (std::uint64_t rest = bound - 1; rest; rest >>= 8) ++bytes;
      if (bytes == 0) return 0;
    }
    if (position_ + bytes > choices_.size()) return bound ? fallback_() % bound : fallback_();
    std::uint64_t value = 0;
    for (unsigned i = 0; i < bytes; ++i) value |= std::uint64_t{choices_[position_++]} << (8 * i);
    return bound ? value % bound : value;
  }

 private:
  static std::uint64_t Fnv1a(std::span<const std::uint8_t> bytes) {
    std::uint64_t hash = 0xCBF29CE484222325;
    for (std::uint8_t b : bytes) hash = (hash ^ b) * 0x100000001B3;
    return hash;
  }

  std::vector<std::uint8_t> choices_;
  std::size_t position_ = 0;
  std::mt19937_64 fallback_;
};

std::string_view MnemonicOf(const InstructionForm& form) {
  std::string_view key = form.key;
  for (std::string_view prefix : {"lock ", "rep ", "repe ", "repne ", "a16 "}) {
    if (key.substr(0, prefix.size()) == prefix) key.remove_prefix(prefix.size());
  }
  return key.substr(0, key.find(' '));
}

class WeightedForms {
 public:
  void Add(const InstructionForm* form, std::uint64_t weight) {
    forms_.push_back(form);
    cumulative_.push_back((cumulative_.empty() ? 0 : cumulative_.back()) + weight);
  }
  const InstructionForm& Pick(RandomSource& random) const {
    const std::uint64_t x = random.Below(cumulative_.back());
    return *forms_[std::upper_bound(cumulative_.begin(), cumulative_.end(), x) -
                   cumulative_.begin()];
  }

 private:
  std::vector<const InstructionForm*> forms_;
  std::vector<std::uint64_t> cumulative_;
};

// The enumerated forms sorted by how a program uses them.
struct Pools {
  std::vector<InstructionForm> all;
  WeightedForms general;  // no control flow, stack or string side effects
  std::vector<const InstructionForm*> jcc8, jcc32, loops, jumps, strings, divisions, pushes, pops,
      rare;

  const InstructionForm& Find(std::string_view key) const {
    auto it = std::find_if(all.begin(), all.end(),
                           [&](const InstructionForm& f) { return f.key == key; });
    assert(it != all.end());
    return *it;
  }
};

// Relative weights of the classes in the general pool, favouring integer
// instructions and those that set or consume flags.
std::uint64_t ClassWeight(const std::string& instruction_class) {
  static const std::map<std::string, std::uint64_t> kWeights = {
      {"base integer", 40}, {"bit ops", 10},     {"shift/rotate", 15}, {"cmov/setcc", 15},
      {"bcd", 3},           {"flags", 6},        {"atomic", 4},        {"lock", 4},
      {"nop", 2},           {"popcnt/lzcnt", 3}, {"x87", 10},          {"mmx", 3},
      {"sse", 4},           {"sse2", 6},         {"sse3", 1},          {"ssse3", 2},
      {"sse4.1", 2},        {"sse4.2", 2}};
  auto it = kWeights.find(instruction_class);
  return it == kWeights.end() ? 1 : it->second;
}

const Pools& FormPools() {
  static const Pools pools = [] {
    Pools p;
    p.all = EnumerateForms();
    std::vector<const InstructionForm*> general;
    std::map<std::string, std::uint64_t> class_sizes;
    for (const InstructionForm& form : p.all) {
      const std::string_view mnemonic = MnemonicOf(form);
      if (form.special == InstructionForm::Special::kControlledPopfd) continue;
      if (form.special == InstructionForm::Special::kLockRegister ||
          form.instruction_class == "undefined opcode" || mnemonic == "int3" ||
          mnemonic == "into" || mnemonic == "bound") {
        p.rare.push_back(&form);
        continue;
      }
      const InstructionEffects e = Analyze(form.encoding);
      if (form.instruction_class == "control transfer") {
        const bool rel8 = form.key.ends_with("rel8");
        if (mnemonic == "loop" || mnemonic == "loope" || mnemonic == "loopne" ||
            mnemonic == "jecxz" || mnemonic == "jcxz") {
          p.loops.push_back(&form);
        } else if (mnemonic == "jmp") {
          if (form.key.find("rel") != std::string::npos) p.jumps.push_back(&form);
        } else if (mnemonic.front() == 'j') {
          (rel8 ? p.jcc8 : p.jcc32).push_back(&form);
        }
        continue;  // call and ret come in hand-made pairs
      }
      if (form.instruction_class == "string") {
        p.strings.push_back(&form);
      } else if (mnemonic == "div" || mnemonic == "idiv") {
        p.divisions.push_back(&form);
      } else if (e.uses_stack) {
        if (mnemonic == "push") p.pushes.push_back(&form);
        if (mnemonic == "pop") p.pops.push_back(&form);
      } else {
        general.push_back(&form);
        ++class_sizes[form.instruction_class];
      }
    }
    for (const InstructionForm* form : general) {
      const std::string_view mnemonic = MnemonicOf(*form);
      std::uint64_t weight =
          ClassWeight(form->instruction_class) * 1000 / class_sizes[form->instruction_class];
      if (mnemonic == "adc" || mnemonic == "sbb") weight *= 3;
      p.general.Add(form, std::max<std::uint64_t>(weight, 1));
    }
    return p;
  }();
  return pools;
}

struct Instruction {
  std::vector<std::uint8_t> bytes;
  std::optional<std::uint32_t> count = std::nullopt;  // CL's value, for a shift by CL
};

Instruction MovImm32(int reg, std::uint32_t value) {
  return {{static_cast<std::uint8_t>(0xB8 + reg), static_cast<std::uint8_t>(value),
           static_cast<std::uint8_t>(value >> 8), static_cast<std::uint8_t>(value >> 16),
           static_cast<std::uint8_t>(value >> 24)}};
}

// One instance of a form and the flag-free movs that must run right before it.
struct Instantiated {
  std::vector<Instruction> before;
  Instance instance;
  Instruction instruction;
  unsigned memory_bytes = 0;
};

class ProgramBuilder {
 public:
  ProgramBuilder(RandomSource& random, TestCase& test)
      : random_(random), pools_(FormPools()), test_(test), ebx_(test.initial.gpr[kEbx]) {}

  void Build(unsigned instruction_count) {
    total_ = instruction_count;
    while (emitted_ < total_ && code_.size() + kMaxUnitBytes <= kCodeLimit) {
      for (Pending& p : TakeDue()) Land(p);
      for (;;) {
        const Snapshot snapshot{code_.size(), undefined_, pending_, emitted_};
        BuildUnit();
        assert(code_.size() - snapshot.code_size <= kMaxUnitBytes);
        // A short branch from an earlier unit that this unit pushed out of
        // reach lands before the unit instead, which is then built again.
        std::vector<Pending> out_of_reach;
        for (const Pending& p : snapshot.pending) {
          if (p.bytes == 1 && code_.size() - p.from > 127) out_of_reach.push_back(p);
        }
        if (out_of_reach.empty()) break;
        code_.resize(snapshot.code_size);
        std::erase_if(undefined_at_, [&](const auto& entry) {
          return entry.first >= CONF_CODE_ADDRESS + snapshot.code_size;
        });
        undefined_ = snapshot.undefined;
        emitted_ = snapshot.emitted;
        pending_.clear();
        for (const Pending& p : snapshot.pending) {
          const bool land = std::any_of(out_of_reach.begin(), out_of_reach.end(),
                                        [&](const Pending& q) { return q.field == p.field; });
          if (land) {
            Pending copy = p;
            Land(copy);
          } else {
            pending_.push_back(p);
          }
        }
      }
      ++unit_;
    }
    for (Pending& p : pending_) Land(p);
    pending_.clear();
    test_.code = code_;
    test_.instruction_count = emitted_;
    test_.undefined_flags = undefined_;
    test_.undefined_flags_at = undefined_at_;
  }

 private:
  // A branch whose displacement (or absolute target) is written when the
  // unit it targets begins.
  struct Pending {
    std::size_t field;  // offset of the displacement or address in the code
    unsigned bytes;     // 1 or 4
    bool absolute;      // CONF_CODE_ADDRESS + target, else target - from
    std::size_t from;   // end of the branch instruction
    unsigned target_unit;
    std::uint32_t undefined;  // flags undefined when the branch is taken
  };
  struct Snapshot {
    std::size_t code_size;
    std::uint32_t undefined;
    std::vector<Pending> pending;
    unsigned emitted;
  };

  std::vector<Pending> TakeDue() {
    std::vector<Pending> due;
    auto split = std::stable_partition(pending_.begin(), pending_.end(),
                                       [&](const Pending& p) { return p.target_unit > unit_; });
    due.assign(split, pending_.end());
    pending_.erase(split, pending_.end());
    return due;
  }

  void Land(const Pending& p) {
    const std::size_t position = code_.size();
    std::uint32_t value = 0;
    if (p.absolute) {
      value = CONF_CODE_ADDRESS + static_cast<std::uint32_t>(position);
    } else {
      value = static_cast<std::uint32_t>(position - p.from);
      assert(p.bytes == 4 || value <= 127);
    }
    for (unsigned i = 0; i < p.bytes; ++i)
      code_[p.field + i] = static_cast<std::uint8_t>(value >> (8 * i));
    undefined_ |= p.undefined;
  }

  unsigned Remaining() const { return total_ - emitted_; }

  void Emit(const Instruction& instruction) {
    const InstructionEffects e = Analyze(instruction.bytes, instruction.count);
    assert(e.valid && e.length == instruction.bytes.size());
    undefined_at_.emplace_back(CONF_CODE_ADDRESS + static_cast<std::uint32_t>(code_.size()),
                               undefined_);
    undefined_ = (undefined_ & ~e.flags_defined) | e.flags_undefined;
    code_.insert(code_.end(), instruction.bytes.begin(), instruction.bytes.end());
    ++emitted_;
  }

  // A branch to the start of a later unit; its last `bytes` bytes are the target field.
  void EmitBranch(const Instruction& instruction, unsigned bytes, bool absolute,
                  unsigned units_ahead) {
    Emit(instruction);
    const std::size_t end = code_.size();
    pending_.push_back({end - bytes, bytes, absolute, end, unit_ + 1 + units_ahead, undefined_});
  }

  bool NeedsFlags(std::uint32_t tested) const { return tested & undefined_; }
  // cmp r32, r32 defines all six arithmetic flags.
  void DefineFlags() {
    const auto a = static_cast<std::uint8_t>(random_.Below(8)),
               b = static_cast<std::uint8_t>(random_.Below(8));
    Emit({{0x39, static_cast<std::uint8_t>(0xC0 | b << 3 | a)}});
  }

  int FreeRegister(std::uint8_t avoid) {
    for (;;) {
      const int reg = static_cast<int>(random_.Below(8));
      if (!(avoid & (1u << reg))) return reg;
    }
  }

  // A linear address in the program's data region: mostly aligned, sometimes
  // misaligned or across a page boundary.
  std::uint32_t DataTarget(unsigned bytes, std::uint32_t margin = 0) {
    const std::uint32_t begin = CONF_DATA_ADDRESS + margin, end = kProgramDataEnd - margin;
    // Misaligned 16-byte operands fault in most SSE instructions and end the
    // program, so they are rarer here than in single-instruction cases.
    if (bytes > 1 && random_.OneIn(bytes >= 16 ? 64 : 16)) {
      const std::uint32_t page =
          CONF_DATA_ADDRESS + 0x1000 * static_cast<std::uint32_t>(1 + random_.Below(2));
      return page - 1 - static_cast<std::uint32_t>(random_.Below(bytes - 1));
    }
    std::uint32_t align = 1;
    while (align * 2 <= bytes && align < 16) align *= 2;
    std::uint32_t target =
        begin + align * static_cast<std::uint32_t>(random_.Below((end - begin - bytes) / align));
    if (align > 1 && random_.OneIn(bytes >= 16 ? 64 : 8))
      target += 1 + static_cast<std::uint32_t>(random_.Below(align - 1));
    return target;
  }

  std::optional<Instantiated> Instantiate(const InstructionForm& form, bool memory,
                                          bool stack = false, std::uint8_t avoid = 0) {
    for (int attempt = 0; attempt < 16; ++attempt) {
      Instantiated out;
      Instance& instance = out.instance;
      instance.memory = memory;
      instance.reg = static_cast<std::uint8_t>(random_.Below(8));
      instance.rm = static_cast<std::uint8_t>(random_.Below(8));
      instance.opcode_register = static_cast<std::uint8_t>(random_.Below(8));
      instance.immediates = ChooseImmediates(form, random_);
      std::uint8_t set_by_movs = 0;
      if (memory && !PlaceMemory(form, out, avoid, set_by_movs)) continue;
      if (form.moffs_bytes) PlaceMoffs(form, instance);
      const std::vector<std::uint8_t> code = Encode(form, instance);
      InstructionEffects e = Analyze(code);
      if (!e.valid || e.branches || (e.uses_stack && !stack)) continue;
      if ((stack ? e.gprs_written_explicitly : e.gprs_written) & kReserved) continue;
      bool conflict = false;
      for (int reg = 0; reg < 8; ++reg) {  // maskmovq [edi]
        if (!(e.implicit_memory_bases & (1u << reg)) || reg == kEbx) continue;
        conflict |= (set_by_movs & (1u << reg)) != 0;
        out.before.push_back(MovImm32(reg, DataTarget(16)));
        set_by_movs |= static_cast<std::uint8_t>(1u << reg);
      }
      // shld/shrd r/m16 by CL: counts above 16 leave the result undefined.
      const bool double_shift = e.mnemonic == "shld" || e.mnemonic == "shrd";
      if (double_shift && e.operand_bits == 16 && form.immediate_bytes == 0) {
        conflict |= (set_by_movs & (1u << kEcx)) != 0;
        const std::uint32_t count = static_cast<std::uint32_t>(random_.Below(17));
        out.before.push_back({{0xB1, static_cast<std::uint8_t>(count)}});  // mov cl, imm8
        out.instruction.count = count;
      }
      if (conflict) continue;
      out.instruction.bytes = code;
      return out;
    }
    return std::nullopt;
  }

  // [ebx+disp], or a register set right before, with a segment override now
  // and then; bit-test offsets and MXCSR images are set up too.
  bool PlaceMemory(const InstructionForm& form, Instantiated& out, std::uint8_t avoid,
                   std::uint8_t& set_by_movs) {
    Instance& instance = out.instance;
    instance.address = ModRmAddress::Make(kEbx, -1, 1, 4);
    const InstructionEffects probe = Analyze(Encode(form, instance));
    if (!probe.valid) return false;
    out.memory_bytes = std::max(1u, probe.modrm_memory_bytes);
    const bool bit_offset =
        form.reg_is_operand && (probe.mnemonic == "bt" || probe.mnemonic == "bts" ||
                                probe.mnemonic == "btr" || probe.mnemonic == "btc");
    const std::uint32_t linear = DataTarget(out.memory_bytes, bit_offset ? 0x200 : 0);
    std::uint32_t segment_base = 0;
    static constexpr std::uint8_t kOverrides[] = {0x64, 0x65, 0x3E, 0x26, 0x36};
    const std::uint64_t choice = random_.Below(16);
    if (choice < std::size(kOverrides)) {
      instance.segment_prefix = kOverrides[choice];
      segment_base = choice == 0 ? test_.fs_base : choice == 1 ? test_.gs_base : 0;
      if (linear - segment_base > 0xFFFFFFFFu - out.memory_bytes) {  // past the segment limit
        instance.segment_prefix = 0;
        segment_base = 0;
      }
    }
    const std::uint32_t offset = linear - segment_base;
    int base = kEbx;
    std::uint32_t base_value = ebx_;
    if (random_.OneIn(4)) {
      base = FreeRegister(kReserved | avoid);
      base_value = random_.OneIn(2) ? random_.Bits32() : DataTarget(1);
      out.before.push_back(MovImm32(base, base_value));
      set_by_movs |= static_cast<std::uint8_t>(1u << base);
    }
    int index = -1;
    unsigned scale = 1;
    std::uint32_t index_value = 0;
    if (random_.OneIn(8)) {
      index = FreeRegister(kReserved | avoid | 1u << base);
      scale = 1u << random_.Below(4);
      index_value = static_cast<std::uint32_t>(random_.Below(64));
      out.before.push_back(MovImm32(index, index_value));
      set_by_movs |= static_cast<std::uint8_t>(1u << index);
    }
    const std::uint32_t displacement = offset - base_value - index_value * scale;
    const auto signed_displacement = static_cast<std::int32_t>(displacement);
    const bool short_displacement = signed_displacement >= -128 && signed_displacement <= 127;
    instance.address = ModRmAddress::Make(base, index, scale, short_displacement ? 1 : 4);
    instance.address.displacement = signed_displacement;
    if (bit_offset) {
      const int reg = instance.reg;
      if ((kReserved | set_by_movs | avoid) & (1u << reg)) return false;
      const std::uint32_t bits = static_cast<std::uint32_t>(random_.Below(4096)) - 2048;
      out.before.push_back(MovImm32(reg, bits));
      set_by_movs |= static_cast<std::uint8_t>(1u << reg);
    }
    if (probe.mnemonic == "ldmxcsr") {  // reserved bits set would be #GP
      const std::uint32_t mxcsr = 0x1F80 | static_cast<std::uint32_t>(random_.Below(4)) << 13 |
                                  (random_.OneIn(4) ? 0x8040u : 0u);
      out.before.push_back(Store(instance, mxcsr, 4));
    }
    return true;
  }

  // mov al/ax/eax <-> [moffs]: an absolute offset, sometimes under a segment override.
  void PlaceMoffs(const InstructionForm& form, Instance& instance) {
    const unsigned bytes = std::max(1u, Analyze(form.encoding).operand_bits / 8);
    const std::uint32_t linear = DataTarget(bytes);
    instance.moffs = linear;
    if (random_.OneIn(4)) {
      instance.segment_prefix = random_.OneIn(2) ? 0x64 : 0x65;
      const std::uint32_t offset =
          linear - (instance.segment_prefix == 0x64 ? test_.fs_base : test_.gs_base);
      if (offset <= 0xFFFFFFFFu - bytes) {
        instance.moffs = offset;
      } else {
        instance.segment_prefix = 0;
      }
    }
  }

  // mov r/m, imm to the memory operand of `instance`.
  Instruction Store(const Instance& at, std::uint32_t value, unsigned bytes) {
    const char* key = bytes == 1   ? "mov r/m8, imm8"
                      : bytes == 2 ? "mov r/m16, imm16"
                                   : "mov r/m32, imm32";
    Instance store = at;
    store.immediates = value;
    return {Encode(pools_.Find(key), store)};
  }

  // Emits an instance with what it needs first: a flag-defining cmp, movs.
  bool EmitGeneral(const InstructionForm& form, unsigned budget, std::uint8_t avoid = 0,
                   bool stack = false) {
    const bool memory = form.memory_variant && (!form.register_variant || random_.OneIn(3));
    const std::optional<Instantiated> made = Instantiate(form, memory, stack, avoid);
    if (!made) return false;
    return EmitInstantiated(*made, budget);
  }

  bool EmitInstantiated(const Instantiated& made, unsigned budget) {
    const InstructionEffects e = Analyze(made.instruction.bytes, made.instruction.count);
    const bool cmp = NeedsFlags(e.flags_tested);
    if (made.before.size() + 1 + cmp > budget) return false;
    if (cmp) DefineFlags();
    for (const Instruction& i : made.before) Emit(i);
    Emit(made.instruction);
    return true;
  }

  bool GeneralBody(unsigned count, unsigned budget, std::uint8_t avoid = 0) {
    for (unsigned i = 0; i < count; ++i) {
      const unsigned before = emitted_;
      if (!EmitGeneral(pools_.general.Pick(random_), budget, avoid)) continue;
      budget -= emitted_ - before;
    }
    return true;
  }

  template <typename T>
  const T& PickOf(const std::vector<T>& items) {
    return items[random_.Below(items.size())];
  }

  // Units ------------------------------------------------------------------

  void BuildUnit() {
    enum Kind {
      kGeneral,
      kJcc,
      kLoop,
      kJump,
      kIndirect,
      kSubroutine,
      kPushPop,
      kPushfd,
      kPopfd,
      kString,
      kDivision,
      kEnter,
      kPusha,
      kRare,
      kKinds
    };
    // Rare instructions usually end the program: about one program in five meets one.
    static constexpr std::uint64_t kWeights[kKinds] = {1000, 140, 30, 30, 20, 30, 50,
                                                       10,   10,  40, 40, 10, 10, 2};
    for (int attempt = 0; attempt < 8; ++attempt) {
      std::uint64_t x = random_.Below(
          std::accumulate(std::begin(kWeights), std::end(kWeights), std::uint64_t{0}));
      int kind = 0;
      while (x >= kWeights[kind]) x -= kWeights[kind++];
      bool built = false;
      switch (kind) {
        case kGeneral: built = EmitGeneral(pools_.general.Pick(random_), Remaining()); break;
        case kJcc: built = JccUnit(); break;
        case kLoop: built = BranchUnit(*PickOf(pools_.loops), 6); break;
        case kJump: built = BranchUnit(*PickOf(pools_.jumps), 8); break;
        case kIndirect: built = IndirectUnit(); break;
        case kSubroutine: built = SubroutineUnit(); break;
        case kPushPop: built = PushPopUnit(); break;
        case kPushfd: built = PushfdUnit(); break;
        case kPopfd: built = PopfdUnit(); break;
        case kString: built = StringUnit(); break;
        case kDivision: built = DivisionUnit(); break;
        case kEnter: built = EnterUnit(); break;
        case kPusha: built = PushaUnit(); break;
        default: built = RareUnit(); break;
      }
      if (built) return;
    }
    Emit(MovImm32(FreeRegister(kReserved), EdgeValue32(random_)));
  }

  bool JccUnit() {
    const bool near = random_.OneIn(4);
    return BranchUnit(*PickOf(near ? pools_.jcc32 : pools_.jcc8), near ? 24 : 6);
  }

  // jcc, jmp or loop to a later unit.
  bool BranchUnit(const InstructionForm& form, unsigned reach) {
    const InstructionEffects e = Analyze(form.encoding);
    const bool cmp = NeedsFlags(e.flags_tested);
    if (1u + cmp > Remaining()) return false;
    if (cmp) DefineFlags();
    EmitBranch({form.encoding}, form.immediate_bytes, false,
               static_cast<unsigned>(random_.Below(reach)));
    return true;
  }

  bool IndirectUnit() {
    if (Remaining() < 2) return false;
    const unsigned ahead = static_cast<unsigned>(random_.Below(8));
    const InstructionForm& jmp = pools_.Find("jmp r/m32");
    switch (random_.Below(3)) {
      case 0: {  // mov r, target; jmp r
        const int reg = FreeRegister(kReserved);
        EmitBranch(MovImm32(reg, 0), 4, true, ahead);
        Instance instance;
        instance.rm = static_cast<std::uint8_t>(reg);
        Emit({Encode(jmp, instance)});
        return true;
      }
      case 1: {  // mov [ebx+disp], target; jmp [ebx+disp]
        Instance instance;
        instance.memory = true;
        instance.address = ModRmAddress::Make(kEbx, -1, 1, 4);
        instance.address.displacement = static_cast<std::int32_t>(DataTarget(4) - ebx_);
        EmitBranch(Store(instance, 0, 4), 4, true, ahead);
        Emit({Encode(jmp, instance)});
        return true;
      }
      default:  // push target; ret
        EmitBranch({{0x68, 0, 0, 0, 0}}, 4, true, ahead);
        Emit({{0xC3}});
        return true;
    }
  }

  // call L; jmp M; L: body; ret; M:
  bool SubroutineUnit() {
    const bool through_register = random_.OneIn(2);
    const unsigned frame = through_register ? 4 : 3;
    if (Remaining() < frame) return false;
    std::size_t call_field = 0;
    bool absolute = false;
    if (through_register) {
      const int reg = FreeRegister(kReserved);
      Emit(MovImm32(reg, 0));
      call_field = code_.size() - 4;
      absolute = true;
      Emit({{0xFF, static_cast<std::uint8_t>(0xD0 | reg)}});
    } else {
      Emit({{0xE8, 0, 0, 0, 0}});
      call_field = code_.size() - 4;
    }
    const std::size_t call_end = code_.size();
    Emit({{0xEB, 0}});
    const std::size_t jmp_end = code_.size();
    const std::size_t body = code_.size();
    const std::uint32_t call_target = absolute
                                          ? CONF_CODE_ADDRESS + static_cast<std::uint32_t>(body)
                                          : static_cast<std::uint32_t>(body - call_end);
    for (unsigned i = 0; i < 4; ++i)
      code_[call_field + i] = static_cast<std::uint8_t>(call_target >> (8 * i));
    GeneralBody(static_cast<unsigned>(random_.Below(3)), Remaining() - 1);
    Emit({{0xC3}});
    const std::size_t over = code_.size() - jmp_end;
    assert(over <= 127);
    code_[jmp_end - 1] = static_cast<std::uint8_t>(over);
    return true;
  }

  bool PushPopUnit() {
    const InstructionForm& push = *PickOf(pools_.pushes);
    const std::optional<Instantiated> pushed = Instantiate(
        push, push.memory_variant && (!push.register_variant || random_.OneIn(3)), true);
    if (!pushed) return false;
    const unsigned bytes = Analyze(pushed->instruction.bytes).stack_bytes;
    std::vector<const InstructionForm*> pops;
    for (const InstructionForm* pop : pools_.pops) {
      if (Analyze(pop->encoding).stack_bytes == bytes) pops.push_back(pop);
    }
    if (pops.empty()) return false;
    const InstructionForm& pop = *PickOf(pops);
    const std::optional<Instantiated> popped =
        Instantiate(pop, pop.memory_variant && (!pop.register_variant || random_.OneIn(3)), true);
    if (!popped || pushed->before.size() + popped->before.size() + 2 > Remaining()) return false;
    for (const Instruction& i : pushed->before) Emit(i);
    Emit(pushed->instruction);
    const unsigned budget = Remaining() - static_cast<unsigned>(popped->before.size()) - 1;
    GeneralBody(static_cast<unsigned>(random_.Below(3)), budget);
    for (const Instruction& i : popped->before) Emit(i);
    Emit(popped->instruction);
    return true;
  }

  // pushfd; pop r32 (or the 16-bit pair): EFLAGS as the instruction sees it.
  bool PushfdUnit() {
    const bool cmp = NeedsFlags(kArithmeticFlags);
    if (2u + cmp > Remaining()) return false;
    if (cmp) DefineFlags();
    const int reg = FreeRegister(kReserved);
    if (random_.OneIn(4)) {
      Emit({{0x66, 0x9C}});
      Emit({{0x66, static_cast<std::uint8_t>(0x58 + reg)}});
    } else {
      Emit({{0x9C}});
      Emit({{static_cast<std::uint8_t>(0x58 + reg)}});
    }
    return true;
  }

  // push imm32; popfd with IF=1, IOPL=0, TF=0, AC=0 and random arithmetic flags and DF.
  bool PopfdUnit() {
    if (Remaining() < 2) return false;
    const std::uint32_t flags = 0x202 | (random_.Bits32() & (kArithmeticFlags | 0x400));
    Instruction push{{0x68, 0, 0, 0, 0}};
    for (unsigned i = 0; i < 4; ++i)
      push.bytes[1 + i] = static_cast<std::uint8_t>(flags >> (8 * i));
    Emit(push);
    Emit({{0x9D}});
    return true;
  }

  // mov esi/edi/ecx then the string instruction. DF is not tracked, so the
  // run fits in the data region in either direction.
  bool StringUnit() {
    const InstructionForm& form = *PickOf(pools_.strings);
    const InstructionEffects e = Analyze(form.encoding);
    const std::uint32_t count = static_cast<std::uint32_t>(random_.Below(41));
    const std::uint32_t span = std::max(count, 1u) * (e.operand_bits / 8);
    std::vector<Instruction> before;
    if (e.repeated) before.push_back(MovImm32(kEcx, count));
    std::uint8_t prefix = 0;
    for (int reg : {kEsi, kEdi}) {
      if (!(e.implicit_memory_bases & (1u << reg))) continue;
      const std::uint32_t linear =
          CONF_DATA_ADDRESS + span +
          static_cast<std::uint32_t>(random_.Below(kProgramDataEnd - CONF_DATA_ADDRESS - 2 * span));
      std::uint32_t value = linear;
      if (reg == kEsi && random_.OneIn(4)) {  // the source segment can be overridden
        prefix = random_.OneIn(2) ? 0x64 : 0x65;
        const std::uint32_t base = prefix == 0x64 ? test_.fs_base : test_.gs_base;
        value = linear - base;
        if (value < span || value > 0xFFFFFFFFu - span) {  // past the segment limit
          prefix = 0;
          value = linear;
        }
      }
      before.push_back(MovImm32(reg, value));
    }
    const bool cmp = NeedsFlags(e.flags_tested);
    if (before.size() + 1 + cmp > Remaining()) return false;
    if (cmp) DefineFlags();
    for (const Instruction& i : before) Emit(i);
    Instruction instruction{form.encoding};
    if (prefix) instruction.bytes.insert(instruction.bytes.begin(), prefix);
    Emit(instruction);
    return true;
  }

  // Divisor and dividend set so that the quotient fits, but now and then not.
  bool DivisionUnit() {
    const InstructionForm& form = *PickOf(pools_.divisions);
    const bool memory = form.memory_variant && (!form.register_variant || random_.OneIn(3));
    const bool signed_division = MnemonicOf(form) == "idiv";
    const unsigned bits = Analyze(form.encoding).operand_bits;
    const std::uint32_t mask = bits == 32 ? 0xFFFFFFFF : (1u << bits) - 1;
    const std::uint32_t divisors[] = {1, 2, 3, 7, 10, 0x7F, 0x80, 0xFF, 0x1234, random_.Bits32()};
    std::uint32_t divisor = divisors[random_.Below(std::size(divisors))] & mask;
    if (signed_division && random_.OneIn(2)) divisor = (0 - divisor) & mask;
    if (divisor == 0 || (signed_division && divisor == mask)) divisor = 1;  // 0 and -1
    Instantiated made;
    const std::uint8_t dividend = 1u << kEax | 1u << kEdx;
    if (memory) {
      std::optional<Instantiated> placed = Instantiate(form, true, false, dividend);
      if (!placed) return false;
      made = std::move(*placed);
      made.before.push_back(Store(made.instance, divisor, bits / 8));
    } else {
      // CL, DL, CH, DH for bytes; ECX, EBP, ESI, EDI otherwise: not the dividend, not EBX.
      static constexpr std::uint8_t kByteDivisors[] = {1, 2, 5, 6};
      static constexpr std::uint8_t kDivisors[] = {kEcx, kEbp, kEsi, kEdi};
      made.instance.rm = bits == 8 ? kByteDivisors[random_.Below(4)] : kDivisors[random_.Below(4)];
      if (bits == 8) {
        made.before.push_back({{static_cast<std::uint8_t>(0xB0 + made.instance.rm),
                                static_cast<std::uint8_t>(divisor)}});
      } else {
        made.before.push_back(MovImm32(made.instance.rm, divisor | (random_.Bits32() & ~mask)));
      }
      made.instruction.bytes = Encode(form, made.instance);
    }
    if (!random_.OneIn(64)) {
      if (signed_division) {  // sign-extend: cbw, cwd, cdq
        made.before.push_back(bits == 8    ? Instruction{{0x66, 0x98}}
                              : bits == 16 ? Instruction{{0x66, 0x99}}
                                           : Instruction{{0x99}});
      } else {
        const std::uint32_t high = static_cast<std::uint32_t>(random_.Below(divisor));
        made.before.push_back(bits == 8 ? Instruction{{0xB4, static_cast<std::uint8_t>(high)}}
                                        : MovImm32(kEdx, high));
      }
    }
    return EmitInstantiated(made, Remaining());
  }

  // mov ebp, frame; enter size, level; leave. Levels copy frame pointers from below EBP.
  bool EnterUnit() {
    if (Remaining() < 3) return false;
    Emit(MovImm32(
        kEbp, CONF_DATA_ADDRESS + 0x800 + 4 * static_cast<std::uint32_t>(random_.Below(0x100))));
    const auto size = static_cast<std::uint16_t>(random_.Below(0x41));
    Emit({{0xC8, static_cast<std::uint8_t>(size), static_cast<std::uint8_t>(size >> 8),
           static_cast<std::uint8_t>(random_.Below(4))}});
    Emit({{0xC9}});
    return true;
  }

  bool PushaUnit() {
    if (Remaining() < 2) return false;
    const bool word = random_.OneIn(4);
    Emit(word ? Instruction{{0x66, 0x60}} : Instruction{{0x60}});
    GeneralBody(static_cast<unsigned>(random_.Below(3)), Remaining() - 1);
    Emit(word ? Instruction{{0x66, 0x61}} : Instruction{{0x61}});
    return true;
  }

  // Instructions that usually end the program: ud0/ud1/ud2, lock on a
  // register, int3, into, bound.
  bool RareUnit() {
    const InstructionForm& form = *PickOf(pools_.rare);
    if (form.special == InstructionForm::Special::kLockRegister) {
      InstructionForm unlocked = form;
      unlocked.encoding.erase(unlocked.encoding.begin());
      unlocked.prefix_bytes -= 1;
      unlocked.special = InstructionForm::Special::kNone;
      Instance instance;
      instance.reg = static_cast<std::uint8_t>(random_.Below(8));
      instance.rm = static_cast<std::uint8_t>(random_.Below(8));
      instance.immediates = ChooseImmediates(unlocked, random_);
      std::vector<std::uint8_t> bytes = Encode(unlocked, instance);
      bytes.insert(bytes.begin(), 0xF0);
      undefined_at_.emplace_back(CONF_CODE_ADDRESS + static_cast<std::uint32_t>(code_.size()),
                                 undefined_);
      code_.insert(code_.end(), bytes.begin(), bytes.end());  // #UD: no flags change
      ++emitted_;
      return true;
    }
    return EmitGeneral(form, Remaining());
  }

  RandomSource& random_;
  const Pools& pools_;
  TestCase& test_;
  const std::uint32_t ebx_;
  std::vector<std::uint8_t> code_;
  std::vector<Pending> pending_;
  std::uint32_t undefined_ = 0;
  std::vector<std::pair<std::uint32_t, std::uint32_t>> undefined_at_;
  unsigned total_ = 0;
  unsigned emitted_ = 0;
  unsigned unit_ = 0;
};

std::uint32_t ProgramSegmentBase(RandomSource& random) {
  switch (random.Below(3)) {
    case 0: return 1 + static_cast<std::uint32_t>(random.Below(CONF_DATA_ADDRESS));
    case 1: return 0xFFFFF000 + static_cast<std::uint32_t>(random.Below(0x1000));  // offsets wrap
    default: return random.Bits32() | 1;
  }
}

}  // namespace

ProgramGenerator::ProgramGenerator(std::uint64_t seed)
    : random_(std::make_unique<OwnedPrngSource>(seed)) {}
ProgramGenerator::ProgramGenerator(std::span<const std::uint8_t> choices)
    : random_(std::make_unique<ChoiceSource>(choices)) {}
ProgramGenerator::~ProgramGenerator() = default;
ProgramGenerator::ProgramGenerator(ProgramGenerator&&) noexcept = default;
ProgramGenerator& ProgramGenerator::operator=(ProgramGenerator&&) noexcept = default;

TestCase ProgramGenerator::Generate(unsigned instruction_count) {
  TestCase test;
  test.instruction_class = "random";
  test.form = "random program";
  InitializeState(test, *random_);
  // Unmasked x87 and SSE exceptions end most programs early (#MF, #XM);
  // single-instruction cases cover them, programs meet them now and then.
  if (!random_->OneIn(8)) {
    test.initial.fxsave[0] |= 0x3F;              // FCW exception masks
    test.initial.fxsave[24 + 1] |= 0x1F80 >> 8;  // MXCSR exception masks, bits 8-12
    test.initial.fxsave[24] |= 0x80;             // and bit 7
  }
  test.initial.gpr[kEbx] =
      CONF_DATA_ADDRESS + 0x1000 + 16 * static_cast<std::uint32_t>(random_->Below(64));
  test.fs_base = ProgramSegmentBase(*random_);
  test.gs_base = ProgramSegmentBase(*random_);
  ProgramBuilder(*random_, test).Build(instruction_count);
  return test;
}

}  // namespace bt::conformance
