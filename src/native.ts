// The only module that loads the C++ addon (build/Release/switchyard.node,
// built by `node-gyp rebuild` on npm install). Typed wrappers:
//
//   SharedRegion  the POSIX shared-memory segment (native/shm_region.h):
//                 per-server x per-worker-slot counters, per-server health.
//   ServerView    one upstream's servers in the region, read in one call
//                 (health, active requests): what balancers pick from.
//   MaglevTable   an immutable Maglev consistent-hash table (native/maglev.h).
//   RateTable     shared token buckets for rate limits (native/rate_limit.h).
//   hashKey / hashIp / chooseSize: the key hash and table size, for tests.
//   peerHasClosed: FIN/RST on a paused socket (native/socket_peer.h).
//
// Hot-path methods (counter add/sum, lookups) take and return plain numbers
// and never throw for valid indices; they throw TypeError / RangeError only
// for programming errors (wrong argument types, index out of range).
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import type { Socket } from 'node:net';

interface NativeRegionInfo {
  name: string;
  servers: number;
  slots: number;
  generation: number;
  lineBytes: number;
}

interface NativeRegion {
  close(): void;
  info(): NativeRegionInfo;
  identities(): string[];
  add(counter: number, server: number, slot: number, delta: number): void;
  read(counter: number, server: number, slot: number): number;
  sum(counter: number, server: number): number;
  zeroSlot(slot: number): void;
  state(server: number): number;
  setState(server: number, bits: number): void;
  ejectUntil(server: number): number;
  setEjectUntil(server: number, unixMs: number): void;
  recordFailure(server: number): number;
  recordSuccess(server: number): void;
  ejections(server: number): number;
  tryEject(server: number, streakSeen: number, untilUnixMs: number): boolean;
  setRampPermille(server: number, permille: number): void;
  eligible(server: number): boolean;
  copyFrom(other: NativeRegion, slot: number): number;
  countersBuffer(): ArrayBuffer;
  view(first: number, count: number): NativeView;
}

interface NativeView {
  readHealth(): number;
  readLoads(): number;
  buffer: ArrayBuffer;
}

interface NativeRegionStatic {
  create(name: string, identities: readonly string[], slots: number, generation: number): NativeRegion;
  attach(name: string): NativeRegion;
  unlink(name: string): boolean;
  sweepStale(): string[];
}

interface NativeMaglev {
  size(): number;
  entries(): Int32Array;
  bindHealth(region: NativeRegion | null, base?: number, balanceFactor?: number): void;
  lookupIp(ip: string, exclude?: Uint8Array): number;
  lookupIpv4(addr: number, exclude?: Uint8Array): number;
  lookupKey(key: string, exclude?: Uint8Array): number;
}

interface NativeRateTable {
  take(route: string, key: string, ratePerSec: number, burst: number, cost: number, nowMs?: number): boolean;
  info(): { name: string; slots: number; bytes: number };
  stats(): RateTableStats;
  close(): void;
  buffer: ArrayBuffer;
}

interface NativeRateTableStatic {
  create(name: string, slots: number): NativeRateTable;
  attach(name: string): NativeRateTable;
  unlink(name: string): boolean;
  sweepStale(): string[];
}

interface NativeAddon {
  Region: NativeRegionStatic;
  RateTable: NativeRateTableStatic;
  Maglev: new (
    identities: readonly string[],
    weights: readonly number[],
    size: number,
    eligible: readonly boolean[] | undefined,
  ) => NativeMaglev;
  hashKey(key: string): bigint;
  hashIp(ip: string): bigint | null;
  chooseSize(servers: number): number;
  peerClosed(fd: number): boolean;
  layout: { lineBytes: number; counters: number; healthy: number; drained: number };
}

let loaded: NativeAddon | undefined;
const ADDON_EXPORTS: ReadonlyArray<keyof NativeAddon> = ['Region', 'RateTable', 'Maglev', 'hashKey', 'hashIp', 'chooseSize', 'peerClosed', 'layout'];

