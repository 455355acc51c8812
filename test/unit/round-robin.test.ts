import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RoundRobinBalancer } from '../../src/balancer/round-robin.ts';
import type { ServerSlot } from '../../src/balancer/types.ts';

function servers(...weights: number[]): ServerSlot[] {
  return weights.map((weight, index) => ({ address: `10.0.0.${index}:80`, host: `10.0.0.${index}`, port: 80, weight, index, upstream: 'u' }));
}
const ctx = { clientIp: '127.0.0.1' };

test('smooth weighted round-robin interleaves like nginx (5:1:1 → a a b a c a a)', () => {
  const s = servers(5, 1, 1);
  const rr = new RoundRobinBalancer(s);
  const picks = Array.from({ length: 7 }, () => rr.pick(ctx)!.index);
  assert.deepEqual(picks, [0, 0, 1, 0, 2, 0, 0]);
});

test('equal weights rotate through every server', () => {
  const rr = new RoundRobinBalancer(servers(1, 1, 1));
  assert.deepEqual(Array.from({ length: 6 }, () => rr.pick(ctx)!.index), [0, 1, 2, 0, 1, 2]);
});

test('shares follow the weights exactly over a full cycle', () => {
  const rr = new RoundRobinBalancer(servers(1, 2, 3));
  const counts = [0, 0, 0];
  for (let i = 0; i < 600; i++) counts[rr.pick(ctx)!.index]!++;
  assert.deepEqual(counts, [100, 200, 300]);
});

test('excluded servers are skipped; all excluded gives undefined', () => {
  const s = servers(1, 1, 1);
  const rr = new RoundRobinBalancer(s);
  const exclude = new Set([s[0]!, s[1]!]);
  for (let i = 0; i < 5; i++) assert.equal(rr.pick(ctx, exclude)!.index, 2);
  assert.equal(rr.pick(ctx, new Set(s)), undefined);
});

test('workers start at different offsets so they do not move in lock step', () => {
  const s = servers(1, 1, 1);
  const first = [0, 1, 2].map((w) => new RoundRobinBalancer(s, w).pick(ctx)!.index);
  assert.deepEqual(first, [0, 1, 2]);
});
