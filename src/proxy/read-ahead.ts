// The data path reads its sockets in flowing mode ('data' listeners), where
// the Readable's read-ahead check has nothing to do but still runs after
// every chunk.
import type { Socket } from 'node:net';

/**
 * Turns off a socket's read-ahead check. After each chunk a Readable
 * schedules `maybeReadMore` (a process.nextTick and a `read(0)`), which only
 * restarts a handle that stopped reading. A flowing socket's handle stops
 * only once a paused socket's buffer is full, and `resume()` restarts it
 * itself (`read(0)` in its `resume_`), so here the check is pure cost:
 * about 4% of a worker's CPU in a POST 4 KB profile (client and upstream
 * reads). node:http's IncomingMessage sets the same flag for the same reason.
 */
export function skipReadAhead(socket: Socket): void {
  (socket as unknown as { _readableState: { readingMore: boolean } })._readableState.readingMore = true;
}
