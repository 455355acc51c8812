// Connections a worker has accepted but not yet handed to their reader: a
// PROXY header, an HTTP/2 preface sniff or a TLS handshake still on the way.
// They belong to no front end yet, so a worker that stops accepting would not
// see them and could exit under them: it waits here instead (each has its own
// deadline, so the wait is bounded), and their clients get an answer.
import type { Socket } from 'node:net';

export class PendingHandOvers {
  private readonly sockets = new Set<Socket>();
  private waiters: Array<() => void> = [];

  /** Held until the returned function is called (at the hand-over) or the socket closes. */
  add(socket: Socket): () => void {
    this.sockets.add(socket);
    const settle = (): void => this.settle(socket);
    socket.once('close', settle);
    return settle;
  }

  /** Resolves once none is held. */
  settled(): Promise<void> {
    return this.sockets.size === 0 ? Promise.resolve() : new Promise((resolve) => this.waiters.push(resolve));
  }

  private settle(socket: Socket): void {
    if (!this.sockets.delete(socket) || this.sockets.size > 0) return;
    for (const resolve of this.waiters) resolve();
    this.waiters = [];
  }
}
