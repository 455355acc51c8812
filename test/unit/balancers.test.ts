// The balancers behind createBalancer, over a real shared-memory region:
// least-conn reads every worker's slot, every algorithm skips ineligible and
// excluded servers, source hashing is sticky and bounded, random follows the
// weights.
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { compileHashKey } from '../../src/balancer/hash-key.js';
import { createBalancer, type BalancerContext } from '../../src/balancer/create.js';
import type { Balancer, ServerSlot } from '../../src/balancer/types.js';
import type { BalanceAlgorithm } from '../../src/config/types.js';
import { Counter, MaglevTable, SharedRegion } from '../../src/native.js';
import { upstreamConfig } from '../helpers/upstream-config.js';

const ALGORITHMS: readonly BalanceAlgorithm[] = ['round-robin', 'least-conn', 'source', 'random'];
// The upstream under test starts at region server BASE, after another upstream's servers.
const BASE = 2;
const MAX = 6;
const SLOTS = 8;

let region: SharedRegion;

before(() => {
  const ids = [...['other/a:1', 'other/b:1'], ...Array.from({ length: MAX }, (_, i) => `app/127.0.0.1:${9001 + i}`)];
  region = SharedRegion.create(ids, { name: `/switchyard-test-balancers-${process.pid}`, slots: SLOTS });
});
after(() => {
  region.close();
  region.unlink();
});
// Every test starts with every server healthy and idle.
afterEach(() => {
  for (let s = 0; s < region.servers; s++) {
    region.setHealthy(s, true);
    region.setDrained(s, false);
    region.setEjectedUntil(s, 0);
  }
  for (let slot = 0; slot < SLOTS; slot++) region.zeroSlot(slot);
});

function servers(weights: readonly number[], order?: readonly number[]): ServerSlot[] {
  return (order ?? weights.map((_, i) => i)).map((n, index) => ({
    address: `127.0.0.1:${9001 + n}`,
    host: '127.0.0.1',
    port: 9001 + n,
    weight: weights[n]!,
    index,
    upstream: 'app',
  }));
}

function make(balance: BalanceAlgorithm, s: ServerSlot[], extra: Partial<BalancerContext> & { balanceFactor?: number } = {}): Balancer {
  const ctx: BalancerContext = { region, base: BASE, workerIndex: extra.workerIndex ?? 0, seed: extra.seed ?? 42 };
  return createBalancer(upstreamConfig(balance, s, extra.balanceFactor), s, ctx);
}

