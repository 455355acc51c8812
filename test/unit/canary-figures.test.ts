// Canary figures: read from real WorkerMetrics snapshots (several routes, so
// the histogram's cumulative buckets must be undone per series), only the
// window counts, p99 interpolated in its bucket, and the verdict's edges:
// too little traffic, a small absolute error rate, an error rate that only
// follows the baseline's, a p99 that is slower but not by enough.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseConfigText } from '../../src/config/load.js';
import { addSnapshot, emptyCounts, judge, windowFigures, type WindowFigures } from '../../src/metrics/canary-figures.js';
import { WorkerMetrics } from '../../src/metrics/worker-metrics.js';

const config = parseConfigText(
  `admin: { token: t }
upstreams:
  app:
    servers: [{ address: "127.0.0.1:9001" }]
  api:
    servers: [{ address: "127.0.0.1:9101" }]
routes:
  - { match: { path: / }, upstream: app }
  - { name: api, match: { path: /api/ }, upstream: api }
`,
  'test.yaml',
).config;

const fig = (requests: number, errors5xx: number, p99Ms: number | null): WindowFigures => ({ requests, errors5xx, errorRate: requests ? errors5xx / requests : 0, p99Ms });

describe('canary figures', () => {
  it('counts requests, 5xx and the latency distribution of the window only, over every route', () => {
    const m = new WorkerMetrics(config, { answerPrimary: false });
    // Before the window: 50 slow errors that must not count.
    for (let i = 0; i < 50; i++) m.requestDone('*/', 'app', '127.0.0.1:9001', 503, 5);
    const start = addSnapshot(emptyCounts(), m.snapshot());
    for (let i = 0; i < 98; i++) m.requestDone('*/', 'app', '127.0.0.1:9001', 200, 0.002);
    m.requestDone('api', 'api', '127.0.0.1:9101', 502, 0.02);
    m.requestDone('api', 'api', '127.0.0.1:9101', 200, 0.2);
    const end = addSnapshot(emptyCounts(), m.snapshot());
    const w = windowFigures(start, end);
    assert.equal(w.requests, 100);
    assert.equal(w.errors5xx, 1);
    assert.equal(w.errorRate, 0.01);
    // The 99th of 100 lies in the (0.01, 0.025] bucket: 0.02 s took it.
    assert.ok(w.p99Ms! > 10 && w.p99Ms! <= 25, String(w.p99Ms));
  });

  it('two workers add up; no requests gives no p99', () => {
    const a = new WorkerMetrics(config, { answerPrimary: false });
    const b = new WorkerMetrics(config, { answerPrimary: false });
    a.requestDone('*/', 'app', '127.0.0.1:9001', 200, 0.001);
    b.requestDone('*/', 'app', '127.0.0.1:9001', 500, 0.001);
    const both = addSnapshot(addSnapshot(emptyCounts(), a.snapshot()), b.snapshot());
    assert.deepEqual([both.requests, both.errors5xx], [2, 1]);
    assert.equal(windowFigures(both, both).p99Ms, null);
    assert.equal(windowFigures(both, both).errorRate, 0);
  });

  it('beyond the last bucket, p99 reads as the last bound (60 s), never Infinity', () => {
    const m = new WorkerMetrics(config, { answerPrimary: false });
    for (let i = 0; i < 10; i++) m.requestDone('*/', 'app', '127.0.0.1:9001', 200, 120);
    const w = windowFigures(emptyCounts(), addSnapshot(emptyCounts(), m.snapshot()));
    assert.equal(w.p99Ms, 60_000);
  });
});

describe('canary verdict', () => {
  it('too little traffic is never a pass', () => {
    const v = judge(fig(19, 0, 1), fig(1000, 0, 1), 20);
    assert.equal(v.rollOut, false);
    assert.match(v.reason, /answered 19 requests .* fewer than the 20 needed/);
  });

  it('5xx: one point of margin over a clean baseline, double over a noisy one', () => {
    assert.equal(judge(fig(1000, 10, 1), fig(1000, 0, 1), 20).rollOut, true); // 1.0% vs 0%: within the margin
    assert.equal(judge(fig(1000, 11, 1), fig(1000, 0, 1), 20).rollOut, false); // 1.1% vs 0%
    assert.equal(judge(fig(1000, 100, 1), fig(1000, 60, 1), 20).rollOut, true); // 10% vs 6%: the baseline is failing too
    const v = judge(fig(1000, 130, 1), fig(1000, 60, 1), 20); // 13% vs 6%: more than double
    assert.equal(v.rollOut, false);
    assert.match(v.reason, /5xx rate 13\.00% on the canary against 6\.00% on the others/);
  });

  it('p99: more than twice the baseline and 50 ms above it', () => {
    assert.equal(judge(fig(100, 0, 30), fig(100, 0, 10), 20).rollOut, true); // 3x but only 20 ms
    assert.equal(judge(fig(100, 0, 150), fig(100, 0, 90), 20).rollOut, true); // 60 ms more but under 2x
    const v = judge(fig(100, 0, 400), fig(100, 0, 5), 20);
    assert.equal(v.rollOut, false);
    assert.match(v.reason, /p99 400\.0 ms on the canary against 5\.0 ms on the others/);
  });

  it('a baseline without traffic: judged on absolute figures', () => {
    assert.equal(judge(fig(100, 0, 5), fig(0, 0, null), 20).rollOut, true);
    assert.equal(judge(fig(100, 5, 5), fig(0, 0, null), 20).rollOut, false);
  });
});
