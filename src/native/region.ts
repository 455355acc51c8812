// SharedRegion: the POSIX shared-memory segment (native/shm_region.h) of
// per-server x per-worker-slot counters and per-server health words, and
// ServerView, one upstream's servers read in one call (what balancers pick
// from). Hot-path methods take and return plain numbers and throw only for
// programming errors (TypeError / RangeError: wrong types, index out of range).
import { ErrorCode, SwitchyardError } from '../errors.js';
import { addon, type NativeRegion, type NativeView } from './addon.js';
import { Counter, DRAINED, HEALTHY } from './layout.js';

/** Native handles of regions, for MaglevTable.useHealth (kept off the public API). */
const regionHandles = new WeakMap<SharedRegion, NativeRegion>();

/** The native handle of a region (maglev.ts binds tables to it). */
export function nativeRegion(region: SharedRegion): NativeRegion {
  return regionHandles.get(region)!;
}

/** Default maximum of worker slots in a region. */
export const DEFAULT_SLOTS = 64;

/** "/switchyard-<pid>" for generation 0, "/switchyard-<pid>-<gen>" after reloads. */
export function regionName(pid: number = process.pid, generation = 0): string {
  return generation === 0 ? `/switchyard-${pid}` : `/switchyard-${pid}-${generation}`;
}

export interface RegionOptions {
  /** Worker slots (maximum concurrent workers); default 64. */
  slots?: number;
  /** Default 0; part of the default name. */
  generation?: number;
  /** Default regionName(process.pid, generation). */
  name?: string;
}

/**
 * A handle on the shared segment. The primary creates it and passes `name` to
 * workers, which attach(name, identities). Each worker writes only its own
 * slot; the primary calls zeroSlot(slot) before a replacement worker starts in
 * that slot. Server indices are positions in the identity list given to
 * create() (a flat list over all upstreams).
 *
 * Reload with a changed server list: the primary calls createNext(identities),
 * which copies every slot's counters and the health of servers that stay
 * (matched by identity); the replacement workers attach the new generation,
 * while draining workers keep the one they started with until they exit
 * (cluster/shared-state.ts).
 */
export class SharedRegion {
  readonly name: string;
  readonly servers: number;
  readonly slots: number;
  readonly generation: number;
  /** Server identities ("host:port"), by server index. */
  readonly identities: readonly string[];

  private constructor(private readonly native: NativeRegion) {
    regionHandles.set(this, native);
    const info = native.info();
    this.name = info.name;
    this.servers = info.servers;
    this.slots = info.slots;
    this.generation = info.generation;
    this.identities = Object.freeze(native.identities());
  }

  /**
   * Creates a segment (mode 0600). With the default name, a leftover segment
   * of the same name is removed first: it embeds this process's pid, so its
   * creator is dead.
   */
  static create(identities: readonly string[], opts: RegionOptions = {}): SharedRegion {
    const generation = opts.generation ?? 0;
    const name = opts.name ?? regionName(process.pid, generation);
    if (opts.name === undefined) addon().Region.unlink(name);
    return new SharedRegion(addon().Region.create(name, identities, opts.slots ?? DEFAULT_SLOTS, generation));
  }

  /** Maps an existing segment; throws if `expect` is given and the identities differ. */
  static attach(name: string, expect?: readonly string[]): SharedRegion {
    const region = new SharedRegion(addon().Region.attach(name));
    if (expect && !sameList(expect, region.identities)) {
      region.close();
      throw new SwitchyardError(ErrorCode.RegionMismatch, `shared region ${name} holds servers [${region.identities.join(', ')}], expected [${expect.join(', ')}]`);
    }
    return region;
  }

  /** Removes a segment name; false if it did not exist. Mappings stay valid. */
  static unlink(name: string): boolean {
    return addon().Region.unlink(name);
  }

  /** Removes /dev/shm/switchyard-<pid>[-<gen>] segments of dead processes; returns their names. */
  static sweepStale(): string[] {
    return addon().Region.sweepStale();
  }

  /** A new region (next generation, this process's pid) for a changed server list, with counts and health copied. */
  createNext(identities: readonly string[], opts: { slots?: number } = {}): SharedRegion {
    const next = SharedRegion.create(identities, { slots: opts.slots ?? this.slots, generation: this.generation + 1 });
    next.native.copyFrom(this.native, -1);
    return next;
  }

