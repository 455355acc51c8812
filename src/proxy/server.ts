// The data path's one interface to the rest of Switchyard: start it in a
// worker, ask for its counters, stop and drain it. How requests are parsed
// and forwarded (plain `net` sockets driven through llhttp) stays behind it.
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { TLSSocket } from 'node:tls';
import type { Logger } from '../log.js';
import type { Config, ProxyListenConfig } from '../config/types.js';
import { DRAIN_IDLE_GRACE_MS, WorkerRuntime } from './worker-runtime.js';
import { ClientConnection, type SecureListener } from './client-connection.js';
import { createTcpServer, unmapped } from '../l4/tcp-listener.js';
import { receiveProxyHeader } from '../l4/proxy-header-reader.js';
import { PendingHandOvers } from '../l4/pending-hand-overs.js';
import type { ConnectionOrigin } from '../l4/proxy-protocol.js';
import { AcmeChallenges } from './acme-challenge.js';
import { createTlsListener, type TlsListener } from '../tls/tls-listener.js';
import { createRedirectServer } from '../tls/redirect-listener.js';
import { TicketKeyRing, type TicketKey } from '../tls/ticket-keys.js';
import type { CertificatePem } from '../tls/certificate-store.js';
import { Http2FrontEnd } from './h2-session.js';
import { acceptBursts } from './accept-burst.js';
import { sniffPreface } from './preface-sniff.js';
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
  /** Session-ticket keys from the primary (current first): every TLS listener uses them at once. */
  setTicketKeys(keys: TicketKey[]): void;
  /**
   * Adds or replaces the certificate `id` on the TLS listeners given by
   * index in config.listen (all TLS listeners when absent). Throws when the
   * PEM is unusable; the listeners then keep what they had.
   */
  setCertificate(id: string, pem: CertificatePem, listeners?: readonly number[]): void;
}

export interface WorkerPlacement {
  /** The primary's shared region, attached by this worker; absent: a private one (tests, tools). */
  region?: SharedRegion;
  /** Counter slot in the region; defaults to the worker index. */
  slot?: number;
  /** The primary's rate-limit buckets; absent: a private table when a route needs one. */
  limiter?: RateLimiter;
  /** HTTP-01 tokens the primary keeps current; absent: an empty set when a listener has ACME. */
  acmeChallenges?: AcmeChallenges;
  /** Session-ticket keys the primary sent before the listeners exist. */
  ticketKeys?: TicketKey[];
}

