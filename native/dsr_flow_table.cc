#include "dsr_flow_table.h"

namespace switchyard {
namespace dsr {

FlowTable::FlowTable(uint32_t capacity, uint32_t idle_ms, OnRemove on_remove, void* ctx)
    : slots_(capacity < kWays ? kWays : capacity, Slot{}),
      idle_ms_(idle_ms),
      on_remove_(on_remove),
      ctx_(ctx) {}

void FlowTable::Remove(Slot& s, bool expired) {
  s.used = 0;
  --live_;
  on_remove_(ctx_, s.server_id, expired);
}

const uint16_t* FlowTable::Find(const FlowKey& key, uint64_t hash, uint32_t now_ms, bool closing) {
  const uint32_t n = capacity();
  for (uint32_t i = 0, pos = Start(hash); i < kWays; ++i, pos = pos + 1 == n ? 0 : pos + 1) {
    Slot& s = slots_[pos];
    if (!s.used || !(s.key == key)) continue;
    if (Expired(s, now_ms)) {
      Remove(s, true);
      return nullptr;
    }
    // Once closing, always closing: the ACKs after a FIN do not make it long-lived again.
    if (closing) s.closing = 1;
    s.deadline_ms = Deadline(now_ms, s.closing);
    return &s.server_id;
  }
  return nullptr;
}

bool FlowTable::Insert(const FlowKey& key, uint64_t hash, uint16_t server_id, uint32_t now_ms,
                       bool closing) {
  const uint32_t n = capacity();
  Slot* free_slot = nullptr;
  for (uint32_t i = 0, pos = Start(hash); i < kWays; ++i, pos = pos + 1 == n ? 0 : pos + 1) {
    Slot& s = slots_[pos];
    if (s.used && Expired(s, now_ms)) Remove(s, true);
    if (s.used && s.key == key) {  // a SYN again for a tracked tuple (port reuse): the new choice wins
      on_remove_(ctx_, s.server_id, false);
      s.server_id = server_id;
      s.deadline_ms = Deadline(now_ms, closing);
      s.closing = closing;
      return true;
    }
    if (!s.used && free_slot == nullptr) free_slot = &s;
  }
  if (free_slot == nullptr) return false;
  *free_slot = Slot{key, Deadline(now_ms, closing), server_id, 1, closing};
  ++live_;
  return true;
}

void FlowTable::Erase(const FlowKey& key, uint64_t hash) {
  const uint32_t n = capacity();
  for (uint32_t i = 0, pos = Start(hash); i < kWays; ++i, pos = pos + 1 == n ? 0 : pos + 1) {
    Slot& s = slots_[pos];
    if (s.used && s.key == key) return Remove(s, false);
  }
}

void FlowTable::Sweep(uint32_t count, uint32_t now_ms) {
  const uint32_t n = capacity();
  for (uint32_t i = 0; i < count && i < n; ++i) {
    Slot& s = slots_[sweep_pos_];
    if (s.used && Expired(s, now_ms)) Remove(s, true);
    sweep_pos_ = sweep_pos_ + 1 == n ? 0 : sweep_pos_ + 1;
  }
}

}  // namespace dsr
}  // namespace switchyard
