// Upstream servers for balancing tests: each answers every request with its
// own address as the body, so a client sees which server the proxy chose.
// A test can switch one to failing its health checks, to answering slowly, or
// to holding requests open until released, and can count exactly how many
// requests it holds open at a moment (the truth /status must agree with).
import http from 'node:http';
import type net from 'node:net';

export interface IdentityBackend {
  /** "127.0.0.1:PORT", as written in the config; also the response body. */
  readonly address: string;
  readonly port: number;
  /** Status answered on `healthPath` (default 200). */
  healthStatus: number;
  /** Delay before answering any other path (default 0). */
  delayMs: number;
  /** While true, other paths are not answered until release() (or hold = false then release()). */
  hold: boolean;
  /** Non-health requests received since start or resetCounts(). */
  readonly served: number;
  /** Non-health requests received and not yet finished or aborted. */
  readonly open: number;
  /** Answers every held request now. */
  release(): void;
  resetCounts(): void;
  close(): Promise<void>;
}

export async function startIdentityBackend(healthPath = '/healthz'): Promise<IdentityBackend> {
  let served = 0;
  let open = 0;
  let held: Array<() => void> = [];
  const server = http.createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
    req.resume();
    if (req.url === healthPath) {
      res.writeHead(me.healthStatus, { 'content-type': 'text/plain' }).end('health');
      return;
    }
    served++;
    open++;
    res.once('close', () => open--);
    const answer = () => {
      if (res.destroyed) return;
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(me.address) });
      res.end(me.address);
    };
    if (me.hold) held.push(answer);
    else if (me.delayMs > 0) setTimeout(answer, me.delayMs);
    else answer();
  });
  server.on('clientError', (_err, socket: net.Socket) => socket.destroy());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  const me: IdentityBackend = {
    address: `127.0.0.1:${port}`,
    port,
    healthStatus: 200,
    delayMs: 0,
    hold: false,
    get served() {
      return served;
    },
    get open() {
      return open;
    },
    release() {
      const waiting = held;
      held = [];
      for (const answer of waiting) answer();
    },
    resetCounts() {
      served = 0;
    },
    close: () =>
      new Promise<void>((resolve) => {
        me.release();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
  return me;
}

export function startIdentityBackends(count: number): Promise<IdentityBackend[]> {
  return Promise.all(Array.from({ length: count }, () => startIdentityBackend()));
}