export async function startProxyWorker(config: Config, log: Logger, workerIndex: number, placement: WorkerPlacement = {}): Promise<ProxyWorker> {
  const slot = placement.slot ?? workerIndex;
  const region = placement.region ?? privateRegion(config, slot);
  const limiter = placement.limiter ?? (config.routes.some((r) => r.rateLimit) ? privateLimiter(config) : undefined);
  const acme = placement.acmeChallenges ?? (config.listen.some((l) => l.tls?.acme) ? new AcmeChallenges(config.normalize.escapedSlashes) : undefined);
  const runtime = new WorkerRuntime(config, log, workerIndex, region, slot, limiter, acme);
  const acmeDomains = new Set(config.listen.flatMap((l) => l.tls?.acme?.domains ?? []));
  const h2 = config.listen.some((l) => l.http2) ? new Http2FrontEnd(runtime, config.http2) : undefined;
  const tickets = new TicketKeyRing();
  if (placement.ticketKeys) tickets.set(placement.ticketKeys);
  const tlsListeners = new Map<number, TlsListener>();
  /** Plain and tcp listeners' connections still reading a PROXY header or an HTTP/2 preface. */
  const preambles = new PendingHandOvers();
  const sessionTimeoutSeconds = Math.max(1, Math.floor((2 * config.tlsTickets.rotateMs) / 1000));
  const servers = await Promise.all(
    config.listen.map((l, i) => {
      if (l.redirectHttps) {
        const redirect = l.redirectHttps;
        // ACME domains count as served over TLS before their first certificate arrives.
        const servedOverTls = (host: string) => acmeDomains.has(host) || [...tlsListeners.values()].some((t) => t.store.covers(host));
        return bind(runtime, config.workers, l, createRedirectServer(redirect, servedOverTls, log, runtime.logThrottle, acme));
      }
      if (l.mode === 'tcp') return bind(runtime, config.workers, l, tcpServer(runtime, l, preambles));
      if (l.tls === undefined) {
        const plain = l.http2
          ? (socket: net.Socket) => acceptSniffing(runtime, l, socket, h2!, preambles.add(socket))
          : (socket: net.Socket) => accept(runtime, l, socket, preambles);
        return bind(runtime, config.workers, l, net.createServer(NET_OPTIONS, plain));
      }
      const secure: SecureListener = { responseHeaders: l.tls.hsts === undefined ? undefined : [['Strict-Transport-Security', hstsValue(l.tls.hsts)]] };
      const frontEnds = {
        'http/1.1': (socket: TLSSocket, origin: ConnectionOrigin | undefined) => openConnection(runtime, socket, secure, origin),
        // A handshake done after the worker began draining: the session starts closing (GOAWAY once idle), as openConnection.
        ...(l.http2 ? { h2: (socket: TLSSocket, origin: ConnectionOrigin | undefined) => h2!.accept(socket, secure, origin) } : {}),
      };
      // accept_proxy: the PROXY header precedes the ClientHello (an L4 balancer passing TLS through).
      const preamble = l.acceptProxy ? (raw: net.Socket, proceed: (origin: ConnectionOrigin) => void) => readProxyHeader(runtime, l, raw, proceed) : undefined;
      // tls-alpn-01 challenges are answered on the listeners that get their certificate from ACME, for their own names.
      const ownDomains = new Set(l.tls.acme?.domains);
      const acmeTlsAlpn = l.tls.acme && acme ? (name: string | undefined) => acme.tlsAlpnContext(name, ownDomains) : undefined;
      const deps = { log, logThrottle: runtime.logThrottle, tickets, sessionTimeoutSeconds, ...(preamble ? { preamble } : {}), ...(acmeTlsAlpn ? { acmeTlsAlpn } : {}) };
      const listener = createTlsListener(l.tls, frontEnds, deps, NET_OPTIONS);
      tlsListeners.set(i, listener);
      return bind(runtime, config.workers, l, listener.server);
    }),
  );

  return {
    async stopAccepting() {
      runtime.closing = true;
      // close() resolves only once every connection is gone, so don't wait for it here.
      for (const s of servers) s.close();
      for (const t of tlsListeners.values()) t.close();
      for (const conn of runtime.connections) conn.closeWhenIdle(DRAIN_IDLE_GRACE_MS);
      // Connections still in their handshake, PROXY header or preface join runtime.connections when it ends (each has a deadline).
      await Promise.all([preambles.settled(), ...[...tlsListeners.values()].map((t) => t.handshakesDone())]);
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
    setTicketKeys(keys) {
      tickets.set(keys);
    },
    setCertificate(id, pem, listeners) {
      const targets = listeners === undefined ? [...tlsListeners.values()] : listeners.map((i) => tlsListeners.get(i)).filter((t) => t !== undefined);
      if (targets.length === 0) throw new Error('no TLS listener to add the certificate to');
      // Checked on the first before any changes: a bad PEM leaves every listener as it was.
      for (const t of targets) t.store.set(id, pem);
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

// allowHalfOpen: a client may send its last request and shut down its side; it still gets the response.
const NET_OPTIONS = { allowHalfOpen: true, noDelay: true };

/** A plain HTTP/1.1 listener's connection: with accept_proxy, its PROXY header first. */
function accept(runtime: WorkerRuntime, config: ProxyListenConfig, socket: net.Socket, preambles: PendingHandOvers): void {
  if (!config.acceptProxy) return openConnection(runtime, socket, undefined, undefined);
  const settle = preambles.add(socket);
  readProxyHeader(runtime, config, socket, (origin) => {
    settle();
    openConnection(runtime, socket, undefined, origin);
    // Left paused by the PROXY header reader.
    socket.resume();
  });
}

/** `origin`: the client a PROXY header reported; the socket's own peer when undefined. */
function openConnection(runtime: WorkerRuntime, socket: net.Socket, secure: SecureListener | undefined, origin: ConnectionOrigin | undefined): void {
  const conn = new ClientConnection(socket, runtime, secure, origin);
  runtime.onConnectionOpened(conn);
  // Accepted before the listeners closed, its TLS handshake or PROXY header done after: the client has a
  // request on the way. Destroying it reset that request; it is answered (Connection: close) instead.
  if (runtime.closing) conn.closeWhenIdle(DRAIN_IDLE_GRACE_MS);
}

/**
 * Behind an L4 balancer: the PROXY header names the client, for X-Forwarded-For, hashing, limits and logs.
 * Only from trusted_proxies, within proxy_timeout; otherwise the connection is closed (and logged, throttled).
 */
function readProxyHeader(runtime: WorkerRuntime, config: ProxyListenConfig, socket: net.Socket, onReady: (origin: ConnectionOrigin) => void): void {
  const name = `${config.host}:${config.port}`;
  const peer = unmapped(socket.remoteAddress ?? '');
  receiveProxyHeader(socket, { timeoutMs: config.proxyTimeoutMs, trusted: runtime.isTrustedProxy(peer) }, onReady, (reason) =>
    runtime.logThrottle.warn(runtime.log, 'proxy-header', { listener: name, peer, reason }, 'connection closed: PROXY header refused'),
  );
}

/**
 * A plain listener with http2: the connection preface tells h2c with prior knowledge from HTTP/1.1.
 * With accept_proxy the PROXY header comes first, and its client is the client of every stream too.
 */
function acceptSniffing(runtime: WorkerRuntime, config: ProxyListenConfig, socket: net.Socket, h2: Http2FrontEnd, settle: () => void): void {
  // Draining by the time it is decided: either front end answers and then closes (as openConnection).
  const sniff = (origin: ConnectionOrigin | undefined): void =>
    sniffPreface(socket, runtime.limits.headersTimeoutMs, (isHttp2) => {
      settle();
      if (isHttp2) return h2.accept(socket, undefined, origin);
      openConnection(runtime, socket, undefined, origin);
      socket.resume();
    });
  if (!config.acceptProxy) return sniff(undefined);
  readProxyHeader(runtime, config, socket, sniff);
}

function hstsValue(h: { maxAgeSeconds: number; includeSubdomains: boolean; preload: boolean }): string {
  return `max-age=${h.maxAgeSeconds}${h.includeSubdomains ? '; includeSubDomains' : ''}${h.preload ? '; preload' : ''}`;
}

/** `workers`: how many worker processes accept from the shared listening socket. */
function bind(runtime: WorkerRuntime, workers: number, config: ProxyListenConfig, server: net.Server): Promise<net.Server> {
  const { host, port, backlog } = config;
  // Over the cap, Node accepts and closes at once: the client learns in one round trip, where a
  // connection left unaccepted would wait out its connect timeout (and hold a backlog slot meanwhile).
  // (mode tcp listeners apply their own cap.)
  if (config.mode !== 'tcp' && config.maxConnections > 0) {
    server.maxConnections = config.maxConnections;
    server.on('drop', () => runtime.onConnectionRefused());
  }
  acceptBursts(server, workers, (err) => runtime.logThrottle.warn(runtime.log, 'accept-burst', { listener: `${host}:${port}`, err: err.message }, 'accepting a burst of connections failed'));
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port, backlog }, () => {
      server.off('error', reject);
      server.on('error', (err) => runtime.log.error({ err }, 'listener error'));
      resolve(server);
    });
  });
}

function tcpServer(runtime: WorkerRuntime, config: ProxyListenConfig, preambles: PendingHandOvers): net.Server {
  const options = {
    name: `${config.host}:${config.port}`,
    acceptProxy: config.acceptProxy,
    proxyTimeoutMs: config.proxyTimeoutMs,
    idleTimeoutMs: config.idleTimeoutMs,
    maxConnections: config.maxConnections,
  };
  return createTcpServer(options, runtime.upstreams.get(config.upstream!)!, runtime, preambles);
}
