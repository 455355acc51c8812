// Accepting what waits in a listen queue in one call (native/listen_socket.h).
import type { Server } from 'node:net';
import { addon } from './addon.js';

/**
 * Up to `max` connections already waiting in the kernel queue of `server`'s
 * listening socket, and no more than a 1/`sharers` part of those queued (the
 * processes accepting from one socket split a burst), accepted without
 * waiting: their descriptors, owned by the caller. None when the server has no socket of its own in this process (not
 * listening, or a cluster worker under round-robin scheduling, whose handle
 * is the primary's). Reads the descriptor from libuv's TCP handle.
 */
export function acceptQueued(server: Server, max: number, sharers: number): number[] {
  const fd = (server as unknown as { _handle?: { fd?: number } | null })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) return [];
  return addon().acceptQueued(fd, max, sharers);
}
