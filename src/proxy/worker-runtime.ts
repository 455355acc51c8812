// Everything one worker's data path shares: limits, routes, upstreams, the
// trusted-proxy list, request ids and counters. Built once from the frozen
// config; connections only read it.
import { BlockList, isIPv4, isIPv6 } from 'node:net';
import { randomBytes } from 'node:crypto';
import { LogThrottle, type Logger } from '../log.js';
import type { Config, LimitsConfig, UnderscorePolicy } from '../config/types.js';
import type { ServerSlot } from '../balancer/types.js';
import { Router } from './router.js';
import { RouteRuntime } from './route-runtime.js';
import type { RateLimiter } from '../gateway/rate-limit.js';
import { GlobalRateLimiter } from '../gateway/global-rate-limit.js';
import { WorkerMetrics } from '../metrics/worker-metrics.js';
import { UpstreamRuntime } from './upstream-runtime.js';
import { regionLayout } from '../balancer/layout.js';
import { Counter, type SharedRegion } from '../native.js';
import type { ExchangeContext } from './exchange.js';
import type { AcmeChallenges } from './acme-challenge.js';
import type { RequestHeadInfo } from './headers.js';
import { CLIENT_CERT_HEADERS } from '../config/client-cert-headers.js';

/** How long a draining worker leaves an idle connection open for a request already on its way. */
export const DRAIN_IDLE_GRACE_MS = 1000;

/** What the worker does with the client connections it holds: count them, and close them when it drains. */
export interface WorkerConnection {
  /** Close once no request is in flight, after `graceMs` without one at the latest. */
  closeWhenIdle(graceMs: number): void;
  /** Carries a tunnel (after a 101): a retiring worker keeps it open. */
  inTunnel(): boolean;
  /** Its open tunnels: one for an HTTP/1.1 connection after a 101, one per tunnel stream of an HTTP/2 session. */
  openTunnels(): number;
  destroy(): void;
}

export class WorkerRuntime implements ExchangeContext {
  readonly limits: LimitsConfig;
  readonly router: Router<RouteRuntime>;
  private readonly routes: RouteRuntime[] = [];
  readonly upstreams = new Map<string, UpstreamRuntime>();
  readonly accessLog: boolean;
  readonly logThrottle = new LogThrottle();
  /** headers_with_underscores: the policy, and whether such headers are removed before forwarding. */
  readonly underscores: UnderscorePolicy;
  readonly dropUnderscored: boolean;
  readonly connections = new Set<WorkerConnection>();
  closing = false;
  readonly metrics: WorkerMetrics;
  requests = 0;
  private readonly trusted = new BlockList();
  private readonly hasTrusted: boolean;
  /** Request ids: a random per-worker prefix plus a counter, unique without a syscall per request. */
  private readonly idPrefix = randomBytes(6).toString('hex');
  private idCounter = 0;
  private onIdle: (() => void) | undefined;
  /** Leases from Redis for scope: global rate limits (issue 14); absent when no route has one. */
  private readonly globalLimiter: GlobalRateLimiter | undefined;

  constructor(
    config: Config,
    readonly log: Logger,
    workerIndex: number,
    region: SharedRegion,
    slot: number,
    limiter: RateLimiter | undefined,
    readonly acmeChallenges: AcmeChallenges | undefined,
  ) {
    this.limits = config.limits;
    this.underscores = config.headersWithUnderscores;
    this.dropUnderscored = config.headersWithUnderscores === 'drop';
    this.metrics = new WorkerMetrics(config, { worker: workerIndex });
    this.accessLog = config.logging.access && log.isLevelEnabled('info');
    const layout = regionLayout(config);
    for (const [name, upstream] of Object.entries(config.upstreams)) {
      const placement = { region, base: layout.base.get(name)!, slot, workerIndex, log, metrics: this.metrics };
      this.upstreams.set(name, new UpstreamRuntime(upstream, placement, config.limits.maxHeaderBytes));
    }
    if (config.redis !== undefined && config.routes.some((r) => r.rateLimit?.scope === 'global')) {
      this.globalLimiter = new GlobalRateLimiter(config.redis, limiter, log, this.metrics);
    }
    // A client certificate's identity must only ever come from the handshake: no route forwards a client's copy.
    const takesClientCerts = config.listen.some((l) => l.tls?.clientCa !== undefined);
    const alwaysStripped = takesClientCerts ? Object.values(CLIENT_CERT_HEADERS).map((h) => h.toLowerCase()) : [];
    const deps = { log, limiter, authFailures: config.authFailures, global: this.globalLimiter, alwaysStripped };
    this.router = new Router(config.routes, (route) => {
      const runtime = new RouteRuntime(route, this.upstreams.get(route.upstream)!, deps);
      this.routes.push(runtime);
      return runtime;
    }, config.normalize.escapedSlashes);
    for (const entry of config.trustedProxies) addTrusted(this.trusted, entry);
    this.hasTrusted = config.trustedProxies.length > 0;
  }

