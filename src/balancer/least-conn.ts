// Weighted least-connections over the whole process: the server with the
// fewest active requests per unit of weight, where "active" is the sum over
// every worker's slot in shared memory (the data path counts each upstream
// request in its own slot; this balancer only reads). One N-API call per pick
// reads all the upstream's counts and health (ServerView.readLoads).
//
// Ties (typically every server idle) are broken by smooth weighted
// round-robin among the tied servers, as nginx's least_conn does: at low load
// the weights still hold and servers take turns instead of the first one
// taking everything.
import type { ServerView } from '../native.js';
import type { Balancer, PickContext, ServerSlot } from './types.js';

export class LeastConnBalancer implements Balancer {
  /** Smooth round-robin scores, advanced only for the servers in a tie. */
  private readonly scores: number[];

  /** `offset` (the worker index) rotates the tie order so workers differ. */
  constructor(
    private readonly servers: readonly ServerSlot[],
    private readonly loads: ServerView,
    offset = 0,
  ) {
    this.scores = servers.map(() => 0);
    let totalWeight = 0;
    for (const s of servers) totalWeight += s.weight;
    loads.readLoads();
    for (let i = 0; i < offset % Math.max(1, totalWeight); i++) this.breakTie(-1, undefined);
  }

  pick(_ctx: PickContext | undefined, exclude?: ReadonlySet<ServerSlot>): ServerSlot | undefined {
    const { servers, loads } = this;
    if (loads.readLoads() === 0) return undefined;
    const load = loads.state;
    // load/weight compared as load_i * w_best < load_best * w_i (exact in integers outside slow start).
    let best = -1;
    for (let i = 0; i < servers.length; i++) {
      if (load[i]! < 0 || (exclude !== undefined && exclude.has(servers[i]!))) continue;
      if (best < 0 || load[i]! * this.weight(best) < load[best]! * this.weight(i)) best = i;
    }
    return best < 0 ? undefined : servers[this.breakTie(best, exclude)];
  }

  /** The configured weight, scaled down during slow start (0 when not eligible). */
  private weight(i: number): number {
    return this.servers[i]!.weight * this.loads.factor[i]!;
  }

  /** Smooth weighted round-robin among the servers tied with `best` (-1: among all). */
  private breakTie(best: number, exclude: ReadonlySet<ServerSlot> | undefined): number {
    const { servers, scores } = this;
    const load = this.loads.state;
    let chosen = -1;
    let total = 0;
    for (let i = 0; i < servers.length; i++) {
      const server = servers[i]!;
      if (best >= 0) {
        if (load[i]! < 0 || (exclude !== undefined && exclude.has(server))) continue;
        if (load[i]! * this.weight(best) !== load[best]! * this.weight(i)) continue;
      }
      const weight = this.weight(i);
      scores[i]! += weight;
      total += weight;
      if (chosen < 0 || scores[i]! > scores[chosen]!) chosen = i;
    }
    if (chosen >= 0) scores[chosen]! -= total;
    return chosen;
  }
}
