// The shared-memory segment every Switchyard process maps: per-server,
// per-worker counters and per-server health words. Pure C++ (no N-API).
//
// Ownership: the primary creates the segment (shm_open O_CREAT|O_EXCL, mode
// 0600, named /switchyard-<pid> or /switchyard-<pid>-<generation>), workers
// attach by name. Each worker writes only its own slot; the primary zeroes a
// slot (ZeroSlot) before a replacement worker takes it, and writes the health
// words. Readers sum a server's counters over all slots.
//
// Layout (all sections 64-byte aligned; the mapping is page aligned):
//   Header          magic, version, section offsets and sizes, see below
//   Identities      uint32 offsets[servers + 1], then the UTF-8 bytes of each
//                   server identity ("host:port"), so an attacher can check
//                   that the layout is the one it expects
//   Health          one 64-byte line per server: state bits, ejection deadline
//   Counters        one 64-byte line per (server, slot), server-major: four
//                   64-bit counters, padded so no two slots share a cache line
//
// Lifetime: a ShmRegion is held through std::shared_ptr; the mapping is
// removed when the last holder (the JS handle, an ArrayBuffer view, a Maglev
// table reading health) lets go, so no reader can touch unmapped memory.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "shm_segment.h"

namespace switchyard {

enum Counter : uint32_t {
  kActiveConnections = 0,
  kActiveRequests = 1,
  kRequestsTotal = 2,
  kFailures = 3,
  kRetries = 4,  // retry attempts sent to the server (the cluster-wide retry budget)
  kCounterCount = 5,
};

// Health state bits (written by the primary, read by workers).
constexpr uint64_t kStateHealthy = 1u << 0;
constexpr uint64_t kStateDrained = 1u << 1;

constexpr uint64_t kShmMagic = 0x314d485359575300ULL;  // "\0SWYSHM1" little-endian
constexpr uint32_t kShmVersion = 2;
constexpr uint32_t kLineBytes = 64;

struct ShmHeader {
  std::atomic<uint64_t> magic;  // stored last on create (release)
  uint32_t version;
  uint32_t header_bytes;
  uint32_t line_bytes;
  uint32_t servers;
  uint32_t slots;
  uint32_t generation;
  uint32_t creator_pid;
  // 1 + the highest slot any counter was ever written in (Add, CopyFrom):
  // sums read only slots below it, so a region sized for 64 workers costs
  // what the workers actually running cost. It only grows; a zeroed slot
  // below it reads as 0.
  std::atomic<uint32_t> slots_used;
  uint64_t ids_offset;
  uint64_t ids_bytes;
  uint64_t health_offset;
  uint64_t counters_offset;
  uint64_t total_bytes;
};

struct alignas(kLineBytes) HealthLine {
  std::atomic<uint64_t> state;
  std::atomic<uint64_t> eject_until_ms;  // Unix ms (Date.now()); 0 = not ejected
  // Passive health: consecutive failures seen by any worker (a success
  // resets it), and how often the server was ejected (the backoff grows).
  std::atomic<uint64_t> fail_streak;
  std::atomic<uint64_t> ejections;
  // Slow start: the share of its weight a recovering server takes, in
  // permille; 0 (the zeroed default) means its full weight.
  std::atomic<uint64_t> ramp_permille;
};

struct alignas(kLineBytes) CounterLine {
  std::atomic<uint64_t> value[kCounterCount];
};

static_assert(sizeof(HealthLine) == kLineBytes && sizeof(CounterLine) == kLineBytes,
              "one cache line per health word and per counter slot");

class ShmRegion {
 public:
  // Creates and initialises a segment (every server healthy, counters zero).
  // Fails if the name already exists.
  static std::shared_ptr<ShmRegion> Create(const std::string& name,
                                           const std::vector<std::string>& ids, uint32_t slots,
                                           uint32_t generation, std::string* error);
  // Maps an existing segment and validates its header.
  static std::shared_ptr<ShmRegion> Attach(const std::string& name, std::string* error);
  // Removes a name. *existed says whether it was there; false with *error on
  // any failure other than "no such segment".
  static bool Unlink(const std::string& name, bool* existed, std::string* error);
  // Unlinks /dev/shm/switchyard-<pid>[-<gen>] segments whose pid is not a
  // live process; returns the names removed (with the leading '/').
  static std::vector<std::string> SweepStale();

  ShmRegion(const ShmRegion&) = delete;
  ShmRegion& operator=(const ShmRegion&) = delete;
  ~ShmRegion();

  const std::string& name() const { return name_; }
  uint32_t servers() const { return header_->servers; }
  uint32_t slots() const { return header_->slots; }
  uint32_t generation() const { return header_->generation; }
  std::string Identity(uint32_t server) const;

  // Slots a sum must read: min(slots_used, slots).
  uint32_t SlotsUsed() const {
    const uint32_t used = header_->slots_used.load(std::memory_order_relaxed);
    return used < header_->slots ? used : header_->slots;
  }

