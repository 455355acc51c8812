// A burst of new connections accepted within one event-loop iteration.
//
// libuv (1.45 and later, so Node 20) accepts one connection per loop
// iteration and leaves the next to the next poll. A worker serving hundreds
// of keep-alive clients spends milliseconds on each iteration, so a burst of
// new clients waits in the kernel's listen queue for seconds, and once the
// queue is full the kernel drops their handshakes (a SYN retried after 1 s,
// 3 s, ...). Measured with 1,000 clients connecting at once to 2 workers:
// ~600 connections still queued after 4 s and a p99 of 3-6 s, against nginx's
// 0.2-0.5 s in the same minute. So after each connection libuv accepts, the
// connections already waiting are accepted too, up to a bound per iteration:
// a worker takes at most its share of what is queued (the queue's length over
// the number of workers on the shared socket), so a burst that arrives at once
// is split between them rather than taken whole by the first to wake (which,
// at 64 keep-alive clients connecting together, once put 99% of the load on
// one of two workers), and a worker that is busier iterates more slowly and so
// takes less.
import { closeSync } from 'node:fs';
import net from 'node:net';
import { acceptQueued } from '../native.js';

/**
 * Connections one worker accepts per loop iteration on one listener, libuv's
 * own included. Each costs a socket and its connection state (tens of µs), so
 * 64 add a few ms to an iteration at most.
 */
export const ACCEPT_PER_ITERATION = 64;

/** The fields of net.Server that its own accept path (net.js onconnection) reads and keeps. */
interface ServerInternals extends net.Server {
  _connections: number;
  allowHalfOpen?: boolean;
  pauseOnConnect?: boolean;
  noDelay?: boolean;
  keepAlive?: boolean;
  /** Seconds, as net.Server stores it. */
  keepAliveInitialDelay?: number;
  highWaterMark?: number;
}

/**
 * After every connection `server` accepts, accepts the ones waiting behind it
 * (up to ACCEPT_PER_ITERATION in all) and hands each to the server exactly as
 * its own accept would: the same socket options, maxConnections ('drop'), the
 * connection count that close() waits on, and the 'connection' listeners
 * (plain, TLS or HTTP). `onError` hears a listening socket that cannot be
 * drained this way; the server then keeps libuv's one accept per iteration.
 */
export function acceptBursts(server: net.Server, sharers: number, onError: (err: Error) => void): void {
  let inBurst = false;
  let disabled = false;
  server.on('connection', () => {
    // The connections adopted below come back through this listener.
    if (inBurst || disabled) return;
    inBurst = true;
    try {
      for (const fd of acceptQueued(server, ACCEPT_PER_ITERATION - 1, sharers)) adopt(server as ServerInternals, fd, onError);
    } catch (err) {
      disabled = true;
      onError(err as Error);
    } finally {
      inBurst = false;
    }
  });
}

function adopt(server: ServerInternals, fd: number, onError: (err: Error) => void): void {
  if (server.maxConnections && server._connections >= server.maxConnections) {
    closeSync(fd);
    server.emit('drop');
    return;
  }
  let socket: net.Socket;
  try {
    // pauseOnCreate: what net.Server passes for pauseOnConnect (its option name on the socket).
    const options = { fd, readable: true, writable: true, allowHalfOpen: server.allowHalfOpen, pauseOnCreate: server.pauseOnConnect, readableHighWaterMark: server.highWaterMark, writableHighWaterMark: server.highWaterMark };
    socket = new net.Socket(options as net.SocketConstructorOpts);
  } catch (err) {
    closeSync(fd);
    onError(err as Error);
    return;
  }
  if (server.noDelay) socket.setNoDelay(true);
  if (server.keepAlive) socket.setKeepAlive(true, (server.keepAliveInitialDelay ?? 0) * 1000);
  // As net.js does: the socket's destroy decrements the count and lets close() finish.
  server._connections++;
  Object.assign(socket, { server, _server: server });
  server.emit('connection', socket);
}
