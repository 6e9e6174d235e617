// The translation cache: bump-allocated memory holding units, a hash from
// UnitKey to unit, per-guest-page unit lists for invalidation, and chaining.
// Host code and unit metadata fill two separate halves, so translated code
// stays dense in the instruction cache. When either half runs out the whole
// cache is flushed.
#pragma once

#include "platform/host_memory.h"
#include "translator/translation_unit.h"

#include <bt/result.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace bt::translator {

struct CacheCounters {
  std::uint64_t chains_made = 0;
  std::uint64_t chains_broken = 0;
  std::uint64_t flushes = 0;
  std::uint64_t units_evicted = 0;
};

class CodeCache {
 public:
  // Chains into other pages are counted per region of linear space this
  // large, by their target's linear eip (UnitKey::Linear).
  static constexpr unsigned kRegionShift = 21;
  static constexpr std::uint32_t kRegionBytes = 1u << kRegionShift;
  static constexpr std::size_t kRegions = std::size_t{1} << (32 - kRegionShift);

  // `reserved_prefix` bytes at the start hold the shared trampolines.
  static Result<std::unique_ptr<CodeCache>> Create(std::size_t bytes, std::size_t physical_pages);
  ~CodeCache();

  // Memory for shared code that lives as long as the cache (trampolines).
  // Only valid before the first unit is allocated.
  std::uint8_t* AllocatePermanent(std::size_t bytes);

  TranslationUnit* Lookup(UnitKey key);

  // Room for a unit with at most this much code and metadata; false means
  // the caller must Flush().
  bool HasRoom(std::size_t code_bytes, std::size_t metadata_bytes) const;
  // Carve memory out of the two halves; the caller has checked HasRoom().
  std::uint8_t* AllocateCode(std::size_t bytes, std::size_t alignment);
  std::uint8_t* AllocateMetadata(std::size_t bytes);
  // Gives back the unused tail of the most recent code allocation.
  void ShrinkCode(std::uint8_t* end);

  // Indexes a fully built unit (hash and page lists).
  void Insert(TranslationUnit* unit);
  // Patches `link`'s jump to enter `target` directly. With guest paging, a
  // chain into another guest page than the owner's is valid only while
  // that page's translation stays: `scope` says which events may change it,
  // and the runtime breaks such chains (UnchainCrossPageInto and the like)
  // when they happen.
  void Chain(ExitLink& link, TranslationUnit* target, ChainScope scope);
  // Breaks every chain into another page whose target lies in linear
  // [base, base + bytes), a 2 MiB-aligned range of whole 2 MiB regions (an
  // invlpg there), visiting only the scopes with chains into the range.
  void UnchainCrossPageInto(std::uint32_t base, std::uint32_t bytes);
  // Breaks every chain into another page (a paging-mode change).
  void UnchainCrossPage() {
    UnchainLocal();
    while (!cross_page_global_.list.empty()) Unchain(cross_page_global_.list.front());
  }
  // Breaks every chain of scope kLocal (a CR3 load), without visiting the
  // global ones, which are most.
  void UnchainLocal() {
    while (!cross_page_local_.list.empty()) Unchain(cross_page_local_.list.front());
  }
  // Called for each unit dropped by InvalidatePage (not by Flush).
  using InvalidationListener = void (*)(void* context, const TranslationUnit& unit);
  void SetInvalidationListener(InvalidationListener listener, void* context) {
    listener_ = listener;
    listener_context_ = context;
  }
  // Drops every unit made from guest-physical page `page`. Returns how many.
  std::size_t InvalidatePage(std::uint32_t page);
  // Drops the units of page `page` that hold the instruction at `eip` (an
  // offset in CS), so that it is translated again. Returns how many.
  std::size_t InvalidateInstruction(std::uint32_t page, std::uint32_t eip);
  bool PageHasCode(std::uint32_t page) const { return !pages_[page].empty(); }
  // Drops every unit. Must not be called while translated code runs.
  void Flush();

  // The unit whose code contains `host`, or null.
  TranslationUnit* UnitAt(const std::uint8_t* host) const;
  bool ContainsCode(const std::uint8_t* host) const {
    return host >= memory_.data() && host < memory_.data() + memory_.size();
  }

  const CacheCounters& counters() const { return counters_; }
  std::size_t bytes_used() const {
    return static_cast<std::size_t>(next_code_ - code_begin_) +
           static_cast<std::size_t>(next_metadata_ - metadata_begin_);
  }

 private:
  struct KeyHash {
    std::size_t operator()(const UnitKey& key) const {
      return (key.eip * 0x9E3779B1u) ^ (key.eip >> 12) ^ (key.mode * 0x85EBCA6Bu) ^
             (key.physical_page * 0xC2B2AE35u) ^ (key.code_base * 0x27D4EB2Fu);
    }
  };
  struct KeyOf {
    using type = UnitKey;
    const type& operator()(const TranslationUnit& unit) const { return unit.key; }
  };
  using HashTable =
      bi::unordered_set<TranslationUnit,
                        bi::member_hook<TranslationUnit, bi::unordered_set_member_hook<NormalLink>,
                                        &TranslationUnit::hash_hook>,
                        bi::key_of_value<KeyOf>, bi::hash<KeyHash>, bi::power_2_buckets<true>,
                        bi::constant_time_size<false>>;

  CodeCache(platform::PageMemory memory, std::size_t physical_pages);
  void Unlink(TranslationUnit* unit);
  // Points a chained `link` back at its slow path.
  void Unchain(ExitLink& link);
  // Takes a chained `link` out of its target's and its scope's lists.
  void ForgetChain(ExitLink& link);

  platform::PageMemory memory_;
  std::uint8_t* code_begin_;  // after the permanent code
  std::uint8_t* next_code_;
  std::uint8_t* metadata_begin_;
  std::uint8_t* next_metadata_;
  std::vector<HashTable::bucket_type> buckets_;
  HashTable table_;
  // The units found last, by a hash of their key: most dispatcher lookups
  // ask for a unit asked for shortly before, which this finds without
  // walking a bucket. A slot may name a unit dropped since (not live).
  static constexpr std::size_t kRecentSlots = 4096;
  std::array<TranslationUnit*, kRecentSlots> recent_{};
  std::vector<PageList> pages_;
  // Chains of scope kLocal and kGlobal, and how many of each target every
  // region of linear space.
  struct CrossPageChains {
    CrossPageList list;
    std::array<std::uint32_t, kRegions> into_region{};
  };
  CrossPageChains cross_page_local_, cross_page_global_;
  CrossPageChains& CrossPageOf(ChainScope scope) {
    return scope == ChainScope::kLocal ? cross_page_local_ : cross_page_global_;
  }
  // Units in allocation (= address) order, for UnitAt() from a fault handler.
  std::vector<TranslationUnit*> by_address_;
  CacheCounters counters_;
  InvalidationListener listener_ = nullptr;
  void* listener_context_ = nullptr;
};

}  // namespace bt::translator
