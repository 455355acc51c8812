// What a change of an upstream's server list does to its clients, computed
// from the real Maglev tables (the native builder the `source` balancer
// uses), built aside: the live tables are never touched. For the other
// balancers, which keep no client on a server, only the weight shares.
//
// A client's key hash h lands on entry h mod size. With the same table size
// before and after, the share of clients that move is exactly the share of
// entries whose server changed. Table sizes are primes, so when the size
// changes (past 655 servers) the two entry indexes of a uniform 64-bit hash are
// independent (Chinese remainder theorem): a client moves from a to b with
// probability share_before(a) x share_after(b).
import { MaglevTable } from '../native.js';

export interface WeightedServer {
  address: string;
  weight: number;
}

/** A server in either list: weight 0 and share 0 where it is absent. */
export interface ServerShareChange {
  address: string;
  weight: { before: number; after: number };
  share: { before: number; after: number };
}

export interface ClientFlow {
  from: string;
  to: string;
  /** Share of all clients (of the key space) that move from `from` to `to`. */
  share: number;
}

export interface HashedChange {
  /** Share of clients (of the key space) mapped to another server after the change. */
  moved: number;
  /** Largest first. */
  flows: ClientFlow[];
  servers: ServerShareChange[];
  tableSize: { before: number; after: number };
}

/** Every address of both lists, in first-seen order (before's, then the added ones). */
function union(before: readonly WeightedServer[], after: readonly WeightedServer[]): string[] {
  return [...new Set([...before.map((s) => s.address), ...after.map((s) => s.address)])];
}

function weightOf(list: readonly WeightedServer[], address: string): number {
  return list.find((s) => s.address === address)?.weight ?? 0;
}

/** Share of each server's table entries, by address. */
function entryShares(servers: readonly WeightedServer[], entries: Int32Array): Map<string, number> {
  const counts = new Array<number>(servers.length).fill(0);
  for (const e of entries) if (e >= 0) counts[e]!++;
  return new Map(servers.map((s, i) => [s.address, counts[i]! / entries.length]));
}

/** Maglev (`balance: source`): who moves where, and each server's new share. Both lists non-empty. */
export function maglevChange(before: readonly WeightedServer[], after: readonly WeightedServer[]): HashedChange {
  const build = (list: readonly WeightedServer[]) =>
    MaglevTable.build(
      list.map((s) => s.address),
      list.map((s) => s.weight),
    ).entries();
  const a = build(before);
  const b = build(after);
  const shareA = entryShares(before, a);
  const shareB = entryShares(after, b);
  const flows = new Map<string, ClientFlow>();
  const addFlow = (from: string, to: string, share: number) => {
    const key = `${from}\n${to}`;
    const flow = flows.get(key) ?? flows.set(key, { from, to, share: 0 }).get(key)!;
    flow.share += share;
  };
  if (a.length === b.length) {
    // Counted by server index pair (one number per entry, no strings in the 65,537-entry loop).
    const nb = after.length;
    const staysAs = before.map((s) => after.findIndex((t) => t.address === s.address));
    const pairs = new Map<number, number>();
    for (let i = 0; i < a.length; i++) {
      const from = a[i]!;
      const to = b[i]!;
      if (staysAs[from] !== to) pairs.set(from * nb + to, (pairs.get(from * nb + to) ?? 0) + 1);
    }
    for (const [pair, n] of pairs) addFlow(before[Math.floor(pair / nb)]!.address, after[pair % nb]!.address, n / a.length);
  } else {
    for (const [from, pa] of shareA) for (const [to, pb] of shareB) if (from !== to && pa * pb > 0) addFlow(from, to, pa * pb);
  }
  const sorted = [...flows.values()].sort((x, y) => y.share - x.share || x.from.localeCompare(y.from) || x.to.localeCompare(y.to));
  return {
    moved: sorted.reduce((n, f) => n + f.share, 0),
    flows: sorted,
    servers: union(before, after).map((address) => ({
      address,
      weight: { before: weightOf(before, address), after: weightOf(after, address) },
      share: { before: shareA.get(address) ?? 0, after: shareB.get(address) ?? 0 },
    })),
    tableSize: { before: a.length, after: b.length },
  };
}

/** Balancers that spread requests by weight (round-robin, least-conn, random): each server's weight share. */
export function weightChange(before: readonly WeightedServer[], after: readonly WeightedServer[]): ServerShareChange[] {
  const total = (list: readonly WeightedServer[]) => list.reduce((n, s) => n + s.weight, 0);
  const ta = total(before);
  const tb = total(after);
  return union(before, after).map((address) => {
    const wa = weightOf(before, address);
    const wb = weightOf(after, address);
    return { address, weight: { before: wa, after: wb }, share: { before: ta > 0 ? wa / ta : 0, after: tb > 0 ? wb / tb : 0 } };
  });
}
