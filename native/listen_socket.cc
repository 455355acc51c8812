#include "listen_socket.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>

namespace switchyard {

int AcceptQueued(int listen_fd, int max, std::vector<int>* accepted) {
  int flags = fcntl(listen_fd, F_GETFL);
  if (flags < 0) return -errno;
  if ((flags & O_NONBLOCK) == 0) return -EINVAL;
  while (static_cast<int>(accepted->size()) < max) {
    int fd = accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      accepted->push_back(fd);
      continue;
    }
    // An aborted connection has left the queue: the next one may be fine.
    if (errno == EINTR || errno == ECONNABORTED) continue;
    break;
  }
  return 0;
}

}  // namespace switchyard
