// The data path's one interface to the rest of Switchyard: start it in a
// worker, ask for its counters, stop and drain it. How requests are parsed
// and forwarded (plain `net` sockets driven through llhttp) stays behind it.
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../log.js';
import type { Config, ProxyListenConfig } from '../config/types.js';
import { WorkerRuntime } from './worker-runtime.js';
import { ClientConnection } from './client-connection.js';
import { createTcpServer, unmapped } from '../l4/tcp-listener.js';
import { receiveProxyHeader } from '../l4/proxy-header-reader.js';
import type { ConnectionOrigin } from '../l4/proxy-protocol.js';
import { Counter, SharedRegion } from '../native.js';
import { regionLayout } from '../balancer/layout.js';
import { RateLimiter } from '../gateway/rate-limit.js';
import type { MetricJson } from '../metrics/worker-metrics.js';
import type { ServerStats, WorkerStats } from '../admin/types.js';

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
/** How often a draining worker looks whether only tunnels are left. */
const FINISH_POLL_MS = 50;

export interface ProxyWorker {
  /** Stop accepting new connections (listeners closed); idle keep-alive connections are closed. */
  stopAccepting(): Promise<void>;
  /**
   * Resolves once every connection left carries a tunnel (every HTTP request
   * answered, idle keep-alive connections closed), or at the deadline, when the
   * others are destroyed; with the number of tunnels still open.
   */
  finishRequests(timeoutMs: number): Promise<number>;
  /**
   * Resolves when every connection has closed, or at the deadline (or when
   * `cutShort` settles first), when the rest are destroyed; then stops background work.
   */
  drain(timeoutMs: number, cutShort?: Promise<void>): Promise<void>;
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
  const servers = await Promise.all(config.listen.map((l) => listen(runtime, l)));

  return {
    async stopAccepting() {
      runtime.closing = true;
      // close() resolves only once every connection is gone, so don't wait for it here.
      for (const s of servers) s.close();
      for (const conn of runtime.connections) conn.closeWhenIdle(DRAIN_IDLE_GRACE_MS);
    },
    async finishRequests(timeoutMs) {
      runtime.closing = true;
      // Polled: a connection becomes a tunnel without an event the runtime sees, and this runs once per worker life.
      const deadline = Date.now() + timeoutMs;
      const httpLeft = () => [...runtime.connections].filter((c) => !c.inTunnel());
      while (httpLeft().length > 0 && Date.now() < deadline) await sleep(FINISH_POLL_MS);
      for (const conn of httpLeft()) conn.destroy();
      return runtime.tunnels();
    },
    async drain(timeoutMs, cutShort) {
      runtime.closing = true;
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)));
      await Promise.race([runtime.whenIdle(), deadline, ...(cutShort ? [cutShort] : [])]);
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
      return { requests: runtime.requests, activeConnections: runtime.connections.size, activeRequests: runtime.activeRequests(), tunnels: runtime.tunnels(), upstreams };
    },
  };
}

function listen(runtime: WorkerRuntime, config: ProxyListenConfig): Promise<net.Server> {
  const { host, port, backlog } = config;
  const server = config.mode === 'tcp' ? tcpServer(runtime, config) : httpServer(runtime, config);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(backlog === undefined ? { host, port } : { host, port, backlog }, () => {
      server.off('error', reject);
      server.on('error', (err) => runtime.log.error({ err }, 'listener error'));
      resolve(server);
    });
  });
}

function httpServer(runtime: WorkerRuntime, config: ProxyListenConfig): net.Server {
  const name = `${config.host}:${config.port}`;
  // allowHalfOpen: a client may send its last request and shut down its side; it still gets the response.
  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
    if (runtime.closing) {
      socket.destroy();
      return;
    }
    if (!config.acceptProxy) return runtime.onConnectionOpened(new ClientConnection(socket, runtime));
    // Behind an L4 balancer: the PROXY header names the client, for X-Forwarded-For, hashing, limits and logs.
    const peer = unmapped(socket.remoteAddress ?? '');
    const onReady = (origin: ConnectionOrigin): void => {
      runtime.onConnectionOpened(new ClientConnection(socket, runtime, origin));
      socket.resume();
    };
    receiveProxyHeader(socket, { timeoutMs: config.proxyTimeoutMs, trusted: runtime.isTrustedProxy(peer) }, onReady, (reason) =>
      runtime.logThrottle.warn(runtime.log, 'proxy-header', { listener: name, peer, reason }, 'connection closed: PROXY header refused'),
    );
  });
  // Over the cap, Node accepts and closes at once: the client learns in one round trip, where a
  // connection left unaccepted would wait out its connect timeout (and hold a backlog slot meanwhile).
  if (config.maxConnections > 0) {
    server.maxConnections = config.maxConnections;
    server.on('drop', () => runtime.onConnectionRefused());
  }
  return server;
}

function tcpServer(runtime: WorkerRuntime, config: ProxyListenConfig): net.Server {
  const options = {
    name: `${config.host}:${config.port}`,
    acceptProxy: config.acceptProxy,
    proxyTimeoutMs: config.proxyTimeoutMs,
    idleTimeoutMs: config.idleTimeoutMs,
    maxConnections: config.maxConnections,
  };
  return createTcpServer(options, runtime.upstreams.get(config.upstream!)!, runtime);
}
