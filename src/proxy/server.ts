// The data path's one interface to the rest of Switchyard: start it in a
// worker, ask for its counters, stop and drain it. How requests are parsed
// and forwarded (plain `net` sockets driven through llhttp) stays behind it.
import net from 'node:net';
import type { Logger } from '../log.js';
import type { Config, ProxyListenConfig } from '../config/types.js';
import { WorkerRuntime } from './worker-runtime.js';
import { ClientConnection } from './client-connection.js';
import { Http2FrontEnd } from './h2-session.js';
import { sniffPreface } from './preface-sniff.js';
import { Counter, SharedRegion } from '../native.js';
import { regionLayout } from '../balancer/layout.js';
import { RateLimiter } from '../gateway/rate-limit.js';
import type { MetricJson } from '../metrics/worker-metrics.js';

/** Rate-limit buckets only this process maps (a worker run outside the cluster). */
function privateLimiter(config: Config): RateLimiter {
  const limiter = RateLimiter.create(config.rateLimitSlots, { name: `/switchyard-private-rl-${process.pid}-${Date.now()}` });
  limiter.unlink();
  return limiter;
}

/** A region only this process maps: unlinked at once, so nothing is left in /dev/shm. */
function privateRegion(config: Config, slot: number): SharedRegion {
  const name = `/switchyard-private-${process.pid}-${Date.now()}`;
  const region = SharedRegion.create(regionLayout(config).identities, { name, slots: slot + 1 });
  region.unlink();
  return region;
}

/** How long an idle keep-alive connection may stay open once the worker drains. */
const DRAIN_IDLE_GRACE_MS = 1000;

export interface ServerStats {
  active: number;
  requests: number;
  failures: number;
}

export interface WorkerStats {
  requests: number;
  activeConnections: number;
  activeRequests: number;
  upstreams: Record<string, Record<string, ServerStats>>;
}

export interface ProxyWorker {
  /** Stop accepting new connections (listeners closed); idle keep-alive connections are closed. */
  stopAccepting(): Promise<void>;
  /** Resolves when every in-flight request has finished, or at the deadline, when the rest are destroyed. */
  drain(timeoutMs: number): Promise<void>;
  stats(): WorkerStats;
  /** Everything this worker counted, for the primary to keep when the worker retires. */
  metricsSnapshot(): MetricJson[];
}

export interface WorkerPlacement {
  /** The primary's shared region, attached by this worker; absent: a private one (tests, tools). */
  region?: SharedRegion;
  /** Counter slot in the region; defaults to the worker index. */
  slot?: number;
  /** The primary's rate-limit buckets; absent: a private table when a route needs one. */
  limiter?: RateLimiter;
}

export async function startProxyWorker(config: Config, log: Logger, workerIndex: number, placement: WorkerPlacement = {}): Promise<ProxyWorker> {
  const slot = placement.slot ?? workerIndex;
  const region = placement.region ?? privateRegion(config, slot);
  const limiter = placement.limiter ?? (config.routes.some((r) => r.rateLimit) ? privateLimiter(config) : undefined);
  const runtime = new WorkerRuntime(config, log, workerIndex, region, slot, limiter);
  const h2 = config.listen.some((l) => l.http2) ? new Http2FrontEnd(runtime, config.http2) : undefined;
  const servers = await Promise.all(config.listen.map((l) => listen(runtime, l, h2)));

  return {
    async stopAccepting() {
      runtime.closing = true;
      // close() resolves only once every connection is gone, so don't wait for it here.
      for (const s of servers) s.close();
      for (const conn of runtime.connections) conn.closeWhenIdle(DRAIN_IDLE_GRACE_MS);
    },
    async drain(timeoutMs) {
      runtime.closing = true;
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)));
      await Promise.race([runtime.whenIdle(), deadline]);
      clearTimeout(timer);
      for (const conn of runtime.connections) conn.destroy();
      runtime.close();
    },
    metricsSnapshot() {
      return runtime.metrics.snapshot();
    },
    stats() {
      const upstreams: WorkerStats['upstreams'] = {};
      for (const [name, upstream] of runtime.upstreams) {
        const servers: Record<string, ServerStats> = {};
        for (const s of upstream.servers) {
          servers[s.address] = {
            active: upstream.read(Counter.ActiveRequests, s),
            requests: upstream.read(Counter.RequestsTotal, s),
            failures: upstream.read(Counter.Failures, s),
          };
        }
        upstreams[name] = servers;
      }
      return { requests: runtime.requests, activeConnections: runtime.connections.size, activeRequests: runtime.activeRequests(), upstreams };
    },
  };
}

function listen(runtime: WorkerRuntime, { host, port, backlog, http2 }: ProxyListenConfig, h2: Http2FrontEnd | undefined): Promise<net.Server> {
  const http1 = (socket: net.Socket): void => runtime.onConnectionOpened(new ClientConnection(socket, runtime));
  // allowHalfOpen: a client may send its last request and shut down its side; it still gets the response.
  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
    if (runtime.closing) {
      socket.destroy();
      return;
    }
    if (!http2) return http1(socket);
    sniffPreface(socket, runtime.limits.headersTimeoutMs, (isHttp2) => {
      if (isHttp2) return h2!.accept(socket);
      http1(socket);
      socket.resume();
    });
  });
  // Over the cap, Node accepts and closes at once: the client learns in one round trip, where a
  // connection left unaccepted would wait out its connect timeout (and hold a backlog slot meanwhile).
  const cap = runtime.limits.maxConnections;
  if (cap > 0) {
    server.maxConnections = cap;
    server.on('drop', () => runtime.onConnectionRefused());
  }
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(backlog === undefined ? { host, port } : { host, port, backlog }, () => {
      server.off('error', reject);
      server.on('error', (err) => runtime.log.error({ err }, 'listener error'));
      resolve(server);
    });
  });
}