  add(counter: Counter, server: number, slot: number, delta: number): void {
    this.native.add(counter, server, slot, delta);
  }

  /** One slot's value. */
  read(counter: Counter, server: number, slot: number): number {
    return this.native.read(counter, server, slot);
  }

  /** Summed over all worker slots. */
  sum(counter: Counter, server: number): number {
    return this.native.sum(counter, server);
  }

  /** Zeroes every counter of a slot: the primary, before a worker (re)starts in it. */
  zeroSlot(slot: number): void {
    this.native.zeroSlot(slot);
  }

  // Health words. State changes are read-modify-write: one writer (the primary).
  healthy(server: number): boolean {
    return (this.native.state(server) & HEALTHY) !== 0;
  }

  setHealthy(server: number, healthy: boolean): void {
    const s = this.native.state(server);
    this.native.setState(server, healthy ? s | HEALTHY : s & ~HEALTHY);
  }

  drained(server: number): boolean {
    return (this.native.state(server) & DRAINED) !== 0;
  }

  setDrained(server: number, drained: boolean): void {
    const s = this.native.state(server);
    this.native.setState(server, drained ? s | DRAINED : s & ~DRAINED);
  }

  /** Passive ejection deadline (Unix ms, Date.now() clock); 0 = not ejected. */
  ejectedUntil(server: number): number {
    return this.native.ejectUntil(server);
  }

  setEjectedUntil(server: number, unixMs: number): void {
    this.native.setEjectUntil(server, unixMs);
  }

  /** Passive health: a failure seen by any worker; returns the consecutive-failure streak. */
  recordFailure(server: number): number {
    return this.native.recordFailure(server);
  }

  /** A success ends the server's failure streak. */
  recordSuccess(server: number): void {
    this.native.recordSuccess(server);
  }

  /** Slow start: the share of its weight the server takes, (0, 1]; 1 ends the ramp. */
  setWeightFactor(server: number, factor: number): void {
    this.native.setRampPermille(server, Math.max(1, Math.min(1000, Math.round(factor * 1000))));
  }

  /** How many times the server has been ejected (the ejection time grows with it). */
  ejections(server: number): number {
    return this.native.ejections(server);
  }

  /**
   * Ejects the server until `untilUnixMs` if its streak is still
   * `streakSeen` (claiming it); false when another worker got there first.
   */
  tryEject(server: number, streakSeen: number, untilUnixMs: number): boolean {
    return this.native.tryEject(server, streakSeen, untilUnixMs);
  }

  /**
   * A view on servers first..first+count-1 (one upstream) for balancers: one
   * N-API call reads the health, or health and active requests, of all of
   * them. Keeps the mapping alive, like countersView().
   */
  view(first: number, count: number): ServerView {
    return new ServerView(this.native.view(first, count), count);
  }

  /** Drops this handle; other handles, views and bound tables keep the mapping. */
  close(): void {
    this.native.close();
  }

  /** Removes this region's name (the primary, on exit or after a reload). */
  unlink(): boolean {
    return SharedRegion.unlink(this.name);
  }
}

/**
 * Per-server state of one upstream, read from the region in one call.
 * After readHealth(), state[i] is -1 for a server that may not take traffic
 * (unhealthy, drained, ejected) and 0 otherwise; after readLoads(), the
 * eligible servers hold their active requests summed over all workers'
 * slots instead of 0. Sums read only the slots ever written (a region-wide
 * high-water mark), so they cost what the running workers cost.
 */
export class ServerView {
  readonly state: Float64Array;
  /** After either read: each server's weight factor, (0, 1] while eligible (slow start), 0 otherwise. */
  readonly factor: Float64Array;

  /** @internal Made by SharedRegion.view(). */
  constructor(
    private readonly native: NativeView,
    readonly count: number,
  ) {
    this.state = new Float64Array(native.buffer, 0, count);
    this.factor = new Float64Array(native.buffer, count * 8, count);
  }

  /** Fills `state` with -1 / 0; returns the number of eligible servers. */
  readHealth(): number {
    return this.native.readHealth();
  }

  /** Fills `state` with -1 / active requests; returns the number of eligible servers. */
  readLoads(): number {
    return this.native.readLoads();
  }
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

