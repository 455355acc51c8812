// Maglev: the native table against the TypeScript reference, pinned
// assignments, and the quality properties (balance, weights, disruption).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MaglevTable, SharedRegion } from '../../src/native.js';
import { chooseSize, hashIp, hashKey } from '../helpers/native-probes.ts';
import {
  MaglevReference,
  chooseSize as refChooseSize,
  hashIp as refHashIp,
  hashKey as refHashKey,
  ipBytes,
  xxh64,
} from '../helpers/maglev-reference.js';

const servers = (n: number, from = 1): string[] => Array.from({ length: n }, (_, i) => `10.0.0.${from + i}:8080`);
const ones = (n: number): number[] => new Array<number>(n).fill(1);

// mulberry32: a small seeded PRNG so key sets are the same on every run.
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

const ipv4Keys = (count: number, seed = 1): number[] => {
  const next = rng(seed);
  return Array.from({ length: count }, () => next());
};
const dotted = (a: number): string => `${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}`;

// Lookups of `keys` by identity, so tables over different lists compare.
function assign(table: MaglevTable, ids: readonly string[], keys: readonly number[]): string[] {
  return keys.map((k) => ids[table.lookupIpv4(k)] ?? '-');
}

function moved(before: readonly string[], after: readonly string[], gone = new Set<string>()) {
  let total = 0;
  let between = 0; // moved although the old server is still there
  before.forEach((b, i) => {
    if (b === after[i]) return;
    total++;
    if (!gone.has(b)) between++;
  });
  return { total: total / before.length, between: between / before.length };
}

test('XXH64 matches the specification test vectors', () => {
  assert.equal(xxh64(new Uint8Array(0), 0n), 0xef46db3751d8e999n);
  assert.equal(xxh64(Buffer.from('abc'), 0n), 0x44bc2cf5ad770999n);
  assert.equal(xxh64(Buffer.from('Nobody inspects the spammish repetition'), 0n), 0xfbcea83c8a378bf1n);
});

test('native key and IP hashes equal the reference (all input lengths)', () => {
  for (let len = 0; len < 80; len++) {
    const key = 'k€y'.repeat(len).slice(0, len);
    assert.equal(hashKey(key), refHashKey(key), `key of length ${len}`);
  }
  for (const ip of ['1.2.3.4', '255.255.255.255', '::1', '2001:db8::8a2e:370:7334', 'fe80::1:2', '::', '::ffff:10.1.2.3', '64:ff9b::1.2.3.4']) {
    assert.equal(hashIp(ip), refHashIp(ip), ip);
  }
  for (const bad of ['not-an-ip', '1.2.3', '1.2.3.4.5', '01.2.3.4', '256.1.1.1', '1.2.3.4 ', '1..3.4', '1.2.3.0004', '::ffff:1.2.3', 'fe80::1%eth0', '']) {
    assert.equal(hashIp(bad), undefined, bad);
    assert.equal(refHashIp(bad), hashKey(bad), `reference ${bad}`);
  }
  assert.equal(hashIp('0.0.0.0'), refHashIp('0.0.0.0'));
  assert.equal(hashIp('10.200.0.99'), refHashIp('10.200.0.99'));
});

test('long keys are hashed whole: a character straddling the 256-byte read buffer is not cut off', () => {
  for (let len = 240; len < 270; len++) {
    for (const tail of ['\u00e9', '\u20ac', '\u{1f600}']) {
      const key = 'h'.repeat(len) + tail;
      assert.equal(hashKey(key), refHashKey(key), `${len} + ${tail}`);
    }
  }
  assert.equal(hashIp('10.0.0.1\u0000x'), undefined, 'an address followed by a NUL is not that address');
});

test('default table size is the smallest prime >= max(65537, 100 x servers)', () => {
  assert.equal(chooseSize(0), 65537);
  assert.equal(chooseSize(10), 65537);
  assert.equal(chooseSize(1000), 100003);
  assert.equal(refChooseSize(1000), 100003);
  assert.equal(MaglevTable.build(servers(700), ones(700)).size, 70001);
});

test('native tables equal the reference tables', () => {
  const cases: { ids: string[]; weights: number[]; size?: number; eligible?: boolean[] }[] = [
    { ids: servers(1), weights: [1] },
    { ids: servers(3), weights: [1, 2, 3] },
    { ids: servers(10), weights: ones(10) },
    { ids: ['b:1', 'a:1', 'ü:1', '😀:1', 'A:1'], weights: [5, 1, 0, 2, 1] },
    { ids: servers(7), weights: ones(7), size: 1009 },
    { ids: servers(10), weights: ones(10), eligible: [true, false, true, true, true, true, true, false, true, true] },
    { ids: servers(2), weights: [0, 0] },
  ];
  for (const c of cases) {
    const opts = { size: c.size, eligible: c.eligible };
    const native = MaglevTable.build(c.ids, c.weights, opts).entries();
    const ref = MaglevReference.build(c.ids, c.weights, opts).entries;
    assert.equal(native.length, ref.length);
    assert.ok(Buffer.from(native.buffer).equals(Buffer.from(ref.buffer)), `table of ${c.ids.join(',')}`);
  }
});

