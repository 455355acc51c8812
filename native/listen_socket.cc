#include "listen_socket.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

namespace switchyard {

int AcceptQueued(int listen_fd, int max, int sharers, std::vector<int>* accepted) {
  // For a listening socket, TCP_INFO's tcpi_unacked is its accept queue's length (ss's Recv-Q).
  // Read first: the queue is empty after most connections (the worker asks after every one), and
  // then this is the only system call; nothing below runs.
  struct tcp_info info;
  socklen_t length = sizeof info;
  if (getsockopt(listen_fd, IPPROTO_TCP, TCP_INFO, &info, &length) != 0) return -errno;
  int queued = static_cast<int>(info.tcpi_unacked);
  if (queued == 0) return 0;
  // Only an accept can block, so the check that it cannot comes before the first one.
  int flags = fcntl(listen_fd, F_GETFL);
  if (flags < 0) return -errno;
  if ((flags & O_NONBLOCK) == 0) return -EINVAL;
  int share = (queued + sharers - 1) / sharers;
  if (share < max) max = share;
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