  nextRequestId(): string {
    return `${this.idPrefix}-${(++this.idCounter).toString(36)}`;
  }

  isTrustedProxy(address: string): boolean {
    if (!this.hasTrusted) return false;
    const family = isIPv4(address) ? 'ipv4' : isIPv6(address) ? 'ipv6' : undefined;
    return family !== undefined && this.trusted.check(address, family);
  }

  /** The client address used for balancing and limits: the peer, or the nearest untrusted hop a trusted peer reports. */
  clientIp(peer: string, peerTrusted: boolean, info: RequestHeadInfo): string {
    if (info.forwardedFor === undefined || !peerTrusted) return peer;
    const hops = info.forwardedFor.split(',');
    for (let i = hops.length - 1; i >= 0; i--) {
      const hop = normaliseAddress(hops[i]!.trim());
      if (hop !== '' && !this.isTrustedProxy(hop)) return hop;
    }
    return normaliseAddress(hops[0]!.trim()) || peer;
  }

  /** Every request ends here exactly once, answered, failed or aborted. */
  onRequestDone(upstream: UpstreamRuntime | undefined, server: ServerSlot | undefined, status: number, route: string | undefined, startedAt: number): void {
    this.requests++;
    this.metrics.requestDone(route, upstream?.config.name, server?.address, status, (Date.now() - startedAt) / 1000);
  }

  onConnectionOpened(conn: WorkerConnection): void {
    this.connections.add(conn);
    this.metrics.setActiveConnections(this.connections.size);
  }

  /** A client connection closed at once: the worker holds limits.max_connections already. */
  onConnectionRefused(): void {
    this.metrics.connectionRefused();
    this.logThrottle.warn(this.log, 'max-connections', { max: this.limits.maxConnections }, 'connection refused: limits.max_connections reached');
  }

  onConnectionClosed(conn: WorkerConnection): void {
    this.connections.delete(conn);
    this.metrics.setActiveConnections(this.connections.size);
    if (this.connections.size === 0) this.onIdle?.();
  }

  /** Resolves when the last client connection has closed. */
  whenIdle(): Promise<void> {
    if (this.connections.size === 0) return Promise.resolve();
    return new Promise((resolve) => (this.onIdle = resolve));
  }

  /** Open tunnels: an HTTP/2 session's count each (its other streams may be plain requests). */
  tunnels(): number {
    let n = 0;
    for (const conn of this.connections) n += conn.openTunnels();
    return n;
  }

  /** Stops background work (JWKS refreshes, retry-budget timers) and idle pools. */
  close(): void {
    for (const route of this.routes) route.close();
    for (const upstream of this.upstreams.values()) upstream.close();
    // Unused leased tokens go back to Redis (best effort: a worker that is killed loses at most its leases).
    this.globalLimiter?.close().catch((err: unknown) => this.log.warn({ err }, 'redis: closing failed'));
  }

  /** This worker's upstream requests in flight. */
  activeRequests(): number {
    let n = 0;
    for (const upstream of this.upstreams.values()) for (const s of upstream.servers) n += upstream.read(Counter.ActiveRequests, s);
    return n;
  }
}

function addTrusted(list: BlockList, entry: string): void {
  const slash = entry.indexOf('/');
  const address = slash < 0 ? entry : entry.slice(0, slash);
  const family = isIPv4(address) ? 'ipv4' : 'ipv6';
  if (slash < 0) list.addAddress(address, family);
  else list.addSubnet(address, Number(entry.slice(slash + 1)), family);
}

/** "::ffff:1.2.3.4" → "1.2.3.4", so IPv4 clients look the same on dual-stack listeners. */
export function normaliseAddress(address: string): string {
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}
