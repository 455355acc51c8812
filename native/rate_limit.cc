#include "rate_limit.h"

#include <sched.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>

#include "hash.h"
#include "shm_segment.h"

namespace switchyard {
namespace {

constexpr uint64_t kGroupsOffset = sizeof(RateHeader);
static_assert(kGroupsOffset % 64 == 0, "groups start on a cache line");

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// Parses "switchyard-<pid>-rl"; returns the pid or 0.
pid_t RateCreatorPid(const char* entry) {
  const char* p = nullptr;
  const pid_t pid = SegmentCreatorPid(entry, &p);
  return pid != 0 && std::strcmp(p, "-rl") == 0 ? pid : 0;
}

// Microseconds to milliseconds, rounded up: a client told to wait that long
// finds the tokens there.
inline double CeilMs(double us) { return std::ceil(us / 1000.0); }

}  // namespace

RateTable::RateTable(std::string name, uint8_t* base, size_t size)
    : name_(std::move(name)),
      base_(base),
      size_(size),
      header_(reinterpret_cast<RateHeader*>(base)),
      pid_(static_cast<uint32_t>(getpid())) {}

RateTable::~RateTable() { UnmapSegment(base_, size_); }

std::shared_ptr<RateTable> RateTable::Create(const std::string& name, uint32_t slots,
                                             std::string* error) {
  if (!CheckSegmentName(name, error)) return nullptr;
  if (slots == 0 || slots > kMaxRateSlots) {
    *error = "rate-limit slots must be 1.." + std::to_string(kMaxRateSlots);
    return nullptr;
  }
  const uint32_t groups = (slots + kRateWays - 1) / kRateWays;
  const uint64_t total = kGroupsOffset + static_cast<uint64_t>(groups) * sizeof(RateGroup);
  // Allocated now, not on first touch: a table larger than /dev/shm can
  // hold fails here (ENOSPC) instead of killing a worker with SIGBUS later.
  uint8_t* mem = CreateSegment(name, total, SegmentBacking::kAllocated, error);
  if (mem == nullptr) return nullptr;
  // The file starts zeroed: every lock free, every bucket empty (key 0).
  std::shared_ptr<RateTable> table(new RateTable(name, mem, total));
  RateHeader* h = table->header_;
  h->version = kRateVersion;
  h->ways = kRateWays;
  h->groups = groups;
  h->creator_pid = static_cast<uint32_t>(getpid());
  h->groups_offset = kGroupsOffset;
  h->total_bytes = total;
  h->magic.store(kRateMagic, std::memory_order_release);
  return table;
}

std::shared_ptr<RateTable> RateTable::Attach(const std::string& name, std::string* error) {
  size_t size = 0;
  uint8_t* mem = MapSegment(name, sizeof(RateHeader), &size, error);
  if (mem == nullptr) return nullptr;
  std::shared_ptr<RateTable> table(new RateTable(name, mem, size));
  const RateHeader* h = table->header_;
  const bool ok = h->magic.load(std::memory_order_acquire) == kRateMagic &&
                  h->version == kRateVersion && h->ways == kRateWays && h->groups > 0 &&
                  static_cast<uint64_t>(h->groups) * kRateWays <= kMaxRateSlots + kRateWays &&
                  h->groups_offset == kGroupsOffset && h->total_bytes == size &&
                  kGroupsOffset + static_cast<uint64_t>(h->groups) * sizeof(RateGroup) == size;
  if (!ok) {
    *error = "not a Switchyard rate-limit segment of version " + std::to_string(kRateVersion) + ": " + name;
    return nullptr;
  }
  return table;
}

std::vector<std::string> RateTable::SweepStale() { return SweepStaleSegments(RateCreatorPid); }

uint64_t RateTable::NowUs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000u + static_cast<uint64_t>(ts.tv_nsec) / 1000u;
}

uint64_t RateTable::KeyHash(const KeyBytes& route, const KeyBytes& key) {
  constexpr uint64_t kWideSeed = 0x5357595749444531ULL;  // "SWYWIDE1"
  const uint64_t route_hash = Xxh64(route.data, route.size, route.wide ? kWideSeed : kKeySeed);
  const uint64_t h = Xxh64(key.data, key.size, key.wide ? route_hash ^ kWideSeed : route_hash);
  return h == 0 ? 1 : h;  // 0 marks an empty bucket
}

