// A configured upstream as one worker runs it: its balancer, one keep-alive
// pool per server, and the per-server counters behind /status.
import type { UpstreamConfig } from '../config/types.js';
import type { Balancer, ServerSlot } from '../balancer/types.js';
import { RoundRobinBalancer } from '../balancer/round-robin.js';
import { UpstreamPool } from './upstream-pool.js';

export interface ServerCounters {
  /** Requests in flight to the server from this worker. */
  active: number;
  requests: number;
  failures: number;
}

export class UpstreamRuntime {
  readonly servers: ServerSlot[];
  readonly pools: UpstreamPool[];
  readonly counters: ServerCounters[];
  readonly balancer: Balancer;

  constructor(readonly config: UpstreamConfig, workerIndex: number, maxHeaderBytes: number) {
    this.servers = config.servers.map((server, index) => ({ ...server, index, upstream: config.name }));
    const poolOptions = {
      connectTimeoutMs: config.timeouts.connectMs,
      idleTimeoutMs: config.timeouts.idleMs,
      maxIdle: config.maxIdlePerServer,
      maxHeaderBytes,
    };
    this.pools = this.servers.map((server) => new UpstreamPool(server, poolOptions));
    this.counters = this.servers.map(() => ({ active: 0, requests: 0, failures: 0 }));
    // The native algorithms (least-conn, source, random) arrive with the addon; until then round-robin serves all.
    this.balancer = new RoundRobinBalancer(this.servers, workerIndex);
  }

  onStart(server: ServerSlot): void {
    const c = this.counters[server.index]!;
    c.active++;
    c.requests++;
    this.balancer.onStart?.(server);
  }

  onEnd(server: ServerSlot, failed: boolean): void {
    const c = this.counters[server.index]!;
    c.active--;
    if (failed) c.failures++;
    this.balancer.onEnd?.(server);
  }

  close(): void {
    for (const pool of this.pools) pool.close();
  }
}
