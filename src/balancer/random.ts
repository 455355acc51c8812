// Weighted random: each pick draws a server with probability weight / total
// weight of the servers that are eligible (shared-memory health) and not
// excluded. The generator is mulberry32: fast, seedable for tests,
// and nothing here needs unpredictability.
import type { ServerView } from '../native.js';
import type { Balancer, PickContext, ServerSlot } from './types.js';

export class RandomBalancer implements Balancer {
  private state: number;

  constructor(
    private readonly servers: readonly ServerSlot[],
    private readonly health?: ServerView,
    seed: number = (Math.random() * 2 ** 32) >>> 0,
  ) {
    this.state = seed >>> 0;
  }

  pick(_ctx: PickContext | undefined, exclude?: ReadonlySet<ServerSlot>): ServerSlot | undefined {
    const { servers, health } = this;
    if (health !== undefined && health.readHealth() === 0) return undefined;
    let total = 0;
    for (let i = 0; i < servers.length; i++) if (this.usable(i, exclude)) total += this.weight(i);
    if (total === 0) return undefined;
    let r = this.next() * total;
    let last = -1;
    for (let i = 0; i < servers.length; i++) {
      if (!this.usable(i, exclude)) continue;
      last = i;
      r -= this.weight(i);
      if (r < 0) return servers[i];
    }
    return servers[last]; // rounding: r landed exactly on the total
  }

  /** The configured weight, scaled down during slow start. */
  private weight(i: number): number {
    const w = this.servers[i]!.weight;
    return this.health === undefined ? w : w * this.health.factor[i]!;
  }

  private usable(i: number, exclude: ReadonlySet<ServerSlot> | undefined): boolean {
    if (this.health !== undefined && this.health.state[i]! < 0) return false;
    return exclude === undefined || !exclude.has(this.servers[i]!);
  }

  /** mulberry32: a uniform double in [0, 1). */
  private next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
}
