// The native byte relay of mode: tcp sessions (native/tcp_relay.h): C++
// moves bytes between a client socket and its server socket with epoll,
// driven from this thread's event loop but without a JS call per read.
// JavaScript keeps both net.Sockets (connect, PROXY header, destroy); the
// relay works on duplicates of their descriptors and reports once per
// session how it ended.
import type { Socket } from 'node:net';
import { addon, type NativeTcpRelay } from './addon.js';

/** How a relayed session ended (RelayEnd in tcp_relay.h, same order). */
export const RELAY_ENDS = ['closed', 'client-error', 'server-error', 'idle', 'aborted'] as const;
export type RelayEnd = (typeof RELAY_ENDS)[number];

export type RelayEnded = (how: RelayEnd, bytesIn: number, bytesOut: number) => void;

interface TcpHandle {
  fd?: number;
  reading?: boolean;
  readStop?(): number;
}

let relay: NativeTcpRelay | undefined;
const sessions = new Map<number, RelayEnded>();

function onEnded(id: number, how: number, bytesIn: number, bytesOut: number): void {
  const ended = sessions.get(id);
  if (ended === undefined) return;
  sessions.delete(id);
  ended(RELAY_ENDS[how] ?? 'aborted', bytesIn, bytesOut);
}

/**
 * Stops Node reading `socket` for good and returns what it had read but not
 * yet delivered (bytes a PROXY header reader put back, or read after it
 * paused: a paused net.Socket keeps reading up to its highWaterMark).
 * `reading = true` on the stopped handle keeps net.Socket's _read from
 * starting it again: from here on the relay thread is the socket's reader.
 * Internals relied on: _handle.fd, _handle.reading, _handle.readStop().
 */
export function takeOverReading(socket: Socket): Buffer[] {
  const handle = (socket as unknown as { _handle?: TcpHandle })._handle;
  if (handle === undefined || handle === null) return [];
  if (handle.reading) handle.readStop?.();
  handle.reading = true;
  const buffered: Buffer[] = [];
  for (let chunk: Buffer | null; socket.readableLength > 0 && (chunk = socket.read() as Buffer | null) !== null; ) buffered.push(chunk);
  return buffered;
}

/**
 * Relays between two connected sockets (both taken over with
 * takeOverReading, nothing left to write on either) until both ends closed,
 * either side failed, `idleMs` passed without a byte (0: never) or
 * abortRelay(id). `ended` is called once; the caller then destroys both
 * sockets (the relay has set SO_LINGER 0 on them unless `how` is 'closed', so
 * that close sends a reset). Returns the session id.
 */
export function startRelay(client: Socket, server: Socket, idleMs: number, ended: RelayEnded): number {
  relay ??= new (addon().TcpRelay)(onEnded);
  const id = relay.add(fdOf(client), fdOf(server), idleMs);
  sessions.set(id, ended);
  return id;
}

/** Resets both sides of a relayed session; its `ended` is called before this returns. */
export function abortRelay(id: number): void {
  relay?.abort(id);
}

function fdOf(socket: Socket): number {
  const fd = (socket as unknown as { _handle?: TcpHandle })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw new Error('tcp relay: the socket has no file descriptor');
  return fd;
}
