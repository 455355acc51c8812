// FIN/RST detection on a paused socket (native/socket_peer.h).
import type { Socket } from 'node:net';
import { addon } from './addon.js';

/**
 * Whether the client of a socket whose reading is paused has already sent
 * FIN or RST (Node reports neither until it reads). Reads the descriptor
 * from libuv's TCP handle, the one internal this relies on.
 */
export function peerHasClosed(socket: Socket): boolean {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 && addon().peerClosed(fd);
}