/** Active requests of the upstream's server i in a worker slot. */
const load = (i: number, slot: number, n: number): void => region.add(Counter.ActiveRequests, BASE + i, slot, n);
const ip = (n: number): string => `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;

/** Indices picked for `count` picks, client address varying (so source spreads too). */
function picks(b: Balancer, count: number, exclude?: ReadonlySet<ServerSlot>): number[] {
  return Array.from({ length: count }, (_, n) => b.pick({ clientIp: ip(n) }, exclude)?.index ?? -1);
}

describe('least-conn', () => {
  it('picks the server with the fewest active requests summed over all worker slots', () => {
    const b = make('least-conn', servers([1, 1, 1]));
    load(0, 0, 1);
    load(1, 5, 2); // another worker's slot
    load(2, 7, 3);
    assert.equal(b.pick({ clientIp: '1.1.1.1' })!.index, 0);
    load(0, 3, 2); // 3 for server 0, from two slots
    assert.equal(b.pick({ clientIp: '1.1.1.1' })!.index, 1);
    load(2, 7, -3);
    assert.equal(b.pick({ clientIp: '1.1.1.1' })!.index, 2);
  });

  it('divides by the weight', () => {
    const b = make('least-conn', servers([1, 3]));
    load(0, 0, 2);
    load(1, 1, 5); // 5/3 < 2/1
    assert.equal(b.pick({ clientIp: '1.1.1.1' })!.index, 1);
    load(1, 1, 2); // 7/3 > 2/1
    assert.equal(b.pick({ clientIp: '1.1.1.1' })!.index, 0);
  });

  it('breaks ties by (weighted) round-robin, each worker from its own offset', () => {
    assert.deepEqual(picks(make('least-conn', servers([1, 1, 1])), 6), [0, 1, 2, 0, 1, 2]);
    assert.deepEqual(picks(make('least-conn', servers([1, 1, 1]), { workerIndex: 1 }), 3), [1, 2, 0]);
    const counts = [0, 0];
    for (const i of picks(make('least-conn', servers([1, 3])), 400)) counts[i]!++;
    assert.deepEqual(counts, [100, 300]);
    // Only the tied servers take turns.
    load(1, 0, 1);
    assert.deepEqual(picks(make('least-conn', servers([1, 1, 1])), 4), [0, 2, 0, 2]);
  });
});

describe('every algorithm', () => {
  for (const balance of ALGORITHMS) {
    it(`${balance}: skips unhealthy, drained and ejected servers; none left gives undefined`, () => {
      const b = make(balance, servers([1, 1, 1]));
      assert.deepEqual(new Set(picks(b, 300)), new Set([0, 1, 2]));
      region.setHealthy(BASE + 1, false);
      assert.deepEqual(new Set(picks(b, 300)), new Set([0, 2]));
      region.setDrained(BASE + 0, true);
      assert.deepEqual(new Set(picks(b, 300)), new Set([2]));
      region.setEjectedUntil(BASE + 2, Date.now() + 60_000);
      assert.deepEqual(new Set(picks(b, 50)), new Set([-1]));
      region.setEjectedUntil(BASE + 2, Date.now() - 1); // deadline passed: back
      assert.deepEqual(new Set(picks(b, 50)), new Set([2]));
    });

    it(`${balance}: respects exclude; all excluded gives undefined`, () => {
      const s = servers([1, 1, 1]);
      const b = make(balance, s);
      assert.deepEqual(new Set(picks(b, 300, new Set([s[0]!, s[2]!]))), new Set([1]));
      assert.deepEqual(new Set(picks(b, 300, new Set([s[1]!]))), new Set([0, 2]));
      assert.deepEqual(new Set(picks(b, 20, new Set(s))), new Set([-1]));
      region.setHealthy(BASE + 1, false);
      assert.deepEqual(new Set(picks(b, 20, new Set([s[0]!, s[2]!]))), new Set([-1]));
    });
  }
});

describe('source', () => {
  it('is sticky per client, across workers and whatever the server order', () => {
    const a = make('source', servers([1, 1, 1, 1, 1]));
    const reordered = servers([1, 1, 1, 1, 1], [3, 0, 4, 2, 1]);
    const b = make('source', reordered, { workerIndex: 3 });
    const counts = [0, 0, 0, 0, 0];
    for (let n = 0; n < 2000; n++) {
      const first = a.pick({ clientIp: ip(n) })!;
      counts[first.index]!++;
      for (let k = 0; k < 3; k++) assert.equal(a.pick({ clientIp: ip(n) }), first);
      assert.equal(b.pick({ clientIp: ip(n) })!.address, first.address);
    }
    for (const c of counts) assert.ok(c > 300 && c < 500, `spread ${counts.join(' ')}`);
    // An IPv4-mapped IPv6 address is the IPv4 client.
    assert.equal(a.pick({ clientIp: '::ffff:10.0.0.7' }), a.pick({ clientIp: '10.0.0.7' }));
  });

  it('hashes a header or cookie key and falls back to the client address', () => {
    const b = make('source', servers([1, 1, 1, 1, 1]));
    const header = compileHashKey('header:X-User')!;
    const cookie = compileHashKey('cookie:session')!;
    const seen = new Set<number>();
    for (let n = 0; n < 200; n++) {
      const user = `user-${n}`;
      const viaHeader = b.pick({ clientIp: ip(n), key: header(['x-user', user]) })!;
      // Same key from other addresses: same server.
      assert.equal(b.pick({ clientIp: ip(n + 1000), key: header(['X-USER', user]) }), viaHeader);
      assert.equal(b.pick({ clientIp: ip(n + 2000), key: cookie(['Cookie', `a=1; session=${user}`]) }), viaHeader);
      // Absent: the client address decides.
      assert.equal(b.pick({ clientIp: ip(n), key: header(['Other', user]) }), b.pick({ clientIp: ip(n) }));
      seen.add(viaHeader.index);
    }
    assert.equal(seen.size, 5);
  });

  it('moves only the keys of an ineligible or excluded server, to a fixed next choice', () => {
    const s = servers([1, 1, 1, 1, 1]);
    const b = make('source', s);
    const before = picks(b, 3000);
    region.setHealthy(BASE + 2, false);
    const unhealthy = picks(b, 3000);
    const excluded = picks(b, 3000, new Set([s[2]!]));
    region.setHealthy(BASE + 2, true);
    assert.deepEqual(excluded, unhealthy); // retries walk the same order
    before.forEach((was, n) => {
      if (was === 2) assert.notEqual(unhealthy[n], 2);
      else assert.equal(unhealthy[n], was, `client ${n} moved from ${was} to ${unhealthy[n]}`);
    });
    assert.deepEqual(picks(b, 3000), before); // recovered: everyone back
  });
});

describe('source with bounded loads (balance_factor 1.25)', () => {
  const s = servers([1, 1, 1, 1]);
  const unbounded = (): Balancer => make('source', s);
  const bounded = (): Balancer => make('source', s, { balanceFactor: 1.25 });

  it('keeps every key on its server while loads are within the bound', () => {
    for (let i = 0; i < 4; i++) load(i, i, 1);
    // total 4, bound ceil(1.25 x 5 / 4) = 2: a load of 1 is under it
    assert.deepEqual(picks(bounded(), 2000), picks(unbounded(), 2000));
  });

  it('moves the keys of a server at its bound, and only those, consistently across workers', () => {
    for (let i = 0; i < 4; i++) load(i, i, 1);
    load(1, 6, 1); // server 1 at 2: total 5, bound ceil(1.25 x 6 / 4) = 2
    const plain = picks(unbounded(), 2000);
    const moved = picks(bounded(), 2000);
    const otherWorker = picks(make('source', s, { balanceFactor: 1.25, workerIndex: 5 }), 2000);
    assert.deepEqual(otherWorker, moved);
    let count = 0;
    plain.forEach((was, n) => {
      if (was === 1) {
        assert.notEqual(moved[n], 1);
        count++;
      } else {
        assert.equal(moved[n], was);
      }
    });
    assert.ok(count > 300, `server 1 had ${count} of 2000 keys`);
    // The moved keys spread over the others rather than all landing on one.
    assert.equal(new Set(moved.filter((_, n) => plain[n] === 1)).size, 3);
  });

  it('drops the bound when only overloaded servers are left to a retry', () => {
    load(0, 0, 10);
    const b = bounded();
    assert.equal(b.pick({ clientIp: '1.2.3.4' }, new Set([s[1]!, s[2]!, s[3]!]))!.index, 0);
  });
});

describe('random', () => {
  it('follows the weights over 60,000 seeded picks, and among eligible servers only', () => {
    const shares = (b: Balancer): number[] => {
      const counts = [0, 0, 0];
      for (const i of picks(b, 60_000)) counts[i]!++;
      return counts.map((c) => c / 60_000);
    };
    const all = shares(make('random', servers([1, 2, 3]), { seed: 7 }));
    [1 / 6, 2 / 6, 3 / 6].forEach((want, i) => assert.ok(Math.abs(all[i]! - want) < 0.01, `share ${i}: ${all[i]} vs ${want}`));
    region.setHealthy(BASE + 1, false);
    const two = shares(make('random', servers([1, 2, 3]), { seed: 7 }));
    assert.equal(two[1], 0);
    assert.ok(Math.abs(two[0]! - 0.25) < 0.01 && Math.abs(two[2]! - 0.75) < 0.01, `shares ${two.join(' ')}`);
  });

  it('is deterministic for a seed', () => {
    assert.deepEqual(picks(make('random', servers([1, 1, 1]), { seed: 9 }), 50), picks(make('random', servers([1, 1, 1]), { seed: 9 }), 50));
  });
});

describe('round-robin with shared health', () => {
  it('keeps its smooth weighted order over the eligible servers', () => {
    const b = make('round-robin', servers([5, 1, 1]));
    assert.deepEqual(picks(b, 7), [0, 0, 1, 0, 2, 0, 0]);
    region.setDrained(BASE + 0, true);
    assert.deepEqual(picks(b, 4), [1, 2, 1, 2]);
  });
});

describe('native helpers behind the balancers', () => {
  it('sums see every slot ever written, including slots copied from an older region', () => {
    const ids = ['x:1', 'y:1'];
    const a = SharedRegion.create(ids, { name: `/switchyard-test-balancers-a-${process.pid}`, slots: 8 });
    const b = SharedRegion.create(ids, { name: `/switchyard-test-balancers-b-${process.pid}`, slots: 8 });
    let c: SharedRegion | undefined;
    try {
      a.add(Counter.ActiveRequests, 1, 6, 4);
      assert.equal(a.sum(Counter.ActiveRequests, 1), 4);
      const view = b.view(0, 2);
      view.readLoads();
      assert.deepEqual([...view.state], [0, 0]);
      // A reload's next region copies every slot: its sums must see slot 6 at once.
      c = a.createNext(ids);
      const copied = c.view(0, 2);
      assert.equal(copied.readLoads(), 2);
      assert.deepEqual([...copied.state], [0, 4]);
      b.add(Counter.ActiveRequests, 1, 6, 4);
      assert.equal(view.readLoads(), 2);
      assert.deepEqual([...view.state], [0, 4]);
      b.add(Counter.ActiveRequests, 1, 6, -5); // a decrement seen before its increment reads as 0
      view.readLoads();
      assert.deepEqual([...view.state], [0, 0]);
    } finally {
      for (const r of [a, b, ...(c ? [c] : [])]) {
        r.close();
        r.unlink();
      }
    }
  });

  it('bad arguments throw a TypeError or RangeError, never crash', () => {
    const table = MaglevTable.build(['a:1', 'b:1', 'c:1'], [1, 1, 1]);
    assert.throws(() => table.lookupIp('1.2.3.4', new Uint8Array(2)), /one byte per server/);
    assert.throws(() => table.lookupKey('k', [0, 0, 0] as unknown as Uint8Array), TypeError);
    assert.throws(() => table.lookupIpv4(1, new Int8Array(3) as unknown as Uint8Array), TypeError);
    assert.throws(() => table.useHealth(region, 0, { balanceFactor: 0.5 }), /balanceFactor/);
    assert.throws(() => table.useHealth(region, region.servers - 2), RangeError);
    assert.throws(() => region.view(region.servers - 1, 2), RangeError);
    assert.throws(() => region.view(-1, 2), TypeError);
    assert.throws(() => createBalancer(upstreamConfig('source', [], 1.5), servers([1]), { region: undefined as unknown as SharedRegion, base: 0, workerIndex: 0 }), TypeError);
  });
});
