// TypeScript reference of the native Maglev table (native/maglev.{h,cc}) and
// key hash (native/hash.h): the same algorithm, written plainly with BigInt,
// for tests (native and reference must produce identical tables and picks)
// and benchmarks. Not used on the data path. See native/maglev.h for the
// algorithm, weights, ordering and the two ineligibility strategies.
import { isIPv4, isIPv6 } from 'node:net';

const M64 = (1n << 64n) - 1n;
const P1 = 0x9e3779b185ebca87n;
const P2 = 0xc2b2ae3d27d4eb4fn;
const P3 = 0x165667b19e3779f9n;
const P4 = 0x85ebca77c2b2ae63n;
const P5 = 0x27d4eb2f165667c5n;

export const KEY_SEED = 0x5357594b45593031n;
export const OFFSET_SEED = 0x5357594f46463031n;
export const SKIP_SEED = 0x535759534b503031n;
export const MIN_TABLE_SIZE = 65537;
export const MAX_PROBES = 16;

const rotl = (x: bigint, r: bigint): bigint => ((x << r) | (x >> (64n - r))) & M64;
const mul = (a: bigint, b: bigint): bigint => (a * b) & M64;
const add = (a: bigint, b: bigint): bigint => (a + b) & M64;
const round = (acc: bigint, input: bigint): bigint => mul(rotl(add(acc, mul(input, P2)), 31n), P1);
const mergeRound = (acc: bigint, val: bigint): bigint => add(mul(acc ^ round(0n, val), P1), P4);

/** XXH64 of `data` with `seed` (the xxHash specification). */
export function xxh64(data: Uint8Array, seed: bigint): bigint {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const len = data.length;
  let p = 0;
  let h: bigint;
  if (len >= 32) {
    let v1 = add(add(seed, P1), P2);
    let v2 = add(seed, P2);
    let v3 = seed;
    let v4 = (seed - P1) & M64;
    for (; p + 32 <= len; p += 32) {
      v1 = round(v1, view.getBigUint64(p, true));
      v2 = round(v2, view.getBigUint64(p + 8, true));
      v3 = round(v3, view.getBigUint64(p + 16, true));
      v4 = round(v4, view.getBigUint64(p + 24, true));
    }
    h = add(add(rotl(v1, 1n), rotl(v2, 7n)), add(rotl(v3, 12n), rotl(v4, 18n)));
    h = mergeRound(mergeRound(mergeRound(mergeRound(h, v1), v2), v3), v4);
  } else {
    h = add(seed, P5);
  }
  h = add(h, BigInt(len));
  for (; p + 8 <= len; p += 8) {
    h ^= round(0n, view.getBigUint64(p, true));
    h = add(mul(rotl(h, 27n), P1), P4);
  }
  if (p + 4 <= len) {
    h ^= mul(BigInt(view.getUint32(p, true)), P1);
    h = add(mul(rotl(h, 23n), P2), P3);
    p += 4;
  }
  for (; p < len; p++) {
    h ^= mul(BigInt(data[p]!), P5);
    h = mul(rotl(h, 11n), P1);
  }
  h ^= h >> 33n;
  h = mul(h, P2);
  h ^= h >> 29n;
  h = mul(h, P3);
  return h ^ (h >> 32n);
}

/** Hash of a string key (UTF-8 bytes), as native hashKey(). */
export function hashKey(key: string): bigint {
  return xxh64(Buffer.from(key, 'utf8'), KEY_SEED);
}

/** Network-order bytes of an IP literal, IPv4-mapped IPv6 folded to IPv4; undefined if not an IP. */
export function ipBytes(ip: string): Uint8Array | undefined {
  if (isIPv4(ip)) return Uint8Array.from(ip.split('.').map(Number));
  if (!isIPv6(ip) || ip.includes('%')) return undefined;
  const mapped = /^(.*:)(\d+\.\d+\.\d+\.\d+)$/.exec(ip);
  // Expand an embedded dotted quad into two hex groups, then the "::" gap.
  const text = mapped ? mapped[1]! + dottedToHex(mapped[2]!) : ip;
  const [head = '', tail] = text.split('::');
  const groups = (s: string): string[] => (s === '' ? [] : s.split(':'));
  const hi = groups(head);
  const lo = tail === undefined ? [] : groups(tail);
  const all = [...hi, ...new Array<string>(8 - hi.length - lo.length).fill('0'), ...lo];
  const out = new Uint8Array(16);
  all.forEach((g, i) => {
    const v = parseInt(g, 16);
    out[2 * i] = v >> 8;
    out[2 * i + 1] = v & 0xff;
  });
  const isMapped = out.subarray(0, 10).every((b) => b === 0) && out[10] === 0xff && out[11] === 0xff;
  return isMapped ? out.slice(12) : out;
}

