// POSIX shared-memory segment plumbing shared by ShmRegion (shm_region.h)
// and RateTable (rate_limit.h): naming, create, attach, unlink, and sweeping
// the segments of dead creators. Each caller keeps its own layout and header
// validation. Pure C++ (no N-API).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace switchyard {

// Processes share these segments through atomics in the mapping, which is
// only sound for lock-free (address-free) atomics.
static_assert(std::atomic<uint64_t>::is_always_lock_free &&
                  std::atomic<uint32_t>::is_always_lock_free,
              "shared-memory segments need lock-free 32- and 64-bit atomics");

// "/<something>" with no other '/', at most 255 bytes.
bool ValidSegmentName(const std::string& name);
// ValidSegmentName, else false with "invalid shared-memory name: <name>".
bool CheckSegmentName(const std::string& name, std::string* error);

enum class SegmentBacking {
  kSparse,     // ftruncate: pages are allocated on first touch
  kAllocated,  // posix_fallocate: a segment /dev/shm cannot hold fails here
               // (ENOSPC) instead of killing a process with SIGBUS later
};

// Creates `name` (shm_open O_CREAT|O_EXCL, mode 0600), sizes it and maps it
// read-write; the mapping starts zeroed. Fails if the name exists; on any
// failure nothing is left behind and *error says why.
uint8_t* CreateSegment(const std::string& name, size_t size, SegmentBacking backing,
                       std::string* error);
// Maps an existing segment of at least min_size bytes read-write; *size is
// its whole size. nullptr with *error on failure.
uint8_t* MapSegment(const std::string& name, size_t min_size, size_t* size, std::string* error);
void UnmapSegment(uint8_t* base, size_t size);
// Removes a name. *existed says whether it was there; false with *error on
// any failure other than "no such segment".
bool UnlinkSegment(const std::string& name, bool* existed, std::string* error);

// Parses the "switchyard-<pid>" start of a /dev/shm entry: returns the pid
// (0 if the entry does not start so) and sets *rest to what follows it.
pid_t SegmentCreatorPid(const char* entry, const char** rest);
// Unlinks the /dev/shm entries for which creator_pid returns the pid of a
// process that no longer exists (0 = not one of ours); returns the names
// removed (with the leading '/').
std::vector<std::string> SweepStaleSegments(pid_t (*creator_pid)(const char* entry));

}  // namespace switchyard
