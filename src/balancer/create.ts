// The one place that turns an upstream's `balance` setting into a Balancer.
// Every balancer reads the upstream's servers in the shared region: health
// (healthy, not drained, not ejected) for all of them, active requests for
// least-conn and bounded-load source hashing.
import type { SharedRegion } from '../native.js';
import type { UpstreamConfig } from '../config/types.js';
import type { Balancer, ServerSlot } from './types.js';
import { LeastConnBalancer } from './least-conn.js';
import { RandomBalancer } from './random.js';
import { RoundRobinBalancer } from './round-robin.js';
import { SourceHashBalancer } from './source-hash.js';

export interface BalancerContext {
  region: SharedRegion;
  /** Global index of this upstream's first server in the region. */
  base: number;
  /** Rotates round-robin and tie orders so workers do not move in lock step. */
  workerIndex: number;
  /** Seed of `random` (tests); default: random. */
  seed?: number;
  /** Source hashing with balance_factor: the bound moved a request off its first choice. */
  onBoundDiversion?: () => void;
}

/** Control plane: may throw (bad region range, bad hash settings). */
export function createBalancer(upstream: UpstreamConfig, servers: readonly ServerSlot[], ctx: BalancerContext): Balancer {
  switch (upstream.balance) {
    case 'round-robin':
      return new RoundRobinBalancer(servers, ctx.workerIndex, ctx.region.view(ctx.base, servers.length));
    case 'least-conn':
      return new LeastConnBalancer(servers, ctx.region.view(ctx.base, servers.length), ctx.workerIndex);
    case 'random':
      return new RandomBalancer(servers, ctx.region.view(ctx.base, servers.length), ctx.seed);
    case 'source':
      return new SourceHashBalancer(servers, { region: ctx.region, base: ctx.base, balanceFactor: upstream.hash.balanceFactor, onBoundDiversion: ctx.onBoundDiversion });
  }
}