function dottedToHex(quad: string): string {
  const [a, b, c, d] = quad.split('.').map(Number) as [number, number, number, number];
  return `${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
}

/** Hash of an IP literal as native hashIp(); a non-IP string hashes as a key (as lookupIp does). */
export function hashIp(ip: string): bigint {
  const bytes = ipBytes(ip);
  return bytes ? xxh64(bytes, KEY_SEED) : hashKey(ip);
}

/** Hash of an IPv4 address given as a u32 (a<<24|b<<16|c<<8|d). */
export function hashIpv4(addr: number): bigint {
  return xxh64(Uint8Array.of(addr >>> 24, (addr >>> 16) & 0xff, (addr >>> 8) & 0xff, addr & 0xff), KEY_SEED);
}

/** The probe sequence of strategy (b): splitmix64's finaliser. */
export function rehash(h: bigint): bigint {
  h = add(h, 0x9e3779b97f4a7c15n);
  h = mul(h ^ (h >> 30n), 0xbf58476d1ce4e5b9n);
  h = mul(h ^ (h >> 27n), 0x94d049bb133111ebn);
  return h ^ (h >> 31n);
}

function isPrime(n: number): boolean {
  if (n < 2) return false;
  if (n % 2 === 0) return n === 2;
  for (let d = 3; d * d <= n; d += 2) if (n % d === 0) return false;
  return true;
}

/** Smallest prime >= max(65537, 100 x servers). */
export function chooseSize(servers: number): number {
  let n = Math.max(MIN_TABLE_SIZE, servers * 100);
  while (!isPrime(n)) n++;
  return n;
}

export interface ReferenceBuildOptions {
  /** Prime table size; default chooseSize(identities.length). */
  size?: number;
  /** Strategy (a): false = the server claims no entries. Default all true. */
  eligible?: readonly boolean[];
}

export class MaglevReference {
  private constructor(
    readonly entries: Int32Array,
    private readonly claims: readonly boolean[],
  ) {}

  static build(
    identities: readonly string[],
    weights: readonly number[],
    opts: ReferenceBuildOptions = {},
  ): MaglevReference {
    const n = identities.length;
    const m = opts.size ?? chooseSize(n);
    if (weights.length !== n) throw new TypeError('identities and weights must have the same length');
    if (!isPrime(m) || m < n || m < 3) throw new TypeError('table size must be a prime >= 3 and >= servers');
    const bytes = identities.map((id) => Buffer.from(id, 'utf8'));
    const order = identities.map((_, i) => i).sort((a, b) => Buffer.compare(bytes[a]!, bytes[b]!));
    for (let i = 1; i < n; i++) {
      if (bytes[order[i]!]!.equals(bytes[order[i - 1]!]!)) throw new TypeError(`duplicate server identity: ${identities[order[i]!]}`);
    }
    const claims = identities.map((_, i) => weights[i]! > 0 && (opts.eligible?.[i] ?? true));
    const fillers = order
      .filter((i) => claims[i])
      .map((i) => ({
        index: i,
        weight: weights[i]!,
        skip: Number(xxh64(bytes[i]!, SKIP_SEED) % BigInt(m - 1)) + 1,
        pos: Number(xxh64(bytes[i]!, OFFSET_SEED) % BigInt(m)),
      }));
    const entries = new Int32Array(m).fill(-1);
    let filled = 0;
    while (fillers.length > 0 && filled < m) {
      for (const f of fillers) {
        for (let turn = 0; turn < f.weight && filled < m; turn++) {
          while (entries[f.pos]! >= 0) f.pos = (f.pos + f.skip) % m;
          entries[f.pos] = f.index;
          f.pos = (f.pos + f.skip) % m;
          filled++;
        }
        if (filled === m) break;
      }
    }
    return new MaglevReference(entries, claims);
  }

  get size(): number {
    return this.entries.length;
  }

  /** Server index for a 64-bit key hash, or -1. */
  lookup(hash: bigint): number {
    return this.entries[Number(hash % BigInt(this.entries.length))]!;
  }

  /** Strategy (b): the key's next eligible preference, or -1. */
  lookupEligible(hash: bigint, eligible: (server: number) => boolean): number {
    if (this.claims.length === 0) return -1;
    let h = hash;
    for (let probe = 0; probe <= MAX_PROBES; probe++) {
      const s = this.lookup(h);
      if (s >= 0 && eligible(s)) return s;
      h = rehash(h);
    }
    const n = this.claims.length;
    const start = Number(hash % BigInt(n));
    for (let i = 0; i < n; i++) {
      const s = (start + i) % n;
      if (this.claims[s] && eligible(s)) return s;
    }
    return -1;
  }

  lookupIp(ip: string): number {
    return this.lookup(hashIp(ip));
  }

  lookupKey(key: string): number {
    return this.lookup(hashKey(key));
  }
}