uint64_t RateTable::Lock(RateGroup& g) {
  uint64_t word_seen = 0;
  uint64_t held_since = 0;
  for (uint32_t spin = 0;; ++spin) {
    uint64_t word = g.lock.load(std::memory_order_relaxed);
    if ((word & kLockPidMask) == 0) {
      const uint64_t mine = word + kLockSeqOne + pid_;
      if (g.lock.compare_exchange_weak(word, mine, std::memory_order_acquire, std::memory_order_relaxed)) {
        return mine;
      }
      continue;
    }
    if (spin < 256) {
      CpuRelax();
      continue;
    }
    // Held for longer than a take lasts: the holder was preempted (common on
    // a loaded machine: wait, giving up the CPU) or died inside the section.
    // Checked every 16 rounds (kill and the clock are system calls).
    if ((spin & 15) == 0) {
      const uint64_t now = NowUs();
      if (word != word_seen) {  // another acquisition: its time starts now
        word_seen = word;
        held_since = now;
      }
      const auto holder = static_cast<pid_t>(word & kLockPidMask);
      const bool dead = kill(holder, 0) != 0 && errno == ESRCH;
      const uint64_t mine = word + kLockSeqOne - static_cast<uint64_t>(holder) + pid_;
      if ((dead || now - held_since > kLockStealUs) &&
          g.lock.compare_exchange_strong(word, mine, std::memory_order_acquire, std::memory_order_relaxed)) {
        (dead ? header_->lock_steals : header_->lock_timeouts).fetch_add(1, std::memory_order_relaxed);
        return mine;
      }
    }
    if (spin < 1024) {
      sched_yield();
    } else {
      const timespec pause{0, 50000};  // 50 us: let a preempted holder have the CPU
      nanosleep(&pause, nullptr);
    }
  }
}

RateDecision RateTable::Take(uint64_t key_hash, double rate, double burst, double cost, uint64_t now_us) {
  if (key_hash == 0) key_hash = 1;
  const int64_t cap = static_cast<int64_t>(std::llround(burst * kMicro));
  const int64_t need = static_cast<int64_t>(std::llround(cost * kMicro));
  RateGroup& g = Group(key_hash);
  const uint64_t held = Lock(g);

  // One pass: find the key, and the bucket to take if it is missing:
  // an empty one, else a full one (lossless), else the least recently used.
  RateBucket* bucket = nullptr;
  RateBucket* victim = nullptr;
  int victim_class = 3;
  uint64_t victim_age = 0;
  for (RateBucket& b : g.buckets) {
    const uint64_t k = b.key.load(std::memory_order_relaxed);
    if (k == key_hash) {
      bucket = &b;
      break;
    }
    if (k == 0) {  // buckets fill in order and never empty again: the key is not further on
      victim = &b;
      victim_class = 0;
      break;
    }
    const int cls = b.full_at_us <= now_us ? 1 : 2;
    const uint64_t age = cls == 2 ? b.last_us : 0;
    if (cls < victim_class || (cls == victim_class && age < victim_age)) {
      victim = &b;
      victim_class = cls;
      victim_age = age;
    }
  }

  int64_t tokens;
  uint64_t last;
  if (bucket == nullptr) {
    bucket = victim;
    if (victim_class != 0) header_->evictions.fetch_add(1, std::memory_order_relaxed);
    bucket->key.store(key_hash, std::memory_order_relaxed);
    tokens = cap;
    last = now_us;
  } else {
    // Another process may have taken with a later clock reading before this
    // one got the lock: time never runs backwards for a bucket.
    last = bucket->last_us > now_us ? bucket->last_us : now_us;
    tokens = bucket->tokens > cap ? cap : bucket->tokens;  // the burst may have shrunk (reload)
    const double refill = static_cast<double>(last - bucket->last_us) * rate;
    tokens = refill >= static_cast<double>(cap - tokens) ? cap : tokens + static_cast<int64_t>(refill);
  }
  const bool allowed = tokens >= need;  // always, for a give-back (need < 0)
  if (allowed) tokens -= need;
  if (tokens > cap) tokens = cap;  // a give-back never overfills
  const double missing_us = static_cast<double>(cap - tokens) / rate;
  bucket->tokens = tokens;
  bucket->last_us = last;
  bucket->full_at_us = last + static_cast<uint64_t>(std::ceil(missing_us));
  Unlock(g, held);

  RateDecision d;
  d.allowed = allowed;
  d.remaining = std::floor(static_cast<double>(tokens) / kMicro);
  d.retry_after_ms = allowed ? 0
                     : need > cap ? INFINITY
                                  : CeilMs(static_cast<double>(need - tokens) / rate);
  d.reset_ms = CeilMs(missing_us);
  return d;
}

RateStats RateTable::Stats() const {
  RateStats s{};
  const auto* groups = reinterpret_cast<const RateGroup*>(base_ + header_->groups_offset);
  for (uint32_t i = 0; i < header_->groups; ++i) {
    for (const RateBucket& b : groups[i].buckets) s.used += b.key.load(std::memory_order_relaxed) != 0;
  }
  s.evictions = header_->evictions.load(std::memory_order_relaxed);
  s.lock_steals = header_->lock_steals.load(std::memory_order_relaxed);
  s.lock_timeouts = header_->lock_timeouts.load(std::memory_order_relaxed);
  return s;
}

}  // namespace switchyard
