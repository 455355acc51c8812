// Smooth weighted round-robin, as nginx does it (ngx_http_upstream_round_robin):
// every pick adds each server's weight to its running score, takes the highest
// score and subtracts the total weight from it. Weights 5:1:1 give
// a a b a c a a rather than a a a a a b c, so no server gets a burst.
// Servers that are not eligible (health in shared memory) or excluded take no
// part in a pick: their scores stand still.
import type { ServerView } from '../native.js';
import type { Balancer, PickContext, ServerSlot } from './types.js';

export class RoundRobinBalancer implements Balancer {
  private readonly scores: number[];

  /**
   * `offset` picks are made up front so workers do not move in lock step.
   * `health` (optional): the upstream's servers in the shared region.
   */
  constructor(
    private readonly servers: readonly ServerSlot[],
    offset = 0,
    private readonly health?: ServerView,
  ) {
    this.scores = servers.map(() => 0);
    for (let i = 0; i < offset % Math.max(1, this.totalWeight()); i++) this.pick(undefined);
  }

  pick(_ctx: PickContext | undefined, exclude?: ReadonlySet<ServerSlot>): ServerSlot | undefined {
    const { servers, scores, health } = this;
    if (health !== undefined && health.readHealth() === 0) return undefined;
    let best = -1;
    let total = 0;
    for (let i = 0; i < servers.length; i++) {
      const server = servers[i]!;
      if (health !== undefined && health.state[i]! < 0) continue;
      if (exclude !== undefined && exclude.has(server)) continue;
      // Slow start scales a recovering server's weight down for a while.
      const weight = health === undefined ? server.weight : server.weight * health.factor[i]!;
      scores[i]! += weight;
      total += weight;
      if (best < 0 || scores[i]! > scores[best]!) best = i;
    }
    if (best < 0) return undefined;
    scores[best]! -= total;
    return servers[best];
  }

  private totalWeight(): number {
    let total = 0;
    for (const s of this.servers) total += s.weight;
    return total;
  }
}
