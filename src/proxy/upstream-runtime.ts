// A configured upstream as one worker runs it: its balancer, one keep-alive
// pool per server, and its servers' counters in the shared region (each
// worker writes only its own slot; /status and least-conn read the sums).
import type { UpstreamConfig } from '../config/types.js';
import type { Balancer, ServerSlot } from '../balancer/types.js';
import { createBalancer } from '../balancer/create.js';
import { compileHashKey } from '../balancer/hash-key.js';
import { Counter, type SharedRegion } from '../native.js';
import { UpstreamPool, type CloseReason } from './upstream-pool.js';
import type { WorkerMetrics } from '../metrics/worker-metrics.js';
import type { Logger } from '../log.js';
import { upstreamTlsOptions } from '../tls/upstream-tls.js';

/** The retry budget looks back this far (10 one-second snapshots of the cluster-wide sums). */
const BUDGET_WINDOW = 10;

export interface UpstreamPlacement {
  region: SharedRegion;
  log: Logger;
  metrics: WorkerMetrics;
  /** Global index of this upstream's first server in the region. */
  base: number;
  /** This worker's counter slot. */
  slot: number;
  workerIndex: number;
}

export class UpstreamRuntime {
  readonly servers: ServerSlot[];
  readonly pools: UpstreamPool[];
  readonly balancer: Balancer;
  /** Extracts the `header:`/`cookie:` hash key; undefined when hashing by client address. */
  readonly hashKeyOf: ((raw: readonly string[]) => string | undefined) | undefined;
  private readonly region: SharedRegion;
  private readonly base: number;
  private readonly slot: number;
  private readonly log: Logger;
  private readonly metrics: WorkerMetrics;
  /** Cluster-wide [requests, retries] sums, one per second, oldest first. */
  private readonly budgetSnapshots: Array<[number, number]> = [];
  private readonly budgetTimer: NodeJS.Timeout;

  constructor(readonly config: UpstreamConfig, placement: UpstreamPlacement, maxHeaderBytes: number) {
    this.servers = config.servers.map((server, index) => ({ ...server, index, upstream: config.name }));
    const poolOptions = {
      connectTimeoutMs: config.timeouts.connectMs,
      idleTimeoutMs: config.timeouts.idleMs,
      maxIdle: config.maxIdlePerServer ?? Infinity,
      maxHeaderBytes,
      ...(config.proxyProtocol === undefined ? {} : { proxyProtocol: config.proxyProtocol }),
    };
    this.region = placement.region;
    this.base = placement.base;
    this.slot = placement.slot;
    this.log = placement.log;
    this.metrics = placement.metrics;
    this.pools = this.servers.map(
      (server) => new UpstreamPool(server, config.tls === undefined ? poolOptions : { ...poolOptions, tls: upstreamTlsOptions(config.tls, server.host) }, this),
    );
    this.balancer = createBalancer(config, this.servers, { ...placement, onBoundDiversion: () => this.metrics.boundDiversion(config.name) });
    this.hashKeyOf = config.balance === 'source' ? compileHashKey(config.hash.key) : undefined;
    this.budgetSnapshots.push(this.clusterSums());
    this.budgetTimer = setInterval(() => {
      this.budgetSnapshots.push(this.clusterSums());
      if (this.budgetSnapshots.length > BUDGET_WINDOW) this.budgetSnapshots.shift();
    }, 1000);
    this.budgetTimer.unref();
  }

  /**
   * The cluster-wide retry budget (as in Envoy and Finagle): over the last
   * ten seconds, across all workers, retries may add `percent` of the
   * upstream's requests, or `minPerSecond` per second, whichever is more, so
   * retries cannot multiply the load on an upstream that is already failing.
   */
  retryAllowed(): boolean {
    const [requestsNow, retriesNow] = this.clusterSums();
    const [requestsThen, retriesThen] = this.budgetSnapshots[0]!;
    const seconds = Math.max(1, this.budgetSnapshots.length);
    const { percent, minPerSecond } = this.config.retryBudget;
    const allowance = Math.max(minPerSecond * seconds, (percent / 100) * Math.max(0, requestsNow - requestsThen));
    return Math.max(0, retriesNow - retriesThen) < allowance;
  }