  // Callers check server < servers() and slot < slots().
  void Add(Counter c, uint32_t server, uint32_t slot, int64_t delta) {
    // One relaxed load of a read-mostly line; the raise happens once per slot.
    if (slot >= header_->slots_used.load(std::memory_order_relaxed)) RaiseSlotsUsed(slot + 1);
    Line(server, slot).value[c].fetch_add(static_cast<uint64_t>(delta), std::memory_order_relaxed);
  }
  int64_t Read(Counter c, uint32_t server, uint32_t slot) const {
    return static_cast<int64_t>(Line(server, slot).value[c].load(std::memory_order_relaxed));
  }
  int64_t Sum(Counter c, uint32_t server) const;
  void ZeroSlot(uint32_t slot);

  uint64_t State(uint32_t server) const {
    return Health(server).state.load(std::memory_order_acquire);
  }
  void SetState(uint32_t server, uint64_t bits) {
    Health(server).state.store(bits, std::memory_order_release);
  }
  uint64_t EjectUntil(uint32_t server) const {
    return Health(server).eject_until_ms.load(std::memory_order_acquire);
  }
  void SetEjectUntil(uint32_t server, uint64_t unix_ms) {
    Health(server).eject_until_ms.store(unix_ms, std::memory_order_release);
  }
  uint64_t RampPermille(uint32_t server) const {
    return Health(server).ramp_permille.load(std::memory_order_relaxed);
  }
  void SetRampPermille(uint32_t server, uint64_t permille) {
    Health(server).ramp_permille.store(permille >= 1000 ? 0 : permille, std::memory_order_relaxed);
  }
  // A failure from any worker; returns the streak including it.
  uint64_t RecordFailure(uint32_t server) {
    return Health(server).fail_streak.fetch_add(1, std::memory_order_relaxed) + 1;
  }
  // A success ends the streak. Loaded first so the common case does not
  // dirty a line every worker reads.
  void RecordSuccess(uint32_t server) {
    auto& streak = Health(server).fail_streak;
    if (streak.load(std::memory_order_relaxed) != 0) streak.store(0, std::memory_order_relaxed);
  }
  uint64_t Ejections(uint32_t server) const {
    return Health(server).ejections.load(std::memory_order_relaxed);
  }
  void SetEjections(uint32_t server, uint64_t n) {
    Health(server).ejections.store(n, std::memory_order_relaxed);
  }
  // Ejects the server until `until_ms` unless another worker already did
  // (the streak is claimed by whoever resets it first): returns whether this
  // call ejected it, so each ejection is counted and logged once.
  bool TryEject(uint32_t server, uint64_t streak_seen, uint64_t until_ms) {
    auto& h = Health(server);
    if (!h.fail_streak.compare_exchange_strong(streak_seen, 0, std::memory_order_acq_rel)) return false;
    h.ejections.fetch_add(1, std::memory_order_relaxed);
    h.eject_until_ms.store(until_ms, std::memory_order_release);
    return true;
  }
  // Healthy, not drained, and not ejected now. The clock is read only when
  // an ejection deadline is set, so the common case is two loads.
  bool Eligible(uint32_t server) const {
    if ((State(server) & (kStateHealthy | kStateDrained)) != kStateHealthy) return false;
    const uint64_t until = EjectUntil(server);
    return until == 0 || until <= NowUnixMs();
  }
  // For servers first..first+count-1 (the caller checks the range), writes
  // out[i] = -1 if the server is not eligible, else the counter `c` summed
  // over the used slots, or 0 when c is kCounterCount (health only); and
  // out[count + i] = the server's weight factor in (0, 1] (slow start). One
  // pass for a balancer's pick; the clock is read at most once. Returns the
  // number of eligible servers.
  uint32_t ReadServers(uint32_t first, uint32_t count, uint32_t c, double* out) const;

  // Unix time in ms, the clock of JS Date.now() that ejection deadlines use.
  static uint64_t NowUnixMs();

  // Copies the counters of servers present in both regions (matched by
  // identity) from `from`. slot >= 0 copies that slot only (a worker moving
  // its own counts when it switches regions); slot < 0 copies every slot and
  // the health words (the primary, before announcing the new region).
  // Returns the number of servers matched.
  uint32_t CopyFrom(const ShmRegion& from, int64_t slot);

 private:
  ShmRegion(std::string name, uint8_t* base, size_t size);
  CounterLine& Line(uint32_t server, uint32_t slot) const {
    auto* lines = reinterpret_cast<CounterLine*>(base_ + header_->counters_offset);
    return lines[static_cast<size_t>(server) * header_->slots + slot];
  }
  HealthLine& Health(uint32_t server) const {
    return reinterpret_cast<HealthLine*>(base_ + header_->health_offset)[server];
  }
  void RaiseSlotsUsed(uint32_t used);
  const uint32_t* IdOffsets() const {
    return reinterpret_cast<const uint32_t*>(base_ + header_->ids_offset);
  }

  std::string name_;
  uint8_t* base_;
  size_t size_;
  ShmHeader* header_;
};

}  // namespace switchyard
