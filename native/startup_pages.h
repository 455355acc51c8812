// Giving back the pages of the executable and its libraries that only
// start-up touched.
#pragma once

#include <cstdint>

namespace switchyard {

struct ReleasedPages {
  uint64_t mappings;       // mappings released
  uint64_t residentBytes;  // their resident bytes before the release
};

// Unmaps, from this process only, the resident pages of every private,
// read-only, file-backed mapping that holds no page of its own (no copy-on-
// write copy: Anonymous 0 in /proc/self/smaps), with MADV_DONTNEED. Those
// pages are clean copies of the file: the kernel itself drops them under
// memory pressure, they stay in the page cache (shared with every other
// process of the same binary), and a later access maps them again with a
// minor fault. What a process of a program as large as node (~100 MB, most
// of it V8, OpenSSL and ICU) keeps mapped after start-up is mostly code and
// data that ran once: the dynamic linker's symbol lookups, bootstrap, config
// parsing. A mapping with any private page (relocated RELRO data, a
// breakpoint) is left alone. Returns zeros where /proc is not readable.
ReleasedPages ReleaseStartupPages();

}  // namespace switchyard
