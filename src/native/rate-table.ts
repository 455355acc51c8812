// RateTable: token buckets in their own shared-memory segment
// (native/rate_limit.h), exact across every process that maps it.
import { addon, type NativeRateTable } from './addon.js';

/** "/switchyard-<pid>-rl": the rate-limit segment of the primary `pid`. */
export function rateTableName(pid: number = process.pid): string {
  return `/switchyard-${pid}-rl`;
}

export interface RateTableStats {
  /** Buckets holding a key (a scan of the whole table: for status and tests). */
  used: number;
  /** Buckets taken over from another key. */
  evictions: number;
  /** Group locks taken over from a process that died holding them. */
  lockSteals: number;
  /** Group locks taken over after one hold of over 0.5 s (a hung or pid-reused holder; never expected). */
  lockTimeouts: number;
}

/**
 * Token buckets in their own shared-memory segment (native/rate_limit.h): a
 * fixed table of `slots` buckets, exact across every process that maps it.
 * The primary creates it (and unlinks it on exit); workers attach by name.
 * A key's bucket is found among 8 in its group; a missing key evicts a
 * refilled bucket, else the least recently used one of the group.
 */
export class RateTable {
  readonly name: string;
  /** Buckets in the table (the requested count rounded up to a multiple of 8). */
  readonly slots: number;
  /** Size of the segment, fixed for its lifetime. */
  readonly bytes: number;
  /**
   * The last take's decision: [allowed (0/1), remaining whole tokens,
   * retry-after ms (0 when allowed), ms until full]. Overwritten by each take.
   */
  readonly out: Float64Array;

  private constructor(private readonly native: NativeRateTable) {
    const info = native.info();
    this.name = info.name;
    this.slots = info.slots;
    this.bytes = info.bytes;
    this.out = new Float64Array(native.buffer);
  }

  /**
   * Creates a segment (mode 0600). With the default name, a leftover of the
   * same name is removed first: it embeds this process's pid, so its creator
   * is dead.
   */
  static create(slots: number, opts: { name?: string } = {}): RateTable {
    const name = opts.name ?? rateTableName();
    if (opts.name === undefined) addon().RateTable.unlink(name);
    return new RateTable(addon().RateTable.create(name, slots));
  }

  static attach(name: string): RateTable {
    return new RateTable(addon().RateTable.attach(name));
  }

  /** Removes a segment name; false if it did not exist. Mappings stay valid. */
  static unlink(name: string): boolean {
    return addon().RateTable.unlink(name);
  }

  /** Removes /dev/shm/switchyard-<pid>-rl segments of dead processes; returns their names. */
  static sweepStale(): string[] {
    return addon().RateTable.sweepStale();
  }

  /**
   * Takes `cost` tokens from the bucket of (route, key), which refills at
   * `ratePerSec` up to `burst`; fills `out` and returns whether it was
   * allowed. A negative cost gives tokens back (never above the burst).
   * Keys and routes are hashed whole and exactly: latin1 strings (header
   * values) as their bytes, others as UTF-16. Throws TypeError unless
   * ratePerSec is finite and > 0, 0 < burst <= 1e9 and
   * -burst <= cost <= burst. `nowMs` (tests only) replaces the
   * CLOCK_MONOTONIC reading.
   */
  take(route: string, key: string, ratePerSec: number, burst: number, cost = 1, nowMs?: number): boolean {
    return this.native.take(route, key, ratePerSec, burst, cost, nowMs);
  }

  stats(): RateTableStats {
    return this.native.stats();
  }

  /** Drops this handle (the mapping goes with the last handle). */
  close(): void {
    this.native.close();
  }

  /** Removes this segment's name (the primary, on exit). */
  unlink(): boolean {
    return RateTable.unlink(this.name);
  }
}
