#include "translator/translator.h"

#include <cassert>
#include <chrono>
#include <cstring>

namespace bt::translator {

using decoder::Kind;

namespace {

constexpr std::uint32_t kPageSize = 4096;
constexpr std::size_t kMaxInstructionBytes = 15;
// Generous upper bounds of host bytes, checked after emission; limit checks
// (about 60 bytes each, up to two per instruction) need more.
constexpr std::size_t kHostBytesPerInstruction = 160;
constexpr std::size_t kHostBytesPerCheckedInstruction = 320;
constexpr std::size_t kHostBytesPerUnit = 256;
constexpr std::size_t kCodeAlignment = 64;
// Units whose code may check limits: of ES, SS, DS, or CS's.
constexpr std::uint32_t kModeCheckedSegmentsAndCode = kModeCheckedSegments | kModeCodeSegment;

std::size_t AlignUp(std::size_t value) { return (value + 15) & ~std::size_t{15}; }

// Near jumps, calls and returns: emitted by EmitControl, and always the end
// of a unit's straight-line path.
bool IsNearControlTransfer(Kind kind) {
  switch (kind) {
    case Kind::kJmpRelative:
    case Kind::kJcc:
    case Kind::kJecxz:
    case Kind::kLoop:
    case Kind::kCallRelative:
    case Kind::kJmpIndirect:
    case Kind::kCallIndirect:
    case Kind::kRet: return true;
    default: return false;
  }
}

// Whether the transfer of `insn` may close a loop, and so polls for events
// first (see kPollOffset): an indirect one, or a direct one that does not
// go forward. A cycle of transfers that all went forward cannot exist.
bool MayCloseLoop(const DecodedInstruction& insn) {
  if (!IsNearControlTransfer(insn.kind)) return false;
  const bool indirect = insn.kind == Kind::kJmpIndirect || insn.kind == Kind::kCallIndirect ||
                        insn.kind == Kind::kRet;
  return indirect || insn.branch_target <= insn.eip;
}

// A direct exit from the instruction at `from` to the next one, which goes
// backward only where EIP wraps around.
void EmitNextExit(UnitBuilder& builder, std::uint32_t from, std::uint32_t next) {
  if (next <= from) builder.EmitEventPoll(next);
  builder.EmitDirectExit(next);
}

// How many bytes from offset `eip` a unit of `key` may fetch: all up to
// CS's limit (SDM Vol. 3A 5.3), where a code segment is not flat.
std::uint64_t FetchRoom(const UnitKey& key, std::uint32_t eip) {
  if (!(key.mode & kModeCodeSegment)) return kMaxInstructionBytes;
  return eip > key.code_limit ? 0 : std::uint64_t{key.code_limit} - eip + 1;
}

}  // namespace

bool IsCallout(const DecodedInstruction& insn) {
  switch (insn.kind) {
    case Kind::kPopSegment:
    case Kind::kPopf:
    case Kind::kJmpFar:
    case Kind::kIn:
    case Kind::kOut:
    case Kind::kIns:
    case Kind::kOuts:
    case Kind::kHlt:
    case Kind::kCli:
    case Kind::kSti:
    case Kind::kCpuid:
    case Kind::kRdtsc:
    case Kind::kMovToCr:
    case Kind::kMovFromCr:
    case Kind::kMovToDr:
    case Kind::kMovFromDr:
    case Kind::kLgdt:
    case Kind::kLidt:
    case Kind::kMovToSegment:
    case Kind::kMovFromSegment:
    case Kind::kInt3:
    case Kind::kInt:
    case Kind::kIret:
    case Kind::kSgdt:
    case Kind::kSidt:
    case Kind::kSldt:
    case Kind::kStr:
    case Kind::kSmsw:
    case Kind::kLmsw:
    case Kind::kClts:
    case Kind::kLldt:
    case Kind::kLtr:
    case Kind::kLar:
    case Kind::kLsl:
    case Kind::kVerr:
    case Kind::kVerw:
    case Kind::kRdmsr:
    case Kind::kWrmsr:
    case Kind::kSysenter:
    case Kind::kSysexit:
    case Kind::kInvlpg:
    case Kind::kCacheFlush:
    case Kind::kFpuUnavailable:
    case Kind::kSegmentUse:
    case Kind::kLegacy:
    case Kind::kInvalid:
    case Kind::kUnsupported: return true;
    case Kind::kEnter: return insn.immediate2 != 0 || insn.operand_size != 4;
    default: return false;
  }
}

bool EndsUnit(const DecodedInstruction& insn) {
  if (IsNearControlTransfer(insn.kind)) return true;
  switch (insn.kind) {
    // A load of SS holds off interrupts for one instruction, which runs as
    // a unit of its own. Other segment loads leave translated code only if
    // they change the unit mode (runtime/callouts.cc).
    case Kind::kPopSegment:
    case Kind::kMovToSegment: return insn.special_register == kSs;
    case Kind::kJmpFar:
    // Callouts that can change the CPU mode, segment assumptions or
    // pending events, or that stop the run.
    case Kind::kPopf:
    case Kind::kHlt:
    case Kind::kSti:
    case Kind::kMovToCr:
    case Kind::kInvlpg:  // the linear-to-physical mapping
    case Kind::kInt3:
    case Kind::kInt:
    case Kind::kIret:
    case Kind::kSysenter:  // CS, CPL
    case Kind::kSysexit:
    case Kind::kLmsw:  // CR0.TS/EM/MP: the unit mode
    case Kind::kClts:
    case Kind::kFpuUnavailable:  // always faults
    case Kind::kSegmentUse:      // runs again in a new mode
    case Kind::kLegacy:          // rare, and some change CS or segment bases
    case Kind::kInvalid:
    case Kind::kUnsupported: return true;
    case Kind::kEnter: return IsCallout(insn);
    default: return false;
  }
}

Translator::Translator(const decoder::Decoder& decoder, CodeCache& cache,
                       const Trampolines& trampolines, Options options)
    : decoder_(decoder), cache_(cache), trampolines_(trampolines), options_(options) {
  if (options_.max_instructions == 0) options_.max_instructions = 1;
  if (options_.max_instructions > kMaxInstructions) options_.max_instructions = kMaxInstructions;
}

bool Translator::Decode(std::uint32_t eip, const std::uint8_t* bytes, std::size_t available,
                        std::uint32_t mode, DecodedInstruction& insn) const {
  const bool complete = decoder_.Decode(eip, bytes, available, insn);
  // x87, MMX and SSE instructions are copied, unless the unit's mode makes
  // them fault: then the runtime raises the fault.
  if (insn.kind == Kind::kIdent && FpuFaults(insn.fpu_class, mode)) {
    insn.kind = Kind::kFpuUnavailable;
  }
  // Callouts reach FS and GS in the runtime, which knows them whatever the
  // mode; translated code needs a mode that tells how to.
  const bool fs_or_gs = insn.segment == kFs || insn.segment == kGs;
  if (fs_or_gs && (insn.has_memory || insn.moffs || insn.implicit_memory) && !insn.memory.agen &&
      !IsCallout(insn) && !(mode & UsesSegmentBit(insn.segment))) {
    insn.kind = Kind::kSegmentUse;
  }
  return complete;
}

bool MayResolveMemory(const DecodedInstruction& insn) {
  return insn.kind == Kind::kIdent && (insn.has_memory || insn.moffs) && !insn.memory.agen;
}

Adaptation Translator::AdaptationOf(const DecodedInstruction& insn, CodeSource& source) {
  if (!MayResolveMemory(insn) && !insn.divides) return {};
  Adaptation adaptation = source.AdaptationAt(insn.eip);
  if (!MayResolveMemory(insn)) adaptation.memory = Resolution::kNone;
  adaptation.check_divide = adaptation.check_divide && insn.divides;
  return adaptation;
}

std::uint32_t Translator::PcThunkOf(const DecodedInstruction& insn, std::uint32_t mode,
                                    CodeSource& source) {
  constexpr std::uint32_t kThunkBytes = 4;
  // The guard reads the thunk through the window, at a linear address
  // that is the target's only where CS is flat.
  if (insn.kind != Kind::kCallRelative || insn.operand_size != 4 || SegmentChecked(mode, kSs) ||
      (mode & kModeCodeSegment)) {
    return 0;
  }
  const std::uint32_t target = insn.branch_target;
  if (kPageSize - (target & (kPageSize - 1)) < kThunkBytes) return 0;
  std::uint32_t physical_page = 0;
  const std::uint8_t* page = source.CodePage(target & ~(kPageSize - 1), &physical_page);
  if (!page) return 0;
  std::uint32_t thunk = 0;
  std::memcpy(&thunk, page + (target & (kPageSize - 1)), kThunkBytes);
  // mov r32, [esp] (8B, ModRM mod 00 rm 100, SIB 24); ret (C3). Not ESP.
  constexpr std::uint32_t kMovFromTopRet = 0xC324048B, kPattern = 0xFFFFC7FF;
  const unsigned reg = thunk >> 11 & 7;
  return (thunk & kPattern) == kMovFromTopRet && reg != kEsp ? thunk : 0;
}

Translator::Run Translator::DecodeRun(UnitKey key, unsigned limit, CodeSource& source) {
  std::uint32_t eip = key.eip;
  Run run;
  const std::uint32_t first_page = key.Linear() & ~(kPageSize - 1);
  const std::uint8_t* page = source.CodePage(first_page, &run.pages[0]);
  if (!page) return run;
  run.page_count = 1;
  unsigned side_exits = 0;
  run.open = true;
  while (run.count < limit) {
    const std::uint32_t linear = key.code_base + eip;
    const std::uint32_t offset = linear & (kPageSize - 1);
    const std::uint32_t in_page = kPageSize - offset;
    DecodedInstruction& insn = decoded_[run.count];
    const std::uint8_t* bytes = page + offset;
    std::size_t available = kMaxInstructionBytes;
    std::uint8_t straddle[kMaxInstructionBytes];
    std::uint32_t next_physical = 0;
    if (in_page < kMaxInstructionBytes) {
      // The instruction may continue on the next page.
      std::memcpy(straddle, bytes, in_page);
      const std::uint8_t* next = source.CodePage(linear + in_page, &next_physical);
      if (next) std::memcpy(straddle + in_page, next, kMaxInstructionBytes - in_page);
      bytes = straddle;
      available = next ? kMaxInstructionBytes : in_page;
    }
    const std::size_t allowed = std::min<std::uint64_t>(available, FetchRoom(key, eip));
    const bool complete = Decode(eip, bytes, allowed, key.mode, insn);
    // An instruction cut short by a page that cannot be fetched or by CS's
    // limit ends the unit before it; as the first instruction, it makes no
    // unit, and the runtime raises the fetch fault: #GP(0) for the limit,
    // which segmentation checks before paging.
    if (!complete &&
        (allowed < kMaxInstructionBytes || (in_page < kMaxInstructionBytes && run.count > 0))) {
      run.beyond_limit = allowed < available;
      break;
    }
    adaptation_[run.count] = AdaptationOf(insn, source);
    if (insn.length > in_page) {
      run.pages[run.page_count++] = next_physical;
      pc_thunk_[run.count] = 0;
      ++run.count;
      run.open = !EndsUnit(insn) || ReturnsInto(insn, key.mode);
      eip = insn.next_eip();
      break;
    }
    // A unit of one instruction is the fallback of an inlined call's guard.
    pc_thunk_[run.count] = limit > 1 ? PcThunkOf(insn, key.mode, source) : 0;
    ++run.count;
    if (pc_thunk_[run.count - 1] != 0) {
      eip = insn.next_eip();
    } else if (insn.kind == Kind::kJcc && side_exits < kMaxSideExits) {
      ++side_exits;
      eip = insn.next_eip();
    } else if (ReturnsInto(insn, key.mode)) {
      // The unit goes on after the call, or, out of side exits, ends open,
      // leaving for the return address where the guest returns to it.
      eip = insn.next_eip();
      if (side_exits == kMaxSideExits) break;
      ++side_exits;
    } else if (insn.kind == Kind::kJmpRelative && insn.branch_target > insn.eip &&
               insn.branch_target <= key.code_limit &&
               ((key.code_base + insn.branch_target) & ~(kPageSize - 1)) == first_page) {
      eip = insn.branch_target;
      continue;
    } else if (EndsUnit(insn)) {
      run.open = false;
      break;
    } else {
      eip = insn.next_eip();
    }
    if (((key.code_base + eip) & (kPageSize - 1)) == 0) break;  // units stay within one page
  }
  run.continuation = eip;
  return run;
}

unsigned Translator::StackRunAt(const UnitBuilder& builder, unsigned first, unsigned count) const {
  unsigned end = first;
  while (end < count && end - first < kMaxStackRun && JoinsStackRun(builder, decoded_[end]) &&
         adaptation_[end].memory == Resolution::kNone && !adaptation_[end].check_divide) {
    ++end;
  }
  return end - first;
}

void Translator::EmitInstruction(UnitBuilder& builder, const DecodedInstruction& insn) {
  if (IsNearControlTransfer(insn.kind)) {
    EmitControl(builder, insn);
    return;
  }
  switch (insn.kind) {
    case Kind::kIdent:
    case Kind::kIncDecShort: EmitIdent(builder, insn); return;
    case Kind::kPush:
    case Kind::kPop:
    case Kind::kPushSegment:
    case Kind::kPushf:
    case Kind::kPusha:
    case Kind::kPopa:
    case Kind::kLeave: EmitStack(builder, insn); return;
    case Kind::kEnter:
      if (!IsCallout(insn)) {
        EmitStack(builder, insn);
        return;
      }
      break;
    case Kind::kStringEs: EmitString(builder, insn); return;
    case Kind::kRdtsc:
      if (EmitTimeStamp(builder)) return;
      break;
    default: break;
  }
  builder.EmitCallout(insn);
  if (EndsUnit(insn)) EmitNextExit(builder, insn.eip, insn.next_eip());
}

Translator::Status Translator::Translate(UnitKey key, bool one_shot, CodeSource& source,
                                         TranslationUnit** result) {
  const auto start = std::chrono::steady_clock::now();
  const Run run = DecodeRun(key, one_shot ? 1 : options_.max_instructions, source);
  const unsigned count = run.count;
  if (count == 0) return run.beyond_limit ? Status::kBeyondLimit : Status::kNoCode;

  unsigned record_count = 0;
  unsigned exit_count = 2;
  unsigned call_count = 0;
  for (unsigned i = 0; i < count; ++i) {
    const DecodedInstruction& insn = decoded_[i];
    if (IsCallout(insn) || insn.uses_high_byte) ++record_count;
    // Hidden operands through a segment with a base may take a callout: a
    // string check, or the report of a form not supported yet.
    const bool based =
        (key.mode & kModeCheckedSegmentsAndCode) || insn.segment == kFs || insn.segment == kGs;
    if ((insn.kind == Kind::kIdent || insn.kind == Kind::kStringEs) && insn.implicit_memory &&
        based) {
      ++record_count;
    }
    if (adaptation_[i].memory != Resolution::kNone) record_count += 2;
    if (adaptation_[i].check_divide) ++record_count;
    if (insn.kind == Kind::kJcc) ++exit_count;
    // An inlined call to a PC thunk has neither an exit nor a continuation.
    if (pc_thunk_[i] == 0 && ReturnsInto(insn, key.mode)) {
      ++call_count;
      if (insn.kind == Kind::kCallRelative) ++exit_count;  // a side exit
    }
  }
  const std::uint32_t fault_capacity = kFaultEntriesPerInstruction * count + 2;
  const std::size_t header =
      AlignUp(sizeof(TranslationUnit)) + AlignUp(exit_count * sizeof(ExitLink));
  const std::size_t records = AlignUp(record_count * sizeof(CalloutRecord));
  const std::size_t continuations = AlignUp(call_count * sizeof(std::uint16_t));
  const std::size_t code_limit =
      ((key.mode & kModeCheckedSegmentsAndCode) ? kHostBytesPerCheckedInstruction
                                                : kHostBytesPerInstruction) *
          count +
      kHostBytesPerUnit;
  if (!cache_.HasRoom(code_limit + kCodeAlignment,
                      header + records + continuations + exit_count * UnitBuilder::kSlowPathBytes +
                          16 + fault_capacity * sizeof(FaultMapEntry))) {
    return Status::kCacheFull;
  }

  const std::size_t slow_paths = exit_count * UnitBuilder::kSlowPathBytes;
  std::uint8_t* memory = cache_.AllocateMetadata(header + records + continuations + slow_paths);
  auto* unit = new (memory) TranslationUnit();
  unit->key = key;
  unit->cached = !one_shot;
  unit->exits = reinterpret_cast<ExitLink*>(memory + AlignUp(sizeof(TranslationUnit)));
  unit->page_count = run.page_count;
  for (unsigned i = 0; i < run.page_count; ++i) unit->physical_page[i] = run.pages[i];
  // Hot loops are whole units; starting each on a cache line keeps their
  // speed from depending on where the previous unit happened to end.
  std::uint8_t* code = cache_.AllocateCode(code_limit, kCodeAlignment);
  UnitBuilder builder(trampolines_, unit, code, fault_map_, fault_capacity,
                      reinterpret_cast<CalloutRecord*>(memory + header), options_.chaining);

  std::uint32_t guest_bytes = 0;
  for (unsigned i = 0; i < count; ++i) {
    const DecodedInstruction& insn = decoded_[i];
    const bool inner = i + 1 < count || run.open;
    if (const unsigned stack_run = StackRunAt(builder, i, count); stack_run > 0) {
      for (unsigned k = i; k < i + stack_run; ++k) guest_bytes += decoded_[k].length;
      EmitStackRun(builder, &decoded_[i], stack_run);
      i += stack_run - 1;
      continue;
    }
    builder.BeginInstruction(insn);
    guest_bytes += insn.length;
    if (pc_thunk_[i] == 0 && MayCloseLoop(insn)) builder.EmitEventPoll(insn.eip);
    if (adaptation_[i].check_divide) builder.EmitCheckDivide(insn);
    if (inner && insn.kind == Kind::kJcc) {
      builder.EmitConditionalExit(insn.condition, insn.branch_target);
    } else if (adaptation_[i].memory != Resolution::kNone) {
      builder.EmitResolveMemory(insn);
      EmitIdent(builder, insn);
      builder.EmitReleaseMemory(insn, adaptation_[i].memory == Resolution::kDevice);
    } else if (pc_thunk_[i] != 0) {
      EmitPcThunkCall(builder, insn, pc_thunk_[i]);
    } else if (!(inner && insn.kind == Kind::kJmpRelative)) {  // followed jumps vanish
      EmitInstruction(builder, insn);
    }
  }
  if (run.open) EmitNextExit(builder, decoded_[count - 1].eip, run.continuation);

  const std::size_t size =
      builder.Finish(memory + header + records + continuations,
                     reinterpret_cast<std::uint16_t*>(memory + header + records));
  assert(size <= code_limit);
  cache_.ShrinkCode(code + size);
  // The fault map is built in fault_map_ and kept at its exact size.
  const std::size_t fault_bytes = unit->fault_map_size * sizeof(FaultMapEntry);
  auto* fault_map = reinterpret_cast<FaultMapEntry*>(cache_.AllocateMetadata(fault_bytes));
  std::memcpy(fault_map, fault_map_, fault_bytes);
  unit->fault_map = fault_map;
  unit->guest_bytes = guest_bytes;
  cache_.Insert(unit);

  ++counters_.units;
  counters_.instructions += count;
  counters_.nanoseconds += static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start)
          .count());
  *result = unit;
  return Status::kOk;
}

}  // namespace bt::translator
