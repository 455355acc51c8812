// `source`: Maglev consistent hashing (native/maglev.h) of the client address,
// or of a header or cookie value (PickContext.key, see hash-key.ts). The
// table is built from the servers' addresses and weights, so every worker and
// every Switchyard instance with the same servers maps a key identically,
// whatever their order in the config.
//
// A server that is not eligible in shared memory keeps its table entries and
// its keys walk to their next preference (strategy (b) in maglev.h): only
// that server's clients move, and they come back when it recovers. The same
// walk skips servers a retry already tried, and, with `hash.balance_factor`,
// servers over their bounded load (computed natively from all workers' counts).
import { MaglevTable, type SharedRegion } from '../native.js';
import type { Balancer, PickContext, ServerSlot } from './types.js';

export interface SourceHashOptions {
  /** The upstream's servers in shared memory: region servers base..base+n-1. */
  region?: SharedRegion;
  base?: number;
  /** Bounded loads (> 1), as `hash.balance_factor`; needs `region`. */
  balanceFactor?: number;
  /** With balanceFactor: called when the bound sent a request to another server than its first choice (issue 14). */
  onBoundDiversion?: () => void;
}

export class SourceHashBalancer implements Balancer {
  private readonly table: MaglevTable;
  /** Reused exclude mask (one byte per server), filled only for retries. */
  private readonly mask: Uint8Array;
  /**
   * With bounded loads, the same table without the bound: its answer is the
   * key's first choice among the eligible servers, so a different answer from
   * the bounded table is a request the bound moved. A second lookup (tens of
   * ns) only on upstreams with balance_factor, and no change to the native table.
   */
  private readonly unbounded: MaglevTable | undefined;
  private readonly onBoundDiversion: (() => void) | undefined;

  constructor(
    private readonly servers: readonly ServerSlot[],
    opts: SourceHashOptions = {},
  ) {
    this.table = MaglevTable.build(
      servers.map((s) => s.address),
      servers.map((s) => s.weight),
    );
    if (opts.region !== undefined) {
      this.table.useHealth(opts.region, opts.base ?? 0, { balanceFactor: opts.balanceFactor });
      if (opts.balanceFactor !== undefined && opts.onBoundDiversion !== undefined) {
        this.unbounded = MaglevTable.build(
          servers.map((s) => s.address),
          servers.map((s) => s.weight),
        );
        this.unbounded.useHealth(opts.region, opts.base ?? 0);
        this.onBoundDiversion = opts.onBoundDiversion;
      }
    } else if (opts.balanceFactor !== undefined) {
      throw new TypeError('bounded loads need the shared region (active request counts)');
    }
    this.mask = new Uint8Array(servers.length);
  }

  pick(ctx: PickContext, exclude?: ReadonlySet<ServerSlot>): ServerSlot | undefined {
    let mask: Uint8Array | undefined;
    if (exclude !== undefined && exclude.size > 0) {
      mask = this.mask;
      mask.fill(0);
      for (const s of exclude) if (this.servers[s.index] === s) mask[s.index] = 1;
    }
    const i = ctx.key !== undefined ? this.table.lookupKey(ctx.key, mask) : this.table.lookupIp(ctx.clientIp, mask);
    if (this.unbounded !== undefined && i >= 0) {
      const first = ctx.key !== undefined ? this.unbounded.lookupKey(ctx.key, mask) : this.unbounded.lookupIp(ctx.clientIp, mask);
      if (first !== i) this.onBoundDiversion!();
    }
    return i < 0 ? undefined : this.servers[i];
  }
}