/** Loads the addon once; throws an Error saying how to build it if it is missing. */
function addon(): NativeAddon {
  if (loaded) return loaded;
  // src/native.ts and dist/native.js both sit one level below the package root.
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
  const require = createRequire(import.meta.url);
  const tried: string[] = [];
  for (const flavour of ['Release', 'Debug']) {
    const file = path.join(root, 'build', flavour, 'switchyard.node');
    let candidate: NativeAddon;
    try {
      candidate = require(file) as NativeAddon;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'MODULE_NOT_FOUND' && code !== 'ERR_DLOPEN_FAILED') throw err;
      tried.push(`${file}: ${(err as Error).message.split('\n')[0]}`);
      continue;
    }
    // A build left from an older checkout loads fine and fails later, in a worker, on a missing export: say so now.
    const missing = ADDON_EXPORTS.filter((name) => candidate[name] === undefined);
    if (missing.length > 0) {
      throw new Error(`Switchyard native addon ${file} is older than this code (no ${missing.join(', ')}): rebuild it with \`npm run install\` in ${root}.`);
    }
    return (loaded = candidate);
  }
  throw new Error(
    'Switchyard native addon is missing or does not load (needed for shared counters and hashing).\n' +
      `Build it with \`npm install\` (or \`npm rebuild\`) in ${root}; it needs a C++ compiler and make.\n` +
      `Tried:\n  ${tried.join('\n  ')}`,
  );
}

/** Counter kinds in each (server, worker slot) cell. */
export const Counter = {
  ActiveConnections: 0,
  ActiveRequests: 1,
  RequestsTotal: 2,
  Failures: 3,
  /** Retry attempts sent to the server: the cluster-wide retry budget reads these. */
  Retries: 4,
} as const;
export type Counter = (typeof Counter)[keyof typeof Counter];

const HEALTHY = 1;
const DRAINED = 2;

/** Native handles of regions, for MaglevTable.useHealth (kept off the public API). */
const regionHandles = new WeakMap<SharedRegion, NativeRegion>();

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
      throw new Error(`shared region ${name} holds servers [${region.identities.join(', ')}], expected [${expect.join(', ')}]`);
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

  /** Copies one slot's counters from `old` for servers present in both; returns how many matched. */
  copySlotFrom(old: SharedRegion, slot: number): number {
    return this.native.copyFrom(old.native, slot);
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

  addActiveConnections(server: number, slot: number, delta: number): void {
    this.native.add(Counter.ActiveConnections, server, slot, delta);
  }

  addActiveRequests(server: number, slot: number, delta: number): void {
    this.native.add(Counter.ActiveRequests, server, slot, delta);
  }

  activeConnections(server: number): number {
    return this.native.sum(Counter.ActiveConnections, server);
  }

  activeRequests(server: number): number {
    return this.native.sum(Counter.ActiveRequests, server);
  }

  requestsTotal(server: number): number {
    return this.native.sum(Counter.RequestsTotal, server);
  }

  failures(server: number): number {
    return this.native.sum(Counter.Failures, server);
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

  /** Healthy, not drained, not ejected now: may take new traffic. */
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

  eligible(server: number): boolean {
    return this.native.eligible(server);
  }

  /**
   * A zero-copy view of all counters: value of (counter, server, slot) is at
   * index ((server * slots + slot) * 8 + counter). Reads race benignly with
   * writers (aligned 64-bit loads; Atomics.load also works on this non-shared
   * buffer); the view keeps the mapping alive after close() until it is
   * garbage-collected. Read-only by convention: writes go through add().
   * For bulk snapshots (metrics, status); on the hot path sum() is faster,
   * since summing BigInts in JS allocates (bench/native-lookup.ts).
   */
  countersView(): BigUint64Array {
    return new BigUint64Array(this.native.countersBuffer());
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
    this.native.bindHealth(region ? regionHandles.get(region)! : null, base, opts.balanceFactor);
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

/** The 64-bit key hash of a string (XXH64, fixed seed). */
export function hashKey(key: string): bigint {
  return addon().hashKey(key);
}

/** The 64-bit hash of an IP literal (IPv4-mapped IPv6 as IPv4), or undefined if not an IP. */
export function hashIp(ip: string): bigint | undefined {
  return addon().hashIp(ip) ?? undefined;
}

/** The default Maglev table size for a number of servers. */
export function chooseSize(servers: number): number {
  return addon().chooseSize(servers);
}

/**
 * Whether the client of a socket whose reading is paused has already sent
 * FIN or RST (Node reports neither until it reads). Reads the descriptor
 * from libuv's TCP handle, the one internal this relies on.
 */
export function peerHasClosed(socket: Socket): boolean {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 && addon().peerClosed(fd);
}

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
