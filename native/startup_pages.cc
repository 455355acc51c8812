#include "startup_pages.h"

#include <sys/mman.h>

#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace switchyard {
namespace {

struct Mapping {
  uintptr_t start = 0;
  uintptr_t end = 0;
  bool candidate = false;  // private, read-only, file-backed
  uint64_t rssKb = 0;
  bool anonymous = true;  // until smaps says "Anonymous: 0 kB"
  bool locked = false;
};

// "start-end perms offset dev inode   path": a file-backed, private, read-only mapping?
bool ParseHeader(const char* line, Mapping* m) {
  char perms[8] = {0};
  int pathAt = 0;
  if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR " %7s %*s %*s %*s %n", &m->start, &m->end, perms, &pathAt) < 3) return false;
  // [vdso], [heap] and anonymous mappings have no '/' path; shared mappings (the shm region) are 's'.
  m->candidate = pathAt > 0 && line[pathAt] == '/' && perms[0] == 'r' && perms[1] == '-' && perms[3] == 'p';
  return true;
}

}  // namespace

ReleasedPages ReleaseStartupPages() {
  ReleasedPages released{0, 0};
  FILE* smaps = fopen("/proc/self/smaps", "re");
  if (smaps == nullptr) return released;
  // Decide while reading, release after: madvise never runs while the kernel walks the list.
  std::vector<Mapping> chosen;
  Mapping current;
  bool inMapping = false;
  char* line = nullptr;
  size_t cap = 0;
  while (getline(&line, &cap, smaps) > 0) {
    unsigned long long kb;
    // A field line starts with its name; a header starts with a hex address.
    if (sscanf(line, "Rss: %llu kB", &kb) == 1) {
      current.rssKb = kb;
    } else if (sscanf(line, "Anonymous: %llu kB", &kb) == 1) {
      current.anonymous = kb != 0;
    } else if (strncmp(line, "VmFlags:", 8) == 0) {
      // The last field of a mapping. "lo": mlock()ed, MADV_DONTNEED refuses it.
      current.locked = strstr(line, " lo") != nullptr;
      if (inMapping && current.candidate && !current.anonymous && !current.locked && current.rssKb > 0) chosen.push_back(current);
      inMapping = false;
    } else if (Mapping next; ParseHeader(line, &next)) {
      current = next;
      inMapping = true;
    }
  }
  free(line);
  fclose(smaps);
  for (const Mapping& m : chosen) {
    if (madvise(reinterpret_cast<void*>(m.start), m.end - m.start, MADV_DONTNEED) != 0) continue;
    released.mappings++;
    released.residentBytes += m.rssKb * 1024;
  }
  return released;
}

}  // namespace switchyard
