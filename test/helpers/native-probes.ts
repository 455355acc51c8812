// What only tests ask of the native addon, kept out of src/native.ts: the
// key and address hashes and the default Maglev size (compared with the
// TypeScript reference in maglev-reference.ts), and a server's eligibility
// read the way balancers read it (through a one-server view).
import { addon } from '../../src/native/addon.ts';
import type { SharedRegion } from '../../src/native.ts';

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

/** Healthy, not drained, not ejected now: whether `server` may take new traffic. */
export function eligible(region: SharedRegion, server: number): boolean {
  return region.view(server, 1).readHealth() === 1;
}