  /** A retry attempt begins on `server` (after retryAllowed said yes); `keyed`: a POST/PATCH with an Idempotency-Key. */
  onRetry(server: ServerSlot, keyed = false): void {
    this.region.add(Counter.Retries, this.base + server.index, this.slot, 1);
    this.metrics.retry(this.config.name);
    if (keyed) this.metrics.keyedRetry(this.config.name);
  }

  /**
   * Passive health: every attempt's outcome, shared by all workers. A streak
   * of `consecutive_failures` ejects the server for base × 2^(earlier
   * ejections), capped, unless that would eject more than
   * `max_ejection_percent` of the upstream (the rest must keep serving).
   */
  recordOutcome(server: ServerSlot, ok: boolean): void {
    const index = this.base + server.index;
    if (ok) return this.region.recordSuccess(index);
    const streak = this.region.recordFailure(index);
    const outlier = this.config.outlier;
    if (streak < outlier.consecutiveFailures) return;
    const now = Date.now();
    let ejected = 0;
    for (let i = 0; i < this.servers.length; i++) if (this.region.ejectedUntil(this.base + i) > now) ejected++;
    if (((ejected + 1) * 100) / this.servers.length > outlier.maxEjectionPercent) return;
    const previous = this.region.ejections(index);
    const duration = Math.min(outlier.baseEjectionMs * 2 ** Math.min(previous, 20), outlier.maxEjectionMs);
    if (this.region.tryEject(index, streak, now + duration)) {
      this.metrics.ejection(this.config.name, server.address);
      this.log.warn({ upstream: this.config.name, server: server.address, failures: streak, ejectedForMs: duration }, 'server ejected after consecutive failures');
    }
  }

  private clusterSums(): [number, number] {
    let requests = 0;
    let retries = 0;
    for (let i = 0; i < this.servers.length; i++) {
      requests += this.region.sum(Counter.RequestsTotal, this.base + i);
      retries += this.region.sum(Counter.Retries, this.base + i);
    }
    return [requests, retries];
  }

  /** An upstream request begins (counted until onEnd, across retries each attempt separately). */
  onStart(server: ServerSlot): void {
    const index = this.base + server.index;
    this.region.add(Counter.ActiveRequests, index, this.slot, 1);
    this.region.add(Counter.RequestsTotal, index, this.slot, 1);
  }

  onEnd(server: ServerSlot, failed: boolean): void {
    const index = this.base + server.index;
    this.region.add(Counter.ActiveRequests, index, this.slot, -1);
    if (failed) this.region.add(Counter.Failures, index, this.slot, 1);
  }

  /** Open upstream connections per server in shared memory (for /status); opened, reused and closed in the metrics. */
  connectionOpened(server: ServerSlot): void {
    this.region.add(Counter.ActiveConnections, this.base + server.index, this.slot, 1);
    this.metrics.upstreamConnection(this.config.name, server.address, 'opened');
  }

  connectionReused(server: ServerSlot): void {
    this.metrics.upstreamConnection(this.config.name, server.address, 'reused');
  }

  connectionClosed(server: ServerSlot, reason: CloseReason): void {
    this.region.add(Counter.ActiveConnections, this.base + server.index, this.slot, -1);
    this.metrics.upstreamConnectionClosed(this.config.name, server.address, reason);
  }

  /** This worker's own counts for a server. */
  read(counter: Counter, server: ServerSlot): number {
    return this.region.read(counter, this.base + server.index, this.slot);
  }

  close(): void {
    clearInterval(this.budgetTimer);
    for (const pool of this.pools) pool.close();
  }
}
