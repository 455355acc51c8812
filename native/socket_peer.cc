#include "socket_peer.h"

#include <poll.h>

namespace switchyard {

bool SocketPeerClosed(int fd) {
  // POLLRDHUP is reported once the peer's FIN has arrived, even with unread data queued before it.
  struct pollfd p = {fd, POLLRDHUP, 0};
  return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

}  // namespace switchyard
