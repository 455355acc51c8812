// An upstream server that a resilience test can kill (every connection
// destroyed, the port refusing) and bring back on the same port, switch to
// answering 5xx or slowly, or make hold requests open until released. It
// records when each request arrived, so a test can count a server's traffic
// in any time window (a kill, a recovery, a slow start ramp).
import http from 'node:http';
import type net from 'node:net';

export interface KillableBackend {
  /** "127.0.0.1:PORT", as written in the config. */
  readonly address: string;
  readonly port: number;
  /** Status of every non-health answer (default 200); the body is the address. */
  status: number;
  /** Status answered on the health path (default 200). */
  healthStatus: number;
  /** Delay before every non-health answer (default 0). */
  delayMs: number;
  /** Requests to this path wait until release(). */
  holdPath: string | undefined;
  /** Date.now() of every non-health request, in arrival order. */
  readonly arrivals: readonly number[];
  /** Paths of every non-health request, in arrival order. */
  readonly paths: readonly string[];
  readonly healthChecks: number;
  /** Requests held now (see holdPath). */
  readonly held: number;
  /** Non-health requests that arrived in [from, to). */
  countBetween(from: number, to?: number): number;
  /** Answers every held request now. */
  release(): void;
  /** Destroys every connection and stops listening: the port refuses. */
  kill(): Promise<void>;
  /** Listens again on the same port. */
  restart(): Promise<void>;
  close(): Promise<void>;
}

export async function startKillableBackend(o: { healthPath?: string; port?: number } = {}): Promise<KillableBackend> {
  const healthPath = o.healthPath ?? '/healthz';
  const arrivals: number[] = [];
  const paths: string[] = [];
  const sockets = new Set<net.Socket>();
  let healthChecks = 0;
  let held: Array<() => void> = [];
  let server: http.Server | undefined;
  let port = o.port ?? 0;

  const handle = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    req.resume();
    if (req.url === healthPath) {
      healthChecks++;
      res.writeHead(me.healthStatus, { 'content-type': 'text/plain' }).end('health');
      return;
    }
    arrivals.push(Date.now());
    paths.push(req.url ?? '');
    const answer = (): void => {
      if (res.destroyed) return;
      res.writeHead(me.status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(me.address) });
      res.end(me.address);
    };
    if (me.holdPath !== undefined && req.url === me.holdPath) held.push(answer);
    else if (me.delayMs > 0) setTimeout(answer, me.delayMs);
    else answer();
  };

  const listen = async (): Promise<void> => {
    const s = http.createServer({ keepAliveTimeout: 60_000 }, handle);
    s.on('connection', (socket: net.Socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
    });
    s.on('clientError', (_err, socket: net.Socket) => socket.destroy());
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.listen(port, '127.0.0.1', () => {
        s.off('error', reject);
        resolve();
      });
    });
    port = (s.address() as net.AddressInfo).port;
    server = s;
  };

  const kill = async (): Promise<void> => {
    const s = server;
    server = undefined;
    if (!s) return;
    held = [];
    const closed = new Promise<void>((resolve) => s.close(() => resolve()));
    for (const socket of sockets) socket.destroy();
    await closed;
  };

  await listen();
  const me: KillableBackend = {
    address: `127.0.0.1:${port}`,
    port,
    status: 200,
    healthStatus: 200,
    delayMs: 0,
    holdPath: undefined,
    arrivals,
    paths,
    get healthChecks() {
      return healthChecks;
    },
    get held() {
      return held.length;
    },
    countBetween(from, to = Infinity) {
      let n = 0;
      for (const t of arrivals) if (t >= from && t < to) n++;
      return n;
    },
    release() {
      const waiting = held;
      held = [];
      for (const answer of waiting) answer();
    },
    kill,
    restart: listen,
    close: kill,
  };
  return me;
}
