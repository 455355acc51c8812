#include "shm_region.h"

#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <unordered_map>

#include "shm_segment.h"

namespace switchyard {
namespace {

constexpr uint64_t AlignUp(uint64_t n) { return (n + kLineBytes - 1) / kLineBytes * kLineBytes; }

// Parses "switchyard-<pid>" or "switchyard-<pid>-<gen>"; returns the pid or 0.
pid_t RegionCreatorPid(const char* entry) {
  const char* p = nullptr;
  const pid_t pid = SegmentCreatorPid(entry, &p);
  if (pid == 0) return 0;
  if (*p == '-') {
    const char* gen = ++p;
    while (*p >= '0' && *p <= '9') ++p;
    if (p == gen) return 0;
  }
  return *p == '\0' ? pid : 0;
}

}  // namespace

ShmRegion::ShmRegion(std::string name, uint8_t* base, size_t size)
    : name_(std::move(name)), base_(base), size_(size), header_(reinterpret_cast<ShmHeader*>(base)) {}

ShmRegion::~ShmRegion() { UnmapSegment(base_, size_); }

std::shared_ptr<ShmRegion> ShmRegion::Create(const std::string& name,
                                             const std::vector<std::string>& ids, uint32_t slots,
                                             uint32_t generation, std::string* error) {
  if (!CheckSegmentName(name, error)) return nullptr;
  if (slots == 0 || slots > 4096 || ids.size() > 1u << 20) {
    *error = "slots must be 1..4096 and servers at most 2^20";
    return nullptr;
  }
  const uint64_t n = ids.size();
  uint64_t id_bytes = (n + 1) * sizeof(uint32_t);
  for (const std::string& id : ids) id_bytes += id.size();
  if (id_bytes > 0xffffffffULL) {
    *error = "server identities too long";
    return nullptr;
  }
  const uint64_t header_bytes = AlignUp(sizeof(ShmHeader));
  const uint64_t ids_offset = header_bytes;
  const uint64_t health_offset = AlignUp(ids_offset + id_bytes);
  const uint64_t counters_offset = health_offset + n * kLineBytes;
  const uint64_t total = counters_offset + n * slots * kLineBytes;

  uint8_t* mem = CreateSegment(name, total, SegmentBacking::kSparse, error);
  if (mem == nullptr) return nullptr;

  // The file starts zeroed: counters are 0, ejection deadlines are 0.
  std::shared_ptr<ShmRegion> region(new ShmRegion(name, mem, total));
  ShmHeader* h = region->header_;
  h->version = kShmVersion;
  h->header_bytes = static_cast<uint32_t>(header_bytes);
  h->line_bytes = kLineBytes;
  h->servers = static_cast<uint32_t>(n);
  h->slots = slots;
  h->generation = generation;
  h->creator_pid = static_cast<uint32_t>(getpid());
  h->ids_offset = ids_offset;
  h->ids_bytes = id_bytes;
  h->health_offset = health_offset;
  h->counters_offset = counters_offset;
  h->total_bytes = total;

  auto* offsets = reinterpret_cast<uint32_t*>(region->base_ + ids_offset);
  char* bytes = reinterpret_cast<char*>(offsets + n + 1);
  uint32_t at = 0;
  for (uint64_t i = 0; i < n; ++i) {
    offsets[i] = at;
    std::memcpy(bytes + at, ids[i].data(), ids[i].size());
    at += static_cast<uint32_t>(ids[i].size());
  }
  offsets[n] = at;
  for (uint32_t i = 0; i < n; ++i) region->SetState(i, kStateHealthy);
  h->magic.store(kShmMagic, std::memory_order_release);
  return region;
}

std::shared_ptr<ShmRegion> ShmRegion::Attach(const std::string& name, std::string* error) {
  size_t size = 0;
  uint8_t* mem = MapSegment(name, sizeof(ShmHeader), &size, error);
  if (mem == nullptr) return nullptr;
  std::shared_ptr<ShmRegion> region(new ShmRegion(name, mem, size));
  const ShmHeader* h = region->header_;
  const uint64_t n = h->servers;
  const bool ok =
      h->magic.load(std::memory_order_acquire) == kShmMagic && h->version == kShmVersion &&
      h->line_bytes == kLineBytes && h->total_bytes == size && h->slots > 0 &&
      h->slots <= 4096 && n <= 1u << 20 &&
      h->ids_offset >= sizeof(ShmHeader) && h->ids_bytes >= (n + 1) * sizeof(uint32_t) &&
      h->ids_offset <= size && h->ids_bytes <= size &&
      h->health_offset >= h->ids_offset + h->ids_bytes && h->health_offset % kLineBytes == 0 &&
      h->counters_offset == h->health_offset + n * kLineBytes &&
      h->counters_offset + n * h->slots * kLineBytes == size &&
      region->IdOffsets()[n] == h->ids_bytes - (n + 1) * sizeof(uint32_t);
  if (!ok) {
    *error = "not a Switchyard segment of version " + std::to_string(kShmVersion) + ": " + name;
    return nullptr;
  }
  for (uint64_t i = 0; i < n; ++i) {
    if (region->IdOffsets()[i] > region->IdOffsets()[i + 1]) {
      *error = "corrupt identity table in " + name;
      return nullptr;
    }
  }
  return region;
}

bool ShmRegion::Unlink(const std::string& name, bool* existed, std::string* error) {
  return UnlinkSegment(name, existed, error);
}

std::vector<std::string> ShmRegion::SweepStale() { return SweepStaleSegments(RegionCreatorPid); }

uint64_t ShmRegion::NowUnixMs() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000u + static_cast<uint64_t>(ts.tv_nsec) / 1000000u;
}

