// A `mode: tcp` listener in a worker: each accepted connection, once any
// PROXY header from a trusted balancer was read, becomes a TcpSession to the
// listener's upstream. The connection cap is Node's (accept, then close at
// once), as for HTTP listeners.
import net from 'node:net';
import { receiveProxyHeader, socketOrigin } from './proxy-header-reader.js';
import { TcpSession } from './tcp-session.js';
import type { PendingHandOvers } from './pending-hand-overs.js';
import type { ConnectionOrigin } from './proxy-protocol.js';
import type { L4Upstream, L4Worker } from './types.js';

export interface TcpListenerOptions {
  /** host:port, for logs. */
  name: string;
  acceptProxy: boolean;
  proxyTimeoutMs: number;
  idleTimeoutMs: number;
  /** Connections this listener holds per worker; 0: no cap. */
  maxConnections: number;
}

/** `preambles`: holds a connection while its PROXY header is on the way (a draining worker waits for it). */
export function createTcpServer(options: TcpListenerOptions, upstream: L4Upstream, worker: L4Worker, preambles: PendingHandOvers): net.Server {
  const server = net.createServer({ allowHalfOpen: true, noDelay: true, pauseOnConnect: true }, (socket) => {
    // Accepted, so the client has bytes on the way even if the worker drains meanwhile: the session
    // starts and is kept like any tunnel (up to tunnel_max_age) rather than reset.
    const start = (origin: ConnectionOrigin): void => {
      const session = { idleTimeoutMs: options.idleTimeoutMs, listener: options.name };
      new TcpSession(socket, origin, unmapped(origin.sourceAddress), upstream, worker, session);
    };
    if (!options.acceptProxy) return start(socketOrigin(socket));
    const peer = unmapped(socket.remoteAddress ?? '');
    const settle = preambles.add(socket);
    socket.resume();
    const ready = (origin: ConnectionOrigin): void => {
      settle();
      start(origin);
    };
    receiveProxyHeader(socket, { timeoutMs: options.proxyTimeoutMs, trusted: worker.isTrustedProxy(peer) }, ready, (reason) =>
      worker.logThrottle.warn(worker.log, 'proxy-header', { listener: options.name, peer, reason }, 'connection closed: PROXY header refused'),
    );
  });
  if (options.maxConnections > 0) {
    server.maxConnections = options.maxConnections;
    server.on('drop', () => worker.onConnectionRefused());
  }
  return server;
}

/** An IPv4 client on a dual-stack socket is reported as ::ffff:a.b.c.d; hashing and logs use a.b.c.d. */
export function unmapped(address: string): string {
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}