test('pinned assignments (catch any change of hash, seeds or fill order)', () => {
  const ids = servers(5);
  const table = MaglevTable.build(ids, [1, 1, 2, 1, 3]);
  const ref = MaglevReference.build(ids, [1, 1, 2, 1, 3]);
  const pinned: [string, number][] = [
    ['203.0.113.7', 4],
    ['198.51.100.23', 2],
    ['192.0.2.2', 0],
    ['192.0.2.3', 3],
    ['127.0.0.1', 3],
    ['2001:db8::1', 1],
    ['::1', 1],
  ];
  for (const [ip, server] of pinned) {
    assert.equal(table.lookupIp(ip), server, ip);
    assert.equal(ref.lookupIp(ip), server, `reference ${ip}`);
  }
  const keys: [string, number][] = [
    ['session=abc123', 4],
    ['user-42', 2],
    ['bob', 0],
    ['', 4],
  ];
  for (const [key, server] of keys) {
    assert.equal(table.lookupKey(key), server, key);
    assert.equal(ref.lookupKey(key), server, `reference ${key}`);
  }
  assert.deepEqual(Array.from(table.entries().subarray(0, 12)), [4, 2, 4, 4, 2, 2, 4, 3, 4, 2, 4, 4]);
});

test('balance: 10 servers, 10,000 random IPv4 keys, max/mean <= 1.15', () => {
  const table = MaglevTable.build(servers(10), ones(10));
  const counts = new Array<number>(10).fill(0);
  for (const k of ipv4Keys(10_000)) counts[table.lookupIpv4(k)]!++;
  const ratio = Math.max(...counts) / (10_000 / 10);
  assert.ok(ratio <= 1.15, `max/mean ${ratio} (${counts.join(' ')})`);
});

test('weights 1:2:3 take 1/6, 2/6, 3/6 of keys within 3 percentage points', () => {
  const table = MaglevTable.build(servers(3), [1, 2, 3]);
  const counts = [0, 0, 0];
  const keys = ipv4Keys(10_000, 2);
  for (const k of keys) counts[table.lookupIpv4(k)]!++;
  counts.forEach((c, i) => {
    const share = c / keys.length;
    assert.ok(Math.abs(share - (i + 1) / 6) <= 0.03, `server ${i}: ${share}`);
  });
  // The table itself is exact up to one partial round.
  const entries = table.entries();
  const perServer = [0, 1, 2].map((s) => entries.filter((e) => e === s).length / entries.length);
  perServer.forEach((share, i) => assert.ok(Math.abs(share - (i + 1) / 6) < 0.001, `entries ${i}: ${share}`));
});

test('removing 1 of 10 moves <= 12.5% of keys, <= 2% between remaining servers', (t) => {
  const keys = ipv4Keys(10_000, 3);
  const all = servers(10);
  const before = assign(MaglevTable.build(all, ones(10)), all, keys);
  const rest = all.filter((_, i) => i !== 4);
  const after = assign(MaglevTable.build(rest, ones(9)), rest, keys);
  const m = moved(before, after, new Set([all[4]!]));
  t.diagnostic(`removed: moved ${(m.total * 100).toFixed(2)}%, between remaining ${(m.between * 100).toFixed(2)}%`);
  assert.ok(m.total <= 0.125, `moved ${m.total}`);
  assert.ok(m.between <= 0.02, `between ${m.between}`);
});

test('adding an 11th server moves <= 12.5% of keys', (t) => {
  const keys = ipv4Keys(10_000, 4);
  const ten = servers(10);
  const eleven = servers(11);
  const m = moved(assign(MaglevTable.build(ten, ones(10)), ten, keys), assign(MaglevTable.build(eleven, ones(11)), eleven, keys));
  t.diagnostic(`added: moved ${(m.total * 100).toFixed(2)}%`);
  assert.ok(m.total <= 0.125, `moved ${m.total}`);
});

test('the table does not depend on the order of the server list', () => {
  const ids = servers(10);
  const weights = [1, 2, 3, 1, 2, 3, 1, 2, 3, 1];
  const shuffled = [3, 9, 0, 7, 1, 8, 2, 6, 5, 4];
  const a = MaglevTable.build(ids, weights);
  const b = MaglevTable.build(
    shuffled.map((i) => ids[i]!),
    shuffled.map((i) => weights[i]!),
  );
  const keys = ipv4Keys(5_000, 5);
  assert.deepEqual(
    assign(a, ids, keys),
    assign(b, shuffled.map((i) => ids[i]!), keys),
  );
});

