// What a listening socket needs beyond libuv's one accept per loop iteration.
#pragma once

#include <vector>

namespace switchyard {

// Accepts up to `max` connections already completed in the kernel's queue of
// the non-blocking listening socket `listen_fd`, and at most this process's
// share of what is queued when `sharers` processes accept from the same
// socket (a burst of connections that arrives at once is split between
// them, not taken whole by the first to wake), without waiting: stops at the
// first EAGAIN (queue empty) or at any error but a connection aborted in the
// queue (EMFILE and the like are left to libuv's own accept, which has its
// remedy for them). Each descriptor is non-blocking and close-on-exec, owned
// by the caller. Returns 0, or -errno when `listen_fd` is unusable, or
// blocking with a connection queued (a blocking accept would stall the
// event loop; with none queued there is no accept to make).
int AcceptQueued(int listen_fd, int max, int sharers, std::vector<int>* accepted);

}  // namespace switchyard