std::string ShmRegion::Identity(uint32_t server) const {
  const uint32_t* offsets = IdOffsets();
  const char* bytes = reinterpret_cast<const char*>(offsets + header_->servers + 1);
  return std::string(bytes + offsets[server], offsets[server + 1] - offsets[server]);
}

void ShmRegion::RaiseSlotsUsed(uint32_t used) {
  uint32_t seen = header_->slots_used.load(std::memory_order_relaxed);
  while (seen < used &&
         !header_->slots_used.compare_exchange_weak(seen, used, std::memory_order_relaxed)) {
  }
}

uint32_t ShmRegion::ReadServers(uint32_t first, uint32_t count, uint32_t c, double* out) const {
  const uint32_t used = SlotsUsed();
  uint64_t now = 0;  // read lazily: only when some server has an ejection deadline
  uint32_t eligible = 0;
  for (uint32_t i = 0; i < count; ++i) {
    const uint32_t server = first + i;
    bool ok = (State(server) & (kStateHealthy | kStateDrained)) == kStateHealthy;
    if (ok) {
      const uint64_t until = EjectUntil(server);
      if (until != 0) {
        if (now == 0) now = NowUnixMs();
        ok = until <= now;
      }
    }
    if (!ok) {
      out[i] = -1;
      out[count + i] = 0;
      continue;
    }
    ++eligible;
    uint64_t total = 0;
    if (c < kCounterCount) {
      for (uint32_t slot = 0; slot < used; ++slot) {
        total += Line(server, slot).value[c].load(std::memory_order_relaxed);
      }
    }
    // A transiently negative sum (a decrement seen before its increment) reads as 0.
    const int64_t signed_total = static_cast<int64_t>(total);
    out[i] = signed_total > 0 ? static_cast<double>(signed_total) : 0;
    const uint64_t ramp = RampPermille(server);
    out[count + i] = ramp == 0 ? 1.0 : static_cast<double>(ramp) / 1000.0;
  }
  return eligible;
}

int64_t ShmRegion::Sum(Counter c, uint32_t server) const {
  uint64_t total = 0;
  for (uint32_t slot = 0, n = SlotsUsed(); slot < n; ++slot) {
    total += Line(server, slot).value[c].load(std::memory_order_relaxed);
  }
  return static_cast<int64_t>(total);
}

void ShmRegion::ZeroSlot(uint32_t slot) {
  for (uint32_t s = 0, n = header_->servers; s < n; ++s) {
    for (auto& v : Line(s, slot).value) v.store(0, std::memory_order_relaxed);
  }
}

uint32_t ShmRegion::CopyFrom(const ShmRegion& from, int64_t slot) {
  std::unordered_map<std::string, uint32_t> old_index;
  for (uint32_t i = 0; i < from.servers(); ++i) old_index.emplace(from.Identity(i), i);
  const uint32_t common_slots = std::min(slots(), from.slots());
  RaiseSlotsUsed(slot >= 0 ? static_cast<uint32_t>(slot) + 1 : std::min(common_slots, from.SlotsUsed()));
  uint32_t matched = 0;
  for (uint32_t s = 0; s < servers(); ++s) {
    const auto it = old_index.find(Identity(s));
    if (it == old_index.end()) continue;
    ++matched;
    const uint32_t o = it->second;
    for (uint32_t w = 0; w < common_slots; ++w) {
      if (slot >= 0 && w != slot) continue;
      for (uint32_t c = 0; c < kCounterCount; ++c) {
        Line(s, w).value[c].store(from.Line(o, w).value[c].load(std::memory_order_relaxed),
                                  std::memory_order_relaxed);
      }
    }
    if (slot < 0) {
      SetState(s, from.State(o));
      SetEjectUntil(s, from.EjectUntil(o));
      SetEjections(s, from.Ejections(o));
      SetRampPermille(s, from.RampPermille(o));
    }
  }
  return matched;
}

}  // namespace switchyard
