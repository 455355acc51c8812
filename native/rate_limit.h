// Token buckets for rate limits, in a POSIX shared-memory segment every
// worker maps, so a limit holds for the whole instance: N workers taking from
// one key share one bucket and cannot allow N times the rate. Pure C++ (no
// N-API).
//
// Ownership: the primary creates the segment (shm_open O_CREAT|O_EXCL, mode
// 0600, named /switchyard-<pid>-rl), workers attach by name, the primary
// unlinks it on exit; SweepStale removes the segments of dead primaries.
//
// Layout: a 64-byte header, then `groups` groups of kRateWays buckets. A
// key's hash picks one group (its probe window); the key lives in any bucket
// of that group. A miss takes an empty bucket of the group, else evicts one:
// first a bucket that has refilled completely (its state equals a fresh
// bucket's, so evicting it loses nothing), else the least recently used.
// The table never grows: a flood of distinct keys only recycles buckets, and
// an active key is evicted only when all seven neighbours in its group were
// used more recently than it and none of them is full.
//
// Concurrency: each group has one spinlock word on its own cache line: the
// holder's pid in the low 32 bits (0 = free), a count of acquisitions above
// it, so a waiter can tell one long hold from a holder that keeps coming
// back. A take locks the group, probes, refills, decides and unlocks: a few
// dozen plain loads and stores (bench/rate-limit.ts). A lock per
// group, not per bucket, makes "find the key, else insert it" atomic, so two
// workers missing on the same key at once cannot create two buckets for it
// (which would double its burst); a CAS on one packed 64-bit word could not
// hold a 64-bit key, 64-bit time and token count together. A waiter spins
// briefly, then yields, then sleeps in 50 us steps: on a loaded machine the
// holder is sometimes preempted inside the section for milliseconds, and
// waiting (not failing open) is what keeps the limit exact. A lock whose
// holder died (SIGKILL inside the section) is taken over at once
// (lock_steals); one held for over kLockStealUs in a single acquisition,
// which no take needs, is taken over too (lock_timeouts): the pid may have
// been reused after the holder died, and at worst two takes then race on one
// bucket.
//
// Units: tokens in micro-tokens (1e-6 token), time in microseconds of
// CLOCK_MONOTONIC, which is one clock for every process on the machine. A
// rate of R tokens/s then adds exactly R micro-tokens per microsecond.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "shm_segment.h"

namespace switchyard {

constexpr uint64_t kRateMagic = 0x31304c5259575300ULL;  // "\0SWYRL01" little-endian
constexpr uint32_t kRateVersion = 1;
constexpr uint32_t kRateWays = 8;            // buckets per group: the probe window
constexpr uint32_t kMaxRateSlots = 1u << 24;  // 16 Mi buckets, 640 MiB (the config's maximum)
constexpr uint64_t kLockStealUs = 500000;
constexpr double kMicro = 1e6;

struct RateBucket {
  std::atomic<uint64_t> key;  // hash of (route, key); 0 = empty. Atomic only for Stats().
  int64_t tokens;             // micro-tokens after the last take
  uint64_t last_us;           // time of the last take (refill time and last use)
  uint64_t full_at_us;        // when it will hold `burst` again: evictable without loss after that
};

constexpr uint64_t kLockPidMask = 0xffffffffULL;
constexpr uint64_t kLockSeqOne = 1ULL << 32;

struct alignas(64) RateGroup {
  std::atomic<uint64_t> lock;  // acquisitions << 32 | holder pid (0 = free)
  uint8_t reserved[56];        // keeps spinners off the buckets' cache lines
  RateBucket buckets[kRateWays];
};

static_assert(sizeof(RateBucket) == 32 && sizeof(RateGroup) == 64 + 32 * kRateWays,
              "bucket layout is part of the segment format");

struct alignas(64) RateHeader {
  std::atomic<uint64_t> magic;  // stored last on create (release)
  uint32_t version;
  uint32_t ways;
  uint32_t groups;
  uint32_t creator_pid;
  uint64_t groups_offset;
  uint64_t total_bytes;
  std::atomic<uint64_t> evictions;      // buckets taken from another key
  std::atomic<uint64_t> lock_steals;    // locks taken over from a dead holder
  std::atomic<uint64_t> lock_timeouts;  // locks taken over after kLockStealUs
};

// A key (or route name) as hashed: latin1 bytes, or UTF-16 code units when
// the string has a character above U+00FF (`wide`). The two forms hash under
// different seeds, so no latin1 string meets a wide one.
struct KeyBytes {
  const void* data;
  size_t size;  // in bytes
  bool wide;
};

struct RateDecision {
  bool allowed;
  double remaining;       // whole tokens left after this take
  double retry_after_ms;  // 0 when allowed; else when `cost` tokens will be there
  double reset_ms;        // until the bucket is full again
};

struct RateStats {
  uint64_t used;  // buckets holding a key (a full scan)
  uint64_t evictions;
  uint64_t lock_steals;
  uint64_t lock_timeouts;
};

class RateTable {
 public:
  // `slots` is rounded up to a multiple of kRateWays; 1..kMaxRateSlots.
  static std::shared_ptr<RateTable> Create(const std::string& name, uint32_t slots,
                                           std::string* error);
  static std::shared_ptr<RateTable> Attach(const std::string& name, std::string* error);
  // Unlinks /dev/shm/switchyard-<pid>-rl segments whose pid is not a live
  // process; returns the names removed (with the leading '/').
  static std::vector<std::string> SweepStale();
  static uint64_t NowUs();  // CLOCK_MONOTONIC
  // The bucket key of a route's key: XXH64 of all of the key's bytes seeded
  // with the route's hash, so equal keys on different routes get different
  // buckets.
  static uint64_t KeyHash(const KeyBytes& route, const KeyBytes& key);

  RateTable(const RateTable&) = delete;
  RateTable& operator=(const RateTable&) = delete;
  ~RateTable();

  const std::string& name() const { return name_; }
  uint32_t slots() const { return header_->groups * kRateWays; }
  uint64_t bytes() const { return size_; }

  // Takes `cost` tokens (0 = just look, < 0 = give back, up to the burst)
  // from the bucket of `key_hash`, which refills at `rate` tokens/s up to
  // `burst`. The caller checks rate > 0, burst > 0 and -burst <= cost <= burst.
  RateDecision Take(uint64_t key_hash, double rate, double burst, double cost, uint64_t now_us);
  RateStats Stats() const;

 private:
  RateTable(std::string name, uint8_t* base, size_t size);
  RateGroup& Group(uint64_t hash) const {
    // Multiply-shift range reduction: uniform for a uniform hash, no division.
    const uint64_t g = static_cast<uint64_t>((static_cast<unsigned __int128>(hash) * header_->groups) >> 64);
    return reinterpret_cast<RateGroup*>(base_ + header_->groups_offset)[g];
  }
  // Returns the lock word as acquired, for Unlock.
  uint64_t Lock(RateGroup& g);
  // Clears the pid, keeping the count; a no-op if the lock was taken over.
  static void Unlock(RateGroup& g, uint64_t held) {
    g.lock.compare_exchange_strong(held, held & ~kLockPidMask, std::memory_order_release,
                                   std::memory_order_relaxed);
  }

  std::string name_;
  uint8_t* base_;
  size_t size_;
  RateHeader* header_;
  uint32_t pid_;
};

}  // namespace switchyard
