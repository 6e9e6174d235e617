#include "translator/translator.h"

#include <cassert>
#include <chrono>
#include <cstring>

namespace bt::translator {

using decoder::Kind;

namespace {

constexpr std::uint32_t kPageSize = 4096;
// Generous upper bounds of host bytes, checked after emission.
constexpr std::size_t kHostBytesPerInstruction = 160;
constexpr std::size_t kHostBytesPerUnit = 256;

std::size_t AlignUp(std::size_t value) { return (value + 15) & ~std::size_t{15}; }

}  // namespace

bool IsCallout(const DecodedInstruction& insn) {
  switch (insn.kind) {
    case Kind::kPopSegment: case Kind::kPopf: case Kind::kJmpFar: case Kind::kIn:
    case Kind::kOut: case Kind::kHlt: case Kind::kCli: case Kind::kSti: case Kind::kCpuid:
    case Kind::kRdtsc: case Kind::kMovToCr: case Kind::kMovFromCr: case Kind::kLgdt:
    case Kind::kLidt: case Kind::kMovToSegment: case Kind::kMovFromSegment: case Kind::kInt3:
    case Kind::kInt: case Kind::kInvalid: case Kind::kUnsupported:
      return true;
    case Kind::kEnter:
      return insn.immediate2 != 0 || insn.operand_size != 4;
    default:
      return false;
  }
}

bool EndsUnit(const DecodedInstruction& insn) {
  switch (insn.kind) {
    case Kind::kJmpRelative: case Kind::kJcc: case Kind::kJecxz: case Kind::kLoop:
    case Kind::kCallRelative: case Kind::kJmpIndirect: case Kind::kCallIndirect:
    case Kind::kRet: case Kind::kJmpFar:
    // Callouts that can change the CPU mode, segment assumptions or
    // pending events, or that stop the run.
    case Kind::kPopSegment: case Kind::kPopf: case Kind::kHlt: case Kind::kSti:
    case Kind::kMovToCr: case Kind::kMovToSegment: case Kind::kInt3: case Kind::kInt:
    case Kind::kInvalid: case Kind::kUnsupported:
      return true;
    case Kind::kEnter:
      return IsCallout(insn);
    default:
      return false;
  }
}

Translator::Translator(const decoder::Decoder& decoder, CodeCache& cache,
                       const Trampolines& trampolines, Options options)
    : decoder_(decoder), cache_(cache), trampolines_(trampolines), options_(options) {
  if (options_.max_instructions == 0) options_.max_instructions = 1;
  if (options_.max_instructions > kMaxInstructions) options_.max_instructions = kMaxInstructions;
}

unsigned Translator::DecodeRun(std::uint32_t eip, unsigned limit, CodeSource& source,
                               std::uint32_t* pages, std::uint8_t* page_count) {
  const std::uint8_t* page = source.CodePage(eip & ~(kPageSize - 1), &pages[0]);
  if (!page) return 0;
  *page_count = 1;
  unsigned count = 0;
  while (count < limit) {
    const std::uint32_t offset = eip & (kPageSize - 1);
    const std::uint32_t in_page = kPageSize - offset;
    std::uint8_t straddle[15];
    const std::uint8_t* bytes = page + offset;
    std::size_t available = 15;
    if (in_page < 15) {
      // The instruction may continue on the next page.
      std::memcpy(straddle, bytes, in_page);
      std::uint32_t next_physical = 0;
      const std::uint8_t* next = source.CodePage(eip + in_page, &next_physical);
      available = in_page;
      if (next) {
        std::memcpy(straddle + in_page, next, 15 - in_page);
        available = 15;
      }
      bytes = straddle;
      DecodedInstruction& insn = decoded_[count];
      if (!decoder_.Decode(eip, bytes, available, insn) && count > 0) break;
      if (insn.length > in_page) {
        if (count > 0 && !next) break;
        pages[(*page_count)++] = next_physical;
        ++count;
        break;
      }
    } else {
      decoder_.Decode(eip, bytes, available, decoded_[count]);
    }
    const DecodedInstruction& insn = decoded_[count++];
    if (EndsUnit(insn)) break;
    eip += insn.length;
    if ((eip & (kPageSize - 1)) == 0) break;  // units stay within one page
  }
  return count;
}

void Translator::EmitInstruction(UnitBuilder& builder, const DecodedInstruction& insn) {
  switch (insn.kind) {
    case Kind::kIdent: case Kind::kIncDecShort:
      EmitIdent(builder, insn);
      return;
    case Kind::kPush: case Kind::kPop: case Kind::kPushSegment: case Kind::kPushf:
    case Kind::kPusha: case Kind::kPopa: case Kind::kLeave:
      EmitStack(builder, insn);
      return;
    case Kind::kEnter:
      if (!IsCallout(insn)) {
        EmitStack(builder, insn);
        return;
      }
      break;
    case Kind::kJmpRelative: case Kind::kJcc: case Kind::kJecxz: case Kind::kLoop:
    case Kind::kCallRelative: case Kind::kJmpIndirect: case Kind::kCallIndirect: case Kind::kRet:
      EmitControl(builder, insn);
      return;
    case Kind::kStringEs:
      EmitString(builder, insn);
      return;
    default:
      break;
  }
  builder.EmitCallout(insn);
  if (EndsUnit(insn)) builder.EmitDirectExit(insn.next_eip());
}

Translator::Status Translator::Translate(UnitKey key, bool one_shot, CodeSource& source,
                                         TranslationUnit** result) {
  const auto start = std::chrono::steady_clock::now();
  std::uint32_t pages[2];
  std::uint8_t page_count = 0;
  const unsigned count =
      DecodeRun(key.eip, one_shot ? 1 : options_.max_instructions, source, pages, &page_count);
  if (count == 0) return Status::kNoCode;

  unsigned record_count = 0;
  for (unsigned i = 0; i < count; ++i) {
    if (IsCallout(decoded_[i]) || decoded_[i].uses_high_byte) ++record_count;
  }
  const std::uint32_t fault_capacity = 3 * count + 2;
  const std::size_t header = AlignUp(sizeof(TranslationUnit));
  const std::size_t records = AlignUp(record_count * sizeof(CalloutRecord));
  const std::size_t fault_map = AlignUp(fault_capacity * sizeof(FaultMapEntry));
  const std::size_t code_limit = kHostBytesPerInstruction * count + kHostBytesPerUnit;
  if (!cache_.HasRoom(header + records + fault_map + code_limit)) return Status::kCacheFull;

  std::uint8_t* memory = cache_.Allocate(header + records + fault_map + code_limit);
  auto* unit = new (memory) TranslationUnit();
  unit->key = key;
  unit->cached = !one_shot;
  unit->page_count = page_count;
  for (unsigned i = 0; i < page_count; ++i) unit->physical_page[i] = pages[i];
  std::uint8_t* code = memory + header + records + fault_map;
  UnitBuilder builder(trampolines_, unit, code,
                      reinterpret_cast<FaultMapEntry*>(memory + header + records), fault_capacity,
                      reinterpret_cast<CalloutRecord*>(memory + header),
                      options_.chaining);

  // The entry poll: see kPollOffset.
  builder.BeginInstruction(decoded_[0], Fixup::kUnitEntry);
  builder.a().mov(kScratch32, x86::dword_ptr(kState, kPollOffset));
  std::uint32_t guest_bytes = 0;
  for (unsigned i = 0; i < count; ++i) {
    builder.BeginInstruction(decoded_[i]);
    EmitInstruction(builder, decoded_[i]);
    guest_bytes += decoded_[i].length;
  }
  const DecodedInstruction& last = decoded_[count - 1];
  if (!EndsUnit(last)) builder.EmitDirectExit(last.next_eip());

  const std::size_t size = builder.Finish();
  assert(size <= code_limit);
  cache_.Shrink(code + size);
  unit->instruction_count = static_cast<std::uint16_t>(count);
  unit->guest_bytes = guest_bytes;
  cache_.Insert(unit);

  ++counters_.units;
  counters_.instructions += count;
  counters_.nanoseconds += static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() -
                                                           start)
          .count());
  *result = unit;
  return Status::kOk;
}

}  // namespace bt::translator
