#include "shm_segment.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace switchyard {
namespace {

std::string Errno(const char* what, const std::string& name) {
  return std::string(what) + " " + name + ": " + std::strerror(errno);
}

}  // namespace

bool ValidSegmentName(const std::string& name) {
  return name.size() >= 2 && name.size() <= 255 && name[0] == '/' &&
         name.find('/', 1) == std::string::npos && name.find('\0') == std::string::npos;
}

bool CheckSegmentName(const std::string& name, std::string* error) {
  if (ValidSegmentName(name)) return true;
  *error = "invalid shared-memory name: " + name;
  return false;
}

uint8_t* CreateSegment(const std::string& name, size_t size, SegmentBacking backing,
                       std::string* error) {
  if (!CheckSegmentName(name, error)) return nullptr;
  const int fd = shm_open(name.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
  if (fd < 0) {
    *error = Errno("shm_open", name);
    return nullptr;
  }
  void* mem = MAP_FAILED;
  const bool allocate = backing == SegmentBacking::kAllocated;
  int sized;
  if (allocate) {
    sized = posix_fallocate(fd, 0, static_cast<off_t>(size));
    if (sized != 0) errno = sized;  // posix_fallocate returns the error instead of setting errno
  } else {
    sized = ftruncate(fd, static_cast<off_t>(size));
  }
  if (sized == 0) mem = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (mem == MAP_FAILED) {
    *error = Errno(allocate ? "posix_fallocate/mmap" : "ftruncate/mmap", name);
    close(fd);
    shm_unlink(name.c_str());
    return nullptr;
  }
  close(fd);
  return static_cast<uint8_t*>(mem);
}

uint8_t* MapSegment(const std::string& name, size_t min_size, size_t* size, std::string* error) {
  if (!CheckSegmentName(name, error)) return nullptr;
  const int fd = shm_open(name.c_str(), O_RDWR, 0);
  if (fd < 0) {
    *error = Errno("shm_open", name);
    return nullptr;
  }
  struct stat st;
  void* mem = MAP_FAILED;
  if (fstat(fd, &st) == 0 && static_cast<uint64_t>(st.st_size) >= min_size) {
    mem = mmap(nullptr, st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  }
  const int saved = errno;
  close(fd);
  if (mem == MAP_FAILED) {
    errno = saved;
    *error = Errno("fstat/mmap (too small?)", name);
    return nullptr;
  }
  *size = static_cast<size_t>(st.st_size);
  return static_cast<uint8_t*>(mem);
}

void UnmapSegment(uint8_t* base, size_t size) { munmap(base, size); }

bool UnlinkSegment(const std::string& name, bool* existed, std::string* error) {
  *existed = false;
  if (!CheckSegmentName(name, error)) return false;
  if (shm_unlink(name.c_str()) == 0) {
    *existed = true;
    return true;
  }
  if (errno == ENOENT) return true;
  *error = Errno("shm_unlink", name);
  return false;
}

pid_t SegmentCreatorPid(const char* entry, const char** rest) {
  static const char kPrefix[] = "switchyard-";
  if (std::strncmp(entry, kPrefix, sizeof kPrefix - 1) != 0) return 0;
  const char* p = entry + sizeof kPrefix - 1;
  uint64_t pid = 0;
  const char* digits = p;
  while (*p >= '0' && *p <= '9' && pid < 0x7fffffff) pid = pid * 10 + static_cast<uint64_t>(*p++ - '0');
  if (p == digits || pid == 0 || pid >= 0x7fffffff) return 0;
  *rest = p;
  return static_cast<pid_t>(pid);
}

std::vector<std::string> SweepStaleSegments(pid_t (*creator_pid)(const char* entry)) {
  std::vector<std::string> removed;
  DIR* dir = opendir("/dev/shm");
  if (dir == nullptr) return removed;
  while (const dirent* e = readdir(dir)) {
    const pid_t pid = creator_pid(e->d_name);
    // EPERM means the process exists under another user: not stale.
    if (pid == 0 || kill(pid, 0) == 0 || errno != ESRCH) continue;
    const std::string name = std::string("/") + e->d_name;
    if (shm_unlink(name.c_str()) == 0) removed.push_back(name);
  }
  closedir(dir);
  return removed;
}

}  // namespace switchyard
