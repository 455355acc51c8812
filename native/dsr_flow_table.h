// The DSR forwarder's per-connection table (pure C++): client address and
// port + VIP port -> the server the connection was sent to, so a change of
// the server set (a Maglev rebuild) moves no live connection. Maglev alone
// moves about 1/n of them (the lab behind issue 13 saw 6-7 of 12 live streams
// break); Katran and Google's Maglev keep a table in front of the hash too.
//
// One table per packet thread (PACKET_FANOUT_HASH sends a connection's
// frames to the same thread), so no locks. Bounded: open addressing over a
// fixed array (at least kWays slots) with a probe window of kWays slots; an entry is live until its
// idle deadline (flowIdleMs after its last packet, or kClosingMs after a FIN
// or RST), and dead slots are reused in place. A new flow that finds its
// whole window live is not tracked (Insert returns false): it is forwarded by
// the hash alone, which is what a table-less forwarder does, and counted, so
// a SYN flood cannot make the forwarder refuse new clients. A sweep (a slice
// per call of Sweep) reclaims expired entries so the live count stays honest.
#pragma once

#include <cstdint>
#include <vector>

namespace switchyard {
namespace dsr {

struct FlowKey {
  uint32_t saddr;  // network byte order
  uint16_t sport;
  uint16_t dport;
  bool operator==(const FlowKey& o) const {
    return saddr == o.saddr && sport == o.sport && dport == o.dport;
  }
};

class FlowTable {
 public:
  static constexpr uint32_t kWays = 8;
  static constexpr uint32_t kClosingMs = 5000;

  // What happens to entries leaving the table: server_id's connection count
  // drops (the callback owner keeps per-server counts).
  using OnRemove = void (*)(void* ctx, uint16_t server_id, bool expired);

  FlowTable(uint32_t capacity, uint32_t idle_ms, OnRemove on_remove, void* ctx);

  // The live entry for key, its deadline refreshed; nullptr if none.
  // `closing` (FIN or RST seen) shortens its deadline.
  const uint16_t* Find(const FlowKey& key, uint64_t hash, uint32_t now_ms, bool closing);
  // Tracks key -> server_id; false when the window is full of live entries.
  bool Insert(const FlowKey& key, uint64_t hash, uint16_t server_id, uint32_t now_ms, bool closing);
  // Forgets the entry (its server is gone); no-op if absent.
  void Erase(const FlowKey& key, uint64_t hash);
  // Reclaims expired entries among the next `count` slots.
  void Sweep(uint32_t count, uint32_t now_ms);

  uint32_t live() const { return live_; }
  uint32_t capacity() const { return static_cast<uint32_t>(slots_.size()); }

 private:
  struct Slot {
    FlowKey key;
    uint32_t deadline_ms;  // wraps after 49 days: compared by signed difference
    uint16_t server_id;
    uint8_t used;
    uint8_t closing;  // a FIN or RST was seen
  };
  static bool Expired(const Slot& s, uint32_t now_ms) {
    return static_cast<int32_t>(s.deadline_ms - now_ms) <= 0;
  }
  uint32_t Deadline(uint32_t now_ms, bool closing) const {
    return now_ms + (closing && idle_ms_ > kClosingMs ? kClosingMs : idle_ms_);
  }
  uint32_t Start(uint64_t hash) const {
    return static_cast<uint32_t>((static_cast<unsigned __int128>(hash) * slots_.size()) >> 64);
  }
  void Remove(Slot& s, bool expired);

  std::vector<Slot> slots_;
  uint32_t idle_ms_;
  uint32_t live_ = 0;
  uint32_t sweep_pos_ = 0;
  OnRemove on_remove_;
  void* ctx_;
};

}  // namespace dsr
}  // namespace switchyard