test('IPv4-mapped IPv6 hashes as IPv4; IPv6 forms parse alike', () => {
  const table = MaglevTable.build(servers(10), ones(10));
  for (const a of ipv4Keys(200, 6)) {
    const v4 = dotted(a);
    const want = table.lookupIpv4(a);
    assert.equal(table.lookupIp(v4), want, v4);
    assert.equal(table.lookupIp(`::ffff:${v4}`), want, `::ffff:${v4}`);
    assert.equal(table.lookupIp(`::FFFF:${v4}`), want);
  }
  assert.equal(hashIp('0:0:0:0:0:ffff:102:304'), hashIp('1.2.3.4'));
  assert.equal(hashIp('2001:DB8:0:0:0:0:0:1'), hashIp('2001:db8::1'));
  assert.deepEqual(ipBytes('::ffff:1.2.3.4'), Uint8Array.of(1, 2, 3, 4));
  // A non-address is hashed as a key rather than failing.
  assert.equal(table.lookupIp('garbage'), table.lookupKey('garbage'));
});

test('ineligible servers: rebuild (a) vs fallback walk (b)', (t) => {
  const ids = servers(10);
  const keys = ipv4Keys(10_000, 7);
  const full = MaglevTable.build(ids, ones(10));
  const before = assign(full, ids, keys);
  const down = new Set([ids[3]!]);

  // (a) rebuild without the server (same size: M depends on the configured count).
  const rebuilt = MaglevTable.build(ids, ones(10), { eligible: ids.map((id) => !down.has(id)) });
  assert.equal(rebuilt.size, full.size);
  const a = moved(before, assign(rebuilt, ids, keys), down);

  // (b) keep the table, skip ineligible servers at lookup (health from the region).
  const region = SharedRegion.create(ids, { name: `/switchyard-test-${process.pid}-maglev`, slots: 1 });
  try {
    full.useHealth(region, 0);
    region.setHealthy(3, false);
    const after = assign(full, ids, keys);
    const b = moved(before, after, down);
    t.diagnostic(
      `1 of 10 ineligible: (a) rebuild moved ${(a.total * 100).toFixed(2)}% (${(a.between * 100).toFixed(2)}% between remaining); ` +
        `(b) fallback moved ${(b.total * 100).toFixed(2)}% (${(b.between * 100).toFixed(2)}% between remaining)`,
    );
    assert.ok(a.total <= 0.125 && a.between <= 0.02, `rebuild ${JSON.stringify(a)}`);
    // (b) moves exactly the keys of the ineligible server, and spreads them.
    assert.equal(b.between, 0);
    assert.equal(b.total, before.filter((s) => down.has(s)).length / keys.length);
    const spread = new Set(after.filter((_, i) => before[i] === ids[3]));
    assert.ok(spread.size >= 8, `fallback keys went to ${spread.size} servers`);

    // Same answers as the reference's fallback.
    const ref = MaglevReference.build(ids, ones(10));
    for (const k of keys.slice(0, 500)) {
      assert.equal(full.lookupIp(dotted(k)), ref.lookupEligible(refHashIp(dotted(k)), (s) => s !== 3));
    }

    // Drained and ejected servers are skipped too; none eligible gives -1.
    region.setHealthy(3, true);
    region.setDrained(5, true);
    region.setEjectedUntil(6, Date.now() + 60_000);
    for (const k of keys.slice(0, 2000)) {
      const s = full.lookupIpv4(k);
      assert.ok(s !== 5 && s !== 6, `picked ${s}`);
    }
    region.setEjectedUntil(6, 0);
    assert.ok(keys.slice(0, 2000).some((k) => full.lookupIpv4(k) === 6));
    ids.forEach((_, i) => region.setHealthy(i, false));
    assert.equal(full.lookupIp('1.2.3.4'), -1);
    full.useHealth(null);
    assert.notEqual(full.lookupIp('1.2.3.4'), -1);
  } finally {
    region.close();
    region.unlink();
  }
});

test('tables with no eligible or weighted server answer -1', () => {
  assert.equal(MaglevTable.build([], []).lookupIp('1.2.3.4'), -1);
  assert.equal(MaglevTable.build(servers(2), [0, 0]).lookupKey('x'), -1);
  assert.equal(MaglevTable.build(servers(2), [1, 1], { eligible: [false, false] }).lookupIpv4(1), -1);
});

test('invalid builds throw TypeError; lookups reject wrong argument types', () => {
  assert.throws(() => MaglevTable.build(['a:1', 'a:1'], [1, 1]), { name: 'TypeError', message: /duplicate/ });
  assert.throws(() => MaglevTable.build(['a:1'], [1, 2]), TypeError);
  assert.throws(() => MaglevTable.build(['a:1'], [1], { size: 65536 }), TypeError);
  assert.throws(() => MaglevTable.build(['a:1'], [-1]), TypeError);
  assert.throws(() => MaglevTable.build([''], [1]), TypeError);
  const table = MaglevTable.build(['a:1'], [1]);
  assert.throws(() => table.lookupIp(42 as unknown as string), TypeError);
  assert.throws(() => table.lookupIpv4(-1), TypeError);
  assert.throws(() => table.lookupIpv4(2 ** 32), TypeError);
  assert.equal(table.lookupKey('x'.repeat(10_000)), 0);
});
