// MaglevTable: an immutable Maglev consistent-hash table (native/maglev.h),
// optionally bound to a region's health and loads.
import { addon, type NativeMaglev } from './addon.js';
import { nativeRegion, type SharedRegion } from './region.js';

export interface MaglevOptions {
  /** Prime table size; default: smallest prime >= max(65537, 100 x servers). */
  size?: number;
  /** Strategy (a), rebuild: servers marked false claim no entries. */
  eligible?: readonly boolean[];
}

/**
 * An immutable Maglev table over an upstream's servers (indices 0..n-1 in the
 * order given; the table itself does not depend on that order). Lookups
 * return a server index, or -1 when no server can take the key.
 */
export class MaglevTable {
  readonly size: number;

  private constructor(private readonly native: NativeMaglev) {
    this.size = native.size();
  }

  /** Throws TypeError on invalid input (duplicate identity, bad size, lengths). */
  static build(identities: readonly string[], weights: readonly number[], opts: MaglevOptions = {}): MaglevTable {
    const { Maglev } = addon();
    return new MaglevTable(new Maglev(identities, weights, opts.size ?? 0, opts.eligible));
  }

  /**
   * Strategy (b), fallback: lookups skip servers the region says are not
   * eligible (unhealthy, drained, ejected), reading server `base + i` for
   * table server i, and take the key's next preference instead. null unbinds.
   * The table keeps that region mapped: rebind (or rebuild) after a region swap.
   *
   * `balanceFactor` (> 1, e.g. 1.25; absent = off) bounds loads: a server
   * whose active requests (all workers) reach ceil(factor x (total + 1) x
   * weight / eligible weight) passes the key to its next preference.
   */
  useHealth(region: SharedRegion | null, base = 0, opts: { balanceFactor?: number } = {}): void {
    this.native.bindHealth(region ? nativeRegion(region) : null, base, opts.balanceFactor);
  }

  // `exclude` (optional, all lookups): a Uint8Array with one byte per server,
  // non-zero for servers to walk past (already tried by this request).

  /** Client address ("1.2.3.4", "::1", "::ffff:1.2.3.4"); a non-address string is hashed as a key. */
  lookupIp(ip: string, exclude?: Uint8Array): number {
    return this.native.lookupIp(ip, exclude);
  }

  /** IPv4 as the integer a<<24|b<<16|c<<8|d (no string parse). */
  lookupIpv4(addr: number, exclude?: Uint8Array): number {
    return this.native.lookupIpv4(addr, exclude);
  }

  /** Any string key (header / cookie value). */
  lookupKey(key: string, exclude?: Uint8Array): number {
    return this.native.lookupKey(key, exclude);
  }

  /** A copy of the table (server index per entry), for tests and what-if answers (balancer/maglev-change.ts). */
  entries(): Int32Array {
    return this.native.entries();
  }
}

