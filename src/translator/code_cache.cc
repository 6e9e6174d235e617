#include "translator/code_cache.h"

#include <algorithm>
#include <cassert>
#include <cstring>

namespace bt::translator {

namespace {

constexpr std::size_t kBucketCount = 1u << 16;
constexpr std::size_t kSmallestUnit = 96;

}  // namespace

const FaultMapEntry& TranslationUnit::FaultEntryAt(const std::uint8_t* host) const {
  auto offset = static_cast<std::uint32_t>(host - code);
  const FaultMapEntry* end = fault_map + fault_map_size;
  const FaultMapEntry* it = std::upper_bound(
      fault_map, end, offset,
      [](std::uint32_t value, const FaultMapEntry& entry) { return value < entry.host_offset; });
  assert(it != fault_map);
  return *(it - 1);
}

bool TranslationUnit::HoldsInstructionAt(std::uint32_t eip) const {
  return std::any_of(fault_map, fault_map + fault_map_size,
                     [eip](const FaultMapEntry& entry) { return entry.guest_eip == eip; });
}

Result<std::unique_ptr<CodeCache>> CodeCache::Create(std::size_t bytes,
                                                     std::size_t physical_pages) {
  constexpr std::size_t kMinimum = 256u << 10;
  if (bytes < kMinimum) {
    return Error{"translation cache must be at least 256 KiB (got " + std::to_string(bytes) +
                 " bytes)"};
  }
  auto memory = platform::PageMemory::Allocate(bytes, platform::Protection::kReadWriteExecute);
  if (!memory) return Error{memory.error()};
  return std::unique_ptr<CodeCache>(new CodeCache(std::move(memory.value()), physical_pages));
}

CodeCache::CodeCache(platform::PageMemory memory, std::size_t physical_pages)
    : memory_(std::move(memory)),
      code_begin_(memory_.data()),
      next_code_(memory_.data()),
      metadata_begin_(memory_.data() + memory_.size() / 2),
      next_metadata_(metadata_begin_),
      buckets_(kBucketCount),
      table_(HashTable::bucket_traits(buckets_.data(), buckets_.size())),
      pages_(physical_pages) {
  by_address_.reserve(memory_.size() / kSmallestUnit);
}

CodeCache::~CodeCache() { Flush(); }

std::uint8_t* CodeCache::AllocatePermanent(std::size_t bytes) {
  assert(by_address_.empty());
  std::uint8_t* result = next_code_;
  next_code_ += (bytes + 63) & ~std::size_t{63};
  code_begin_ = next_code_;
  return result;
}

TranslationUnit* CodeCache::Lookup(UnitKey key) {
  TranslationUnit*& recent = recent_[KeyHash{}(key) % kRecentSlots];
  if (recent && recent->live && recent->key == key) return recent;
  auto it = table_.find(key);
  if (it == table_.end()) return nullptr;
  recent = &*it;
  return recent;
}

namespace {

std::uint8_t* AlignUp(std::uint8_t* pointer, std::size_t alignment) {
  const auto value = reinterpret_cast<std::uintptr_t>(pointer);
  return reinterpret_cast<std::uint8_t*>((value + alignment - 1) & ~(alignment - 1));
}

}  // namespace

bool CodeCache::HasRoom(std::size_t code_bytes, std::size_t metadata_bytes) const {
  return code_bytes <= static_cast<std::size_t>(metadata_begin_ - next_code_) &&
         metadata_bytes <=
             static_cast<std::size_t>(memory_.data() + memory_.size() - next_metadata_) &&
         by_address_.size() < by_address_.capacity();
}

std::uint8_t* CodeCache::AllocateCode(std::size_t bytes, std::size_t alignment) {
  std::uint8_t* result = AlignUp(next_code_, alignment);
  next_code_ = result + bytes;
  assert(next_code_ <= metadata_begin_);
  return result;
}

std::uint8_t* CodeCache::AllocateMetadata(std::size_t bytes) {
  std::uint8_t* result = AlignUp(next_metadata_, 16);
  next_metadata_ = result + bytes;
  assert(next_metadata_ <= memory_.data() + memory_.size());
  return result;
}

void CodeCache::ShrinkCode(std::uint8_t* end) {
  assert(end <= next_code_);
  next_code_ = end;
}

void CodeCache::Insert(TranslationUnit* unit) {
  by_address_.push_back(unit);
  if (!unit->cached) return;
  table_.insert(*unit);
  for (unsigned i = 0; i < unit->page_count; ++i) {
    unit->pages[i].unit = unit;
    pages_[unit->physical_page[i]].push_back(unit->pages[i]);
  }
}

void CodeCache::Chain(ExitLink& link, TranslationUnit* target, ChainScope scope) {
  assert(link.target == nullptr && target->live);
  PatchRel32(link.rel32, target->code);
  link.target = target;
  link.scope = scope;
  target->incoming.push_back(link);
  if (scope != ChainScope::kPage) {
    CrossPageChains& chains = CrossPageOf(scope);
    chains.list.push_back(link);
    ++chains.into_region[target->key.Linear() >> kRegionShift];
  }
  ++counters_.chains_made;
}

void CodeCache::ForgetChain(ExitLink& link) {
  link.target->incoming.erase(link.target->incoming.iterator_to(link));
  if (link.scope != ChainScope::kPage) {
    CrossPageChains& chains = CrossPageOf(link.scope);
    chains.list.erase(chains.list.iterator_to(link));
    --chains.into_region[link.target->key.Linear() >> kRegionShift];
  }
  link.target = nullptr;
}

void CodeCache::Unchain(ExitLink& link) {
  PatchRel32(link.rel32, link.slow_path);
  ForgetChain(link);
  ++counters_.chains_broken;
}

void CodeCache::UnchainCrossPageInto(std::uint32_t base, std::uint32_t bytes) {
  const std::uint32_t first = base >> kRegionShift;
  const auto end = static_cast<std::uint32_t>((std::uint64_t{base} + bytes) >> kRegionShift);
  for (CrossPageChains* chains : {&cross_page_local_, &cross_page_global_}) {
    const auto counts = chains->into_region.begin();
    if (std::all_of(counts + first, counts + end, [](std::uint32_t n) { return n == 0; })) {
      continue;
    }
    for (auto it = chains->list.begin(); it != chains->list.end();) {
      ExitLink& link = *it++;
      if (link.target->key.Linear() - base < bytes) Unchain(link);
    }
  }
}

void CodeCache::Unlink(TranslationUnit* unit) {
  unit->live = false;
  if (listener_) listener_(listener_context_, *unit);
  table_.erase(table_.iterator_to(*unit));
  for (unsigned i = 0; i < unit->page_count; ++i) {
    PageList& list = pages_[unit->physical_page[i]];
    list.erase(list.iterator_to(unit->pages[i]));
  }
  // Others must no longer jump here...
  while (!unit->incoming.empty()) Unchain(unit->incoming.front());
  // ...and this unit's own chains leave its targets' incoming lists.
  for (unsigned i = 0; i < unit->exit_count; ++i) {
    ExitLink& link = unit->exits[i];
    if (link.target) ForgetChain(link);
  }
  // The return stack may still hold its calls' continuations: from now on
  // they look the return address up, as each check's loop (E2 rel8) becomes
  // a jmp (EB rel8) to the same place.
  constexpr std::uint8_t kJmpRel8 = 0xEB;
  for (unsigned i = 0; i < unit->continuation_count; ++i) {
    unit->code[unit->continuation_checks[i]] = kJmpRel8;
  }
}

std::size_t CodeCache::InvalidatePage(std::uint32_t page) {
  std::size_t count = 0;
  while (!pages_[page].empty()) {
    Unlink(pages_[page].front().unit);
    ++count;
  }
  return count;
}

std::size_t CodeCache::InvalidateInstruction(std::uint32_t page, std::uint32_t eip) {
  std::size_t count = 0;
  PageList& list = pages_[page];
  for (auto it = list.begin(); it != list.end();) {
    TranslationUnit* unit = it->unit;
    if (!unit->HoldsInstructionAt(eip)) {
      ++it;
      continue;
    }
    // A unit whose two pages alias one physical page is in the list twice,
    // anywhere: start over rather than trust the iterator.
    Unlink(unit);
    ++count;
    it = list.begin();
  }
  return count;
}

void CodeCache::Flush() {
  counters_.units_evicted += table_.size();
  table_.clear();
  recent_.fill(nullptr);
  for (CrossPageChains* chains : {&cross_page_local_, &cross_page_global_}) {
    chains->list.clear();
    chains->into_region.fill(0);
  }
  for (PageList& list : pages_) list.clear();
  for (TranslationUnit* unit : by_address_) {
    unit->incoming.clear();
    unit->~TranslationUnit();
  }
  by_address_.clear();
  next_code_ = code_begin_;
  next_metadata_ = metadata_begin_;
  ++counters_.flushes;
}

TranslationUnit* CodeCache::UnitAt(const std::uint8_t* host) const {
  auto it = std::upper_bound(
      by_address_.begin(), by_address_.end(), host,
      [](const std::uint8_t* value, const TranslationUnit* unit) { return value < unit->code; });
  if (it == by_address_.begin()) return nullptr;
  TranslationUnit* unit = *(it - 1);
  return host < unit->code + unit->code_size ? unit : nullptr;
}

}  // namespace bt::translator
