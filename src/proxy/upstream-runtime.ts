// A configured upstream as one worker runs it: its balancer, one keep-alive
// pool per server, and its servers' counters in the shared region (each
// worker writes only its own slot; /status and least-conn read the sums).
import type { UpstreamConfig } from '../config/types.js';
import type { Balancer, ServerSlot } from '../balancer/types.js';
import { createBalancer } from '../balancer/create.js';
import { compileHashKey } from '../balancer/hash-key.js';
import { Counter, type SharedRegion } from '../native.js';
import { UpstreamPool } from './upstream-pool.js';

export interface UpstreamPlacement {
  region: SharedRegion;
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

  constructor(readonly config: UpstreamConfig, placement: UpstreamPlacement, maxHeaderBytes: number) {
    this.servers = config.servers.map((server, index) => ({ ...server, index, upstream: config.name }));
    const poolOptions = {
      connectTimeoutMs: config.timeouts.connectMs,
      idleTimeoutMs: config.timeouts.idleMs,
      maxIdle: config.maxIdlePerServer,
      maxHeaderBytes,
    };
    this.region = placement.region;
    this.base = placement.base;
    this.slot = placement.slot;
    this.pools = this.servers.map((server) => new UpstreamPool(server, poolOptions, this));
    this.balancer = createBalancer(config, this.servers, placement);
    this.hashKeyOf = config.balance === 'source' ? compileHashKey(config.hash.key) : undefined;
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

  /** Open upstream connections per server, for /status. */
  onConnectionCount(server: ServerSlot, delta: number): void {
    this.region.add(Counter.ActiveConnections, this.base + server.index, this.slot, delta);
  }

  /** This worker's own counts for a server. */
  read(counter: Counter, server: ServerSlot): number {
    return this.region.read(counter, this.base + server.index, this.slot);
  }

  close(): void {
    for (const pool of this.pools) pool.close();
  }
}
